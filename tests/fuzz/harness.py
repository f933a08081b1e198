"""The service under fuzzing: the real app in-process, with every upstream it calls (ConvoAI,
the SIP gateway, the sandbox's own control API) answered by an in-process sandbox through
`responses`, so nothing leaves the process and any other host is a connection error."""

from __future__ import annotations

import io
import itertools
import json
import random
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import responses
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from calls import lifecycle
from config import Settings
from factory.app import create_app
from ncs.signature import sign
from sandbox.app import create_sandbox_app
from sandbox.clock import FakeClock
from sandbox.config import SandboxConfig
from sandbox.ncs_sender import RecordingTransport
from sandbox.testing import WEBHOOK_URL
from tests.fuzz.strategies import FuzzRequest, Known, NowMs

ROOT = Path(__file__).resolve().parents[2]
LOOKUP_TOKEN = "fuzz-lookup-token-0123456789"
LOOKUP_AUTH = "Basic ZnV6ejpsb29rdXAtYXV0aC0wMTIz"
EVENTS_TOKEN = "fuzz-events-token-0123456789"
CRON_SECRET = "fuzz-cron-secret-0123456789"
ADMIN_TOKEN = "fuzz-admin-token-0123456789"
NCS_SECRET = "fuzz-ncs-secret-0123456789"
#: What an error body must never show: a traceback, or where the code lives.
LEAK_MARKERS = ("Traceback", 'File "', str(ROOT))


class RecordedHooks:
    """The sandbox gateway's lifecycle webhooks, kept instead of posted."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, Any]] = []

    def post(self, url: str, *, json: Any = None, headers: dict[str, str] | None = None,
             timeout: Any = None) -> Any:
        self.posted.append((url, json))
        response = requests.Response()
        response.status_code = 200
        return response


class SandboxUpstream:
    """Answers every request the service sends to ``base_url`` with the in-process sandbox."""

    def __init__(self, base_url: str) -> None:
        clock = FakeClock()
        config = SandboxConfig(webhook_url=WEBHOOK_URL, concurrency_limit=1_000_000,
                               outbound_answer_delay_s=0.0)
        self.app = create_sandbox_app(config, clock=clock, transport=RecordingTransport(clock),
                                      rng=random.Random(0), start_background=False,
                                      sip_http=RecordedHooks())
        self.client = self.app.test_client()
        self.mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        pattern = re.compile(re.escape(base_url.rstrip("/")) + r"(/.*)?$")
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            self.mock.add_callback(method, pattern, callback=self._forward)

    def _forward(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(str(request.url))
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        body = request.body.encode() if isinstance(request.body, str) else request.body or b""
        answer = self.client.open(url.path, method=str(request.method), query_string=url.query,
                                  headers=headers, data=body)
        return answer.status_code, {"Content-Type": answer.content_type or "text/plain"}, \
            answer.get_data()


@dataclass(frozen=True)
class Prepared:
    """A request ready to send, as bytes and text."""

    method: str
    path: str
    query: bytes
    headers: dict[str, str]
    body: bytes
    client: FlaskClient


@dataclass
class FuzzedService:
    """The app, its test client, and names of real rows for fuzzed paths to hit."""

    app: Flask
    client: FlaskClient
    upstream: SandboxUpstream
    #: a second client, signed in to the dashboard (its session cookie goes with each request)
    signed_in: FlaskClient | None = None
    known: dict[str, list[str]] = field(default_factory=dict)
    _channels: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def settings(self) -> Settings:
        return self.app.extensions["settings"]

    def credentials(self) -> dict[str, str]:
        """Every credential the service accepts somewhere, by the setting that holds it."""
        s = self.settings
        return {"ADMIN_TOKEN": s.admin_token, "CRON_SECRET": s.cron_secret,
                "SIP_LOOKUP_TOKEN": s.sip_lookup_token, "SIP_LOOKUP_AUTH": s.sip_lookup_auth}

    def signed(self, body: bytes) -> dict[str, str]:
        return {"Content-Type": "application/json", **sign(self.settings.agora_ncs_secret, body)}

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.admin_token}"}

    def join(self, channel: str, seq: int = 1, notice_id: str | None = None) -> TestResponse:
        """A correctly signed caller join, as NCS sends it."""
        body = json.dumps({
            "noticeId": notice_id or f"{channel}-join-{seq}", "productId": 1, "eventType": 103,
            "notifyMs": int(time.time() * 1000),
            "payload": {"channelName": channel, "uid": self.settings.pstn_uid,
                        "clientSeq": seq, "ts": 1_700_000_000, "platform": 7}}).encode()
        return self.send("POST", "/webhook", body, headers=self.signed(body))

    def send(self, method: str, path: str, body: bytes = b"", *, headers: dict[str, str],
             query: bytes = b"") -> TestResponse:
        """One request with exactly these body bytes."""
        return self.request(Prepared(method, path, query, headers, body, self.client))

    def sendable(self, method: str, path: str, body: bytes = b"", *,
                 headers: dict[str, str], query: bytes = b"") -> Prepared:
        """The same request, not yet sent (send it with request())."""
        return Prepared(method, path, query, headers, body, self.client)

    def prepare(self, request: FuzzRequest) -> Prepared:
        """A generated request with its Known values and credentials filled in."""
        path = "".join(str(self.resolve(part)) if isinstance(part, Known) else part
                       for part in request.path)
        body = request.body
        if not isinstance(body, bytes):
            text = json.dumps(self.resolve(body), ensure_ascii=request.ensure_ascii,
                              separators=(",", ":") if request.compact else (", ", ": "))
            body = text.encode("utf-8", "surrogatepass")
        headers = dict(request.headers)
        if request.auth is not None:
            value = self.credentials().get(request.auth.credential or "", request.auth.text)
            headers["Authorization"] = request.auth.template.format(value)
        client = self.signed_in if request.signed_in and self.signed_in else self.client
        return Prepared(request.method, path, request.query, headers, body, client)

    def request(self, prepared: Prepared) -> TestResponse:
        """Send it. The body goes as a stream: given ``data``, the test client would make up a
        multipart body of its own for an empty one sent as multipart/form-data."""
        return prepared.client.open(prepared.path, method=prepared.method,
                                    input_stream=io.BytesIO(prepared.body),
                                    headers=prepared.headers,
                                    query_string=_wsgi(prepared.query))

    def resolve(self, value: Any) -> Any:
        """Swap Known placeholders, however deep, for real values of their kind."""
        if isinstance(value, Known):
            pool = self.known.get(value.kind) or ["none-known"]
            return pool[value.index % len(pool)]
        if isinstance(value, NowMs):
            return int(time.time() * 1000) + value.offset_ms
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def check(self, response: TestResponse, where: str, *, json_errors: bool = True,
              may_show: tuple[str, ...] = ()) -> None:
        """The properties every answer has: not a 5xx, no traceback, file path or secret in the
        body, and (for the API and webhook routes) errors as ``{"error", "message"}``."""
        status = response.status_code
        body = response.get_data()
        response.close()  # a static file's answer holds the file open until closed
        text = body.decode("utf-8", "replace")
        assert status < 500, f"{where} answered {status}: {text[:300]!r}"
        for marker in LEAK_MARKERS:
            assert marker not in text, f"{where} shows {marker!r} in its body"
        for secret in self.settings.secret_values():
            if secret not in may_show:
                assert secret not in text, f"{where} shows a secret in its body"
        if status >= 400 and json_errors:
            data = response.get_json(silent=True)
            assert isinstance(data, dict), f"{where}: {status} body is not a JSON object"
            assert isinstance(data.get("error"), str) and isinstance(data.get("message"), str), \
                f"{where}: {status} body lacks error/message: {data!r}"

    def assert_still_serving(self) -> None:
        """After a run: alive, ready, and a signed join for a fresh channel starts its agent."""
        assert self.client.get("/healthz").status_code == 200
        ready = self.client.get("/readyz")
        assert ready.status_code == 200, ready.get_json()
        channel = f"after_fuzz_{next(self._channels)}"
        answer = self.join(channel)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert answer.get_json()["outcome"] == "call_started"
        call = self.app.extensions["store"].get_call(answer.get_json()["call_id"])
        assert call is not None and call.state == lifecycle.ACTIVE and call.agent_id


def _wsgi(query: bytes) -> str:
    """A raw query string as WSGI carries it (bytes as latin-1), undecodable bytes and all."""
    return query.decode("latin-1")


def fuzz_settings(database_url: str) -> Settings:
    """Sandbox-mode settings with every hook switched on and no limit that would answer 429
    or refuse a call for reasons other than the input (the fuzzing sends thousands)."""
    overrides: dict[str, Any] = dict(
        database_url=database_url, agent_start_mode="inline", log_level="ERROR",
        # Not the sandbox placeholders, which pages may print on purpose (they are no secret).
        admin_token=ADMIN_TOKEN, agora_ncs_secret=NCS_SECRET,
        sip_lookup_auth=LOOKUP_AUTH, sip_lookup_token=LOOKUP_TOKEN,
        sip_events_token=EVENTS_TOKEN, cron_secret=CRON_SECRET,
        try_page=True, try_daily_limit=1_000_000, try_per_address_limit=1_000_000,
        max_concurrent_calls=0)
    if "rate_limit_per_minute" in Settings.__dataclass_fields__:
        overrides["rate_limit_per_minute"] = 0
    return Settings.for_tests(**overrides)


@contextmanager
def fuzzed_service(database_url: str) -> Iterator[FuzzedService]:
    settings = fuzz_settings(database_url)
    upstream = SandboxUpstream(settings.sandbox_url)
    with upstream.mock:
        app = create_app(settings)
        service = FuzzedService(app, app.test_client(), upstream,
                                signed_in=_signed_in_client(app))
        _seed(service)
        try:
            yield service
        finally:
            app.extensions["store"].engine.dispose()


def _seed(service: FuzzedService) -> None:
    """Rows for fuzzed paths and bodies to find: an inbound call, an outbound one (with a
    gateway call id), a line and a reservation."""
    web, admin = service.client, service.admin()
    inbound = _ok(service.join("fuzz_seed_inbound"))
    outbound = _ok(web.post("/api/calls", json={"to": "+15555550123"}, headers=admin))
    line = _ok(web.post("/api/lines", json={"number": "+15555550100", "persona": "support"},
                        headers=admin))
    reservation = _ok(web.post("/api/numbers", json={"region": "NA"}, headers=admin))
    store = service.app.extensions["store"]
    calls = [store.get_call(inbound["call_id"]), store.get_call(outbound["id"])]
    service.known.update(
        call_id=[c.id for c in calls],
        agent_name=[c.agent_name for c in calls],
        channel=["fuzz_seed_inbound", outbound["channel"], reservation["channel"]],
        number=[line["number"], reservation["number"]],
        reservation_id=[reservation["id"]],
        events_token=[service.settings.sip_events_token],
        static_file=["pages.css", "sandbox.js", "try.css", "../app.py"],
        pin=[reservation["pin"]],
        callid=[c.gateway_callid for c in calls if c.gateway_callid],
    )


def _ok(response: TestResponse) -> Mapping[str, Any]:
    assert response.status_code < 300, response.get_data(as_text=True)
    return response.get_json()


_CSRF_FIELD = re.compile(r'name="csrf_token"\s+value="([^"]+)"')


def _signed_in_client(app: Flask) -> FlaskClient | None:
    """A client signed in to the dashboard through its own form, when the app has one."""
    if "dashboard.sign_in" not in app.view_functions:
        return None
    client = app.test_client()
    form = client.get("/dashboard/login").get_data(as_text=True)
    csrf = _CSRF_FIELD.search(form)
    answer = client.post("/dashboard/login", data={
        "token": app.extensions["settings"].admin_token, "csrf_token": csrf and csrf.group(1)})
    assert answer.status_code in (302, 303), f"dashboard sign-in answered {answer.status_code}"
    assert client.get("/dashboard/").status_code == 200, "the dashboard sign-in did not hold"
    return client
