"""No secret ever leaves the service: the real service under gunicorn against the sandbox, every
secret setting given a distinctive value, driven through calls, upstream failures (ConvoAI
answering 500, 429, 401 and timing out; the SIP gateway failing), forged signatures, wrong
tokens, rate limiting and error answers. Then everything it printed and every answer it gave is
searched for each secret: raw, URL-encoded, hex, base64 (alone, inside longer base64 such as a
Basic header, in both alphabets) and as the whole Basic credential."""

from __future__ import annotations

import base64
import http.client
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import requests

from ncs.signature import sign
from tests.integration.harness import (
    ROOT,
    Sandbox,
    Service,
    free_port,
    running_stack,
    stack_database,
    wait_until,
    whole_window,
)

pytestmark = pytest.mark.integration

CUSTOMER_ID = "leak-customer-id-Ga70"
#: Every secret setting of config.Settings.secret_values, each with a value found nowhere else.
SECRETS = {
    "AGORA_APP_CERTIFICATE": "c3a1f00d5eedface7eedbeadcafe4242",
    "AGORA_CUSTOMER_SECRET": "leak-customer-secret-Vb83",
    "AGORA_NCS_SECRET": "leak-ncs-secret-Tn52",
    "AGORA_NCS_SECRET_PREVIOUS": "leak-ncs-previous-Kd19",
    "AGORA_CONVOAI_NCS_SECRET": "leak-convoai-ncs-Wq64",
    "SIP_AUTH": "leak-sip-auth-Mr27",
    "ADMIN_TOKEN": "leak-admin-token-Hs08",
    "CRON_SECRET": "leak-cron-secret-Pj71",
    "SIP_LOOKUP_AUTH": "Basic leak-lookup-auth-Nz2604",
    "SIP_LOOKUP_TOKEN": "leak-lookup-token-Gx3390",
    "SIP_EVENTS_TOKEN": "leak-events-token-Yc4471",
    "OPENAI_API_KEY": "sk-leak-openai-key-Ur56",
    "ELEVENLABS_API_KEY": "leak-elevenlabs-key-Fe12",
    "EVENTS_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"leak-events-webhook-key-Qa8" + bytes(5)
                                                         ).decode(),
    "METRICS_TOKEN": "leak-metrics-token-Lo45",
}
ADMIN = {"Authorization": f"Bearer {SECRETS['ADMIN_TOKEN']}"}
ATTACKER = {"X-Forwarded-For": "192.0.2.66"}
RUNNING = ("STARTING", "RUNNING")


def leak_forms(name: str, secret: str) -> dict[str, str]:
    """How ``secret`` could show up, by form. Worked out here, independently of logs.py."""
    raw = secret.encode()
    forms = {"raw": secret, "url-encoded": quote(secret, safe=""), "url-encoded+": quote_plus(
        secret), "hex": raw.hex(), "HEX": raw.hex().upper()}
    if re.fullmatch(r"[0-9a-fA-F]+", secret):
        forms.update({"lower": secret.lower(), "upper": secret.upper()})
    if secret.startswith("whsec_"):
        forms["key base64"] = secret[len("whsec_"):]
    # Inside a longer base64 text the encoding's ends depend on the neighbouring bytes: search
    # for its middle, at each of the three alignments, in both alphabets.
    for prefix in (b"", b"a", b"ab"):
        for alphabet, encode in (("base64", base64.b64encode),
                                 ("base64url", base64.urlsafe_b64encode)):
            forms[f"{alphabet} at {len(prefix)}"] = encode(prefix + raw).decode()[4:-4]
    if name == "AGORA_CUSTOMER_SECRET":
        forms["Basic credential"] = base64.b64encode(f"{CUSTOMER_ID}:{secret}".encode()).decode()
    return forms


@dataclass
class Capture:
    """Every answer the service gave to this test: its status, headers and body, as text, under
    a label naming the request (the label itself is not searched: requests carry secrets)."""

    answers: dict[str, str] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)

    def record(self, response: requests.Response, *_: Any, **__: Any) -> None:
        self.add(f"{response.request.method} {response.request.path_url}",
                 response.status_code, response.headers.items(), response.text)

    def add(self, label: str, status: int, headers: Any, body: str) -> None:
        lines = "\n".join(f"{k}: {v}" for k, v in headers)
        self.answers[f"answer {len(self.answers)} to {label}"] = f"{status}\n{lines}\n\n{body}"
        self.statuses.append(status)


@dataclass
class LeakStack:
    sandbox: Sandbox
    service: Service
    env: dict[str, str]
    web: requests.Session
    capture: Capture

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.web.request(method, f"{self.service.url}{path}", **kwargs)

    def ncs(self, event_type: int, channel: str, seq: int, *, secret: str | None = None,
            product_id: int = 1, **extra: Any) -> requests.Response:
        payload = {"channelName": channel, "uid": 111, "platform": 6, "clientSeq": seq,
                   "ts": int(time.time()), **extra}
        body = json.dumps({"noticeId": uuid.uuid4().hex, "productId": product_id,
                           "eventType": event_type, "notifyMs": int(time.time() * 1000),
                           "payload": payload}).encode()
        return self.call("POST", "/webhook", data=body, headers={
            "Content-Type": "application/json",
            **sign(secret or SECRETS["AGORA_NCS_SECRET"], body)})


@pytest.fixture(scope="module")
def leak_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LeakStack]:
    log_dir = tmp_path_factory.mktemp("secrets")

    def env(urls: list[str]) -> dict[str, str]:
        return {**SECRETS,
                "AGORA_CUSTOMER_ID": CUSTOMER_ID,
                # The sandbox holds the same credentials, so it accepts what the service sends.
                "SANDBOX_CUSTOMER_ID": CUSTOMER_ID,
                "SANDBOX_APP_CERTIFICATE": SECRETS["AGORA_APP_CERTIFICATE"],
                "SANDBOX_CONVOAI_NCS_SECRET": SECRETS["AGORA_CONVOAI_NCS_SECRET"],
                "SANDBOX_SIP_AUTH": SECRETS["SIP_AUTH"],
                "SANDBOX_LOOKUP_TOKEN": SECRETS["SIP_LOOKUP_TOKEN"],
                "SANDBOX_OUTBOUND_HANG_S": "1",
                # A join that times out gives up after 3 s rather than 7 (still past the sandbox's
                # first answers and the retries' backoff; its 6 s hang outlasts it).
                "JOIN_BUDGET_S": "3",
                # The operator's event receiver is down: every delivery fails (and is logged).
                "EVENTS_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/phone-agent-events",
                "PUBLIC_URL": urls[0],
                "TRY_PAGE": "true",
                # A low limit, so refusals are part of the run. Requests come through one proxy:
                # the attackers' X-Forwarded-For names them, the test's own come from 127.0.0.1.
                "RATE_LIMIT_PER_MINUTE": "8", "PROXY_HOPS": "1",
                "LOG_LEVEL": "DEBUG"}

    secrets = {"customer_secret": SECRETS["AGORA_CUSTOMER_SECRET"],
               "ncs_secret": SECRETS["AGORA_NCS_SECRET"],
               "openai_api_key": SECRETS["OPENAI_API_KEY"],
               "elevenlabs_api_key": SECRETS["ELEVENLABS_API_KEY"]}
    with running_stack(log_dir, stack_database("sqlite", log_dir, ""), secrets,
                       env=env) as running:
        capture = Capture()
        web = requests.Session()
        web.hooks["response"].append(capture.record)
        yield LeakStack(running.sandbox, running.service, running.env, web, capture)


def running(stack: LeakStack, channel: str) -> list[dict[str, Any]]:
    return [a for a in stack.sandbox.agents(channel) if a["state"] in RUNNING]


def call_state(stack: LeakStack, call_id: str) -> str:
    return stack.call("GET", f"/api/calls/{call_id}", headers=ADMIN).json()["state"]


def drive_calls_and_upstream_failures(stack: LeakStack) -> None:
    # A call that works: join, agent, conversation, leave.
    channel = f"leak_{uuid.uuid4().hex[:8]}"
    joined = stack.ncs(103, channel, 1)
    assert joined.json()["outcome"] == "call_started", joined.text
    agent = wait_until(lambda: running(stack, channel), message="the agent")[0]
    stack.call("GET", f"/api/calls/{joined.json()['call_id']}", headers=ADMIN)
    # The agent crashes (ConvoAI tells the service, signed with the ConvoAI secret), and
    # ConvoAI's leave fails twice before it works.
    stack.sandbox.control("POST", f"agents/{agent['agent_id']}/fail",
                          json={"message": "agent exits with reason: injected failure"})
    stack.sandbox.faults(leave_errors=[500, 503])
    stack.ncs(104, channel, 2, reason=1, duration=4)

    # Joins that fail: every status ConvoAI may answer, a timeout, and a refused key.
    for errors in ([500, 500, 500, 500, 500, 500], [{"status": 429, "reason": "TooManyRequests"},
                   401], [403], [422], [400], ["timeout"]):
        stack.sandbox.faults(timeout_s=6, join_errors=errors)
        failing = f"leak_fail_{uuid.uuid4().hex[:8]}"
        answer = stack.ncs(103, failing, 1)
        assert answer.status_code == 200, answer.text
        stack.ncs(104, failing, 2, reason=1, duration=1)
    stack.sandbox.faults(join_errors=[], leave_errors=[])

    # The SIP gateway: a line and a dialled call (its lookup carries the lookup token), an
    # outbound call that hangs, one the gateway calls invalid, and call control that fails.
    number = f"+1800{uuid.uuid4().int % 10**7:07d}"
    assert stack.call("POST", "/api/lines", headers=ADMIN, json={
        "number": number, "persona": "support"}).status_code == 201
    dialled = requests.post(f"{stack.sandbox.url}/_sandbox/sip/dial", timeout=20, json={
        "to": number, "from": "+15551234567", "duration_s": 2}).json()
    assert dialled["status"] == "bridged", dialled
    # The gateway's other way in: the whole provisioned header (the call is then left to
    # LOOKUP_JOIN_TIMEOUT_S, as one whose caller never arrives). Not captured: the answer holds
    # the events URL, and with it SIP_EVENTS_TOKEN, on purpose.
    assert requests.post(f"{stack.service.url}/sip/lookup", timeout=20, json={
        "did": number, "callerid": "benweekes"}, headers={
        "Authorization": SECRETS["SIP_LOOKUP_AUTH"]}).status_code == 200
    stack.sandbox.faults(outbound_results=["hang", "Invalid"])
    for _ in range(2):
        placed = stack.call("POST", "/api/calls", headers=ADMIN, json={"to": "+15557654321"})
        assert placed.status_code == 202, placed.text
        wait_until(lambda p=placed: call_state(stack, p.json()["id"]) in (
            "ended", "failed", "refused"), timeout=30, message="the failed outbound call")
        stack.call("POST", f"/api/calls/{placed.json()['id']}/hangup", headers=ADMIN)
        stack.call("POST", f"/api/calls/{placed.json()['id']}/dtmf", headers=ADMIN,
                   json={"digits": "12#"})
    provisioned = stack.call("POST", "/api/numbers", headers=ADMIN, json={"region": "EU"})
    stack.call("GET", "/api/numbers", headers=ADMIN)
    if provisioned.status_code == 201:
        stack.call("DELETE", f"/api/numbers/{provisioned.json()['id']}", headers=ADMIN)
    page = stack.call("GET", "/try")
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    stack.call("POST", "/try/number", json={"region": "NA"},
               headers={"X-CSRF-Token": csrf.group(1) if csrf else ""})


def drive_forgeries_and_wrong_tokens(stack: LeakStack) -> None:
    # The limit counts per window: the attacker's failures all count in one, so the last of
    # them are refused.
    whole_window()
    channel = f"leak_forged_{uuid.uuid4().hex[:8]}"
    body = json.dumps({"noticeId": "forged", "productId": 1, "eventType": 103,
                       "payload": {"channelName": channel, "uid": 111, "clientSeq": 1}}
                      ).encode()
    for headers in ({}, sign("not-our-secret", body),
                    {"Agora-Signature": sign("nope", body)["Agora-Signature"]},
                    {"Agora-Signature-V2": "zz"}):
        stack.call("POST", "/webhook", data=body, headers={**headers, **ATTACKER})
    tampered = body.replace(b'"clientSeq": 1', b'"clientSeq": 2')
    stack.call("POST", "/webhook", data=tampered, headers={
        **sign(SECRETS["AGORA_NCS_SECRET"], body), **ATTACKER})
    # Signed, but by the other product's secret; then by the previous secret (accepted).
    stack.ncs(101, channel, 1, product_id=17)
    stack.ncs(103, f"leak_prev_{uuid.uuid4().hex[:8]}", 1,
              secret=SECRETS["AGORA_NCS_SECRET_PREVIOUS"])
    # Wrong credentials everywhere, each route from an address of its own (so each answers its
    # 401), then all of them again from the attacker, who is over the limit by now (429).
    login = stack.call("GET", "/dashboard/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    form = {"csrf_token": csrf.group(1) if csrf else "", "token": "wrong-dashboard-token"}
    for client in ("192.0.2.10", "192.0.2.11", "192.0.2.12", ATTACKER["X-Forwarded-For"]):
        origin = {"X-Forwarded-For": client}
        for path in ("/api/calls", "/api/lines", "/api/numbers", "/api/reconcile", "/metrics"):
            stack.call("GET", path, headers={**origin, "Authorization": {
                "192.0.2.10": "Bearer wrong-token", "192.0.2.11": "",
                "192.0.2.12": f"Basic {SECRETS['ADMIN_TOKEN']}"}.get(client, "Bearer x")})
        stack.call("POST", "/sip/lookup", json={"did": "+18005550100"},
                   headers={"Authorization": "Bearer wrong-lookup-token-00", **origin})
        stack.call("POST", "/sip/events/not-the-events-token", json={}, headers=origin)
        stack.call("POST", "/dashboard/login", data=form, headers=origin)
    # The right token, from an address over the limit: refused before it is checked.
    stack.call("GET", "/api/calls", headers={**ADMIN, **ATTACKER})
    # Error answers of every kind.
    stack.call("POST", "/webhook", data=b'{"noticeId": 1,', headers={
        **sign(SECRETS["AGORA_NCS_SECRET"], b'{"noticeId": 1,'), "Content-Type":
        "application/json"})
    oversized(stack)
    stack.call("GET", "/api/calls/no-such-call", headers=ADMIN)
    stack.call("GET", "/api/calls?state=bogus&cursor=%%%", headers=ADMIN)
    stack.call("DELETE", "/webhook")
    stack.call("OPTIONS", "/api/calls", headers={"Origin": "https://evil.example",
                                                 "Access-Control-Request-Method": "GET"})


def oversized(stack: LeakStack) -> None:
    """A body over the limit, announced but not sent: the service answers 413 from the header
    alone (sending it all would race the service closing the connection)."""
    port = int(stack.service.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.putrequest("POST", "/webhook")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(300_000))
        connection.endheaders()
        response = connection.getresponse()
        stack.capture.add("POST /webhook (300 kB)", response.status, response.getheaders(),
                          response.read().decode(errors="replace"))
    finally:
        connection.close()


def drive_the_good_paths(stack: LeakStack) -> None:
    for path in ("/", "/home/calls", "/healthz", "/readyz", "/api/calls?limit=50",
                 "/api/lines", "/api/numbers"):
        stack.call("GET", path, headers=ADMIN if path.startswith("/api/") else {})
    stack.call("GET", "/metrics", headers={"Authorization": f"Bearer {SECRETS['METRICS_TOKEN']}"})
    stack.call("GET", "/api/reconcile", headers={"Authorization":
                                                 f"Bearer {SECRETS['CRON_SECRET']}"})
    stack.call("POST", f"/sip/events/{SECRETS['SIP_EVENTS_TOKEN']}",
               json={"event": "call_ringing", "callid": "none"})
    login = stack.call("GET", "/dashboard/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    stack.call("POST", "/dashboard/login", data={
        "csrf_token": csrf.group(1) if csrf else "", "token": SECRETS["ADMIN_TOKEN"]})
    calls = stack.call("GET", "/api/calls?limit=20", headers=ADMIN).json()["calls"]
    for path in ("/dashboard/", "/dashboard/live", "/dashboard/charts",
                 *(f"/dashboard/calls/{c['id']}" for c in calls[:10])):
        stack.call("GET", path)


def cli_output(stack: LeakStack, *args: str) -> str:
    flask = Path(sys.executable).parent / "flask"
    result = subprocess.run([str(flask), "--app", "app", *args], cwd=ROOT, env=stack.env,
                            capture_output=True, text=True, timeout=60)
    return f"$ flask {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_no_secret_reaches_the_logs_the_answers_or_the_commands(leak_stack):
    stack = leak_stack
    drive_calls_and_upstream_failures(stack)
    drive_forgeries_and_wrong_tokens(stack)
    drive_the_good_paths(stack)
    commands = [cli_output(stack, "personas", "show", "support", "--json"),
                cli_output(stack, "personas", "check")]
    # Let the sweeper finish what is pending (the stop that failed, the undelivered events):
    # three sweeps (SWEEP_INTERVAL_S is 0.5 s in the test harness).
    time.sleep(1.5)
    stack.call("POST", "/api/reconcile", headers=ADMIN)
    log = stack.service.process.output()

    # The run went where it had to: otherwise an empty search would prove nothing.
    statuses = set(stack.capture.statuses)
    assert {200, 202, 400, 401, 404, 413, 429} <= statuses, sorted(statuses)
    for event in ("ncs.signature_failed", "rate_limit.refused", "agent.start_failed",
                  "convoai.retry"):
        assert f'"event": "{event}"' in log, f"the run never logged {event}"
    assert "/sip/events/***" in log  # the events path was logged, its token redacted

    places = {"service output": log, **stack.capture.answers,
              **{f"command {i}": c for i, c in enumerate(commands)}}
    leaks = []
    for name, secret in SECRETS.items():
        for form, text in leak_forms(name, secret).items():
            for place, content in places.items():
                at = content.find(text)
                if at >= 0:
                    leaks.append(f"{name} ({form}) in {place}: ...{content[max(0, at - 120):at]}")
    assert not leaks, "\n".join(leaks)
