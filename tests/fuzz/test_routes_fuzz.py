"""Every route in the app's url_map, under junk and near-valid requests, with and without the
right credentials. Routes are listed from the app itself, so new ones are fuzzed too."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from factory.app import create_app
from tests.fuzz.harness import EVENTS_TOKEN, FuzzedService, fuzz_settings
from tests.fuzz.strategies import (
    CONTENT_TYPES,
    GATEWAY_NUMBERS,
    JSON_VALUES,
    MAX_BODY_BYTES,
    ROUTE_BODIES,
    FuzzRequest,
    edge_requests,
    fuzz_profile,
    path_segment,
    query_strings,
    route_requests,
)

#: Where errors are answered as JSON {"error", "message"}; the HTML pages may answer otherwise.
JSON_PREFIXES = ("/api/", "/webhook", "/sip/", "/healthz", "/readyz", "/home/calls",
                 "/home/test-call", "/try/number")
#: Routes whose good answer legitimately carries a credential: the lookup hands the gateway the
#: URL for its lifecycle events, which holds SIP_EVENTS_TOKEN.
MAY_SHOW = {"/sip/lookup": (EVENTS_TOKEN,)}


def app_routes() -> list[tuple[str, str]]:
    """(method, rule) for every route of an app built with the fuzzing settings."""
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(fuzz_settings(f"sqlite:///{Path(folder) / 'routes.db'}"))
        routes = sorted({(method, rule.rule) for rule in app.url_map.iter_rules()
                         for method in rule.methods or () if method not in ("HEAD", "OPTIONS")})
        app.extensions["store"].engine.dispose()
    return routes


ROUTES = app_routes()


def answers_json(rule: str) -> bool:
    return rule.startswith(JSON_PREFIXES)


@pytest.mark.parametrize(("method", "rule"), ROUTES, ids=[f"{m} {r}" for m, r in ROUTES])
def test_every_route_answers_junk_without_a_5xx(service: FuzzedService, method: str,
                                                rule: str) -> None:
    @fuzz_profile()
    @given(request=route_requests(method, rule))
    def run(request: FuzzRequest) -> None:
        prepared = service.prepare(request)
        answer = service.request(prepared)
        service.check(answer, f"{method} {rule}", json_errors=answers_json(rule),
                      may_show=MAY_SHOW.get(rule, ()))

    for edge in edge_requests(method, rule):
        run = example(request=edge)(run)
    run()
    service.assert_still_serving()


def test_any_path_and_method_answers_without_a_5xx(service: FuzzedService) -> None:
    @fuzz_profile()
    @given(method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
                                   "PROPFIND", "get"]),
           segments=st.lists(path_segment("PathConverter") | st.sampled_from(
               ["api", "calls", "webhook", "sip", "dashboard", "home", "static", "try"]),
               min_size=1, max_size=5),
           content_type=CONTENT_TYPES, body=st.binary(max_size=64))
    def run(method: str, segments: list[str], content_type: str | None, body: bytes) -> None:
        # One leading slash: "//x" would be read by the test client as a host, not a path.
        path = "/" + "/".join(segments).lstrip("/")
        headers = {"Content-Type": content_type} if content_type is not None else {}
        prepared = service.sendable(method, path, body, headers=headers)
        answer = service.request(prepared)
        service.check(answer, f"{method} {path[:80]}", json_errors=answers_json(path))

    run()


BODY_ROUTES = [(m, r) for m, r in ROUTES if m in ("POST", "PUT", "PATCH")]
#: Routes that read a JSON body (with a JSON content type; the webhook reads any body).
READS_JSON = set(ROUTE_BODIES) | {("POST", "/webhook")}


@pytest.mark.parametrize(("method", "rule"), BODY_ROUTES, ids=[f"{m} {r}" for m, r in BODY_ROUTES])
def test_a_body_over_the_limit_is_refused_with_413_json(service: FuzzedService, method: str,
                                                        rule: str) -> None:
    """With every credential right, a body one byte over MAX_CONTENT_LENGTH (or far over) is
    refused with 413 and a JSON error by every route that reads it. (A route that refuses the
    content type, or takes no body, answers without reading it: no 413, and no harm.)"""

    @fuzz_profile()
    @given(extra=st.sampled_from([1, 4096, MAX_BODY_BYTES]), content_type=CONTENT_TYPES,
           filler=st.sampled_from([b" ", b"[", b"\xff", b"a"]))
    def run(extra: int, content_type: str | None, filler: bytes) -> None:
        path = rule.replace("<call_id>", service.known["call_id"][0]).replace(
            "<token>", EVENTS_TOKEN)
        headers = {"Authorization": f"Bearer {credential_for(service, rule)}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        body = b"{" + filler * (MAX_BODY_BYTES + extra) + b"}"
        answer = service.send(method, path, body, headers=headers)
        service.check(answer, f"{method} {rule} (oversized)", json_errors=answers_json(rule))
        is_json = (content_type or "").split(";")[0].strip() in ("application/json",
                                                                 "application/vnd.api+json")
        if rule == "/webhook" or ((method, rule) in READS_JSON and is_json):
            assert answer.status_code == 413, answer.get_data(as_text=True)[:200]

    run()


def test_an_authorized_lookup_answers_200_or_404_whatever_the_numbers(
        service: FuzzedService) -> None:
    """The gateway knows one refusal, 404: whatever did and callerid hold, a lookup with the
    right header and a JSON object body gets a channel (200) or a refusal (404), never a 400."""
    line = service.known["number"][0]

    @fuzz_profile()
    @given(did=GATEWAY_NUMBERS | st.just(line) | JSON_VALUES,
           callerid=GATEWAY_NUMBERS | JSON_VALUES, pin=JSON_VALUES)
    def run(did: object, callerid: object, pin: object) -> None:
        body = json.dumps({"did": did, "pin": pin, "callerid": callerid, "callid": "fuzz-c1",
                           "sip_headers": {}}).encode()
        answer = service.send("POST", "/sip/lookup", body, headers={
            "Content-Type": "application/json",
            "Authorization": service.settings.sip_lookup_auth})
        service.check(answer, "POST /sip/lookup", may_show=MAY_SHOW["/sip/lookup"])
        assert answer.status_code in (200, 404), answer.get_data(as_text=True)[:200]

    run()


def credential_for(service: FuzzedService, rule: str) -> str:
    if rule == "/sip/lookup":
        return service.settings.sip_lookup_token
    return service.settings.admin_token


@pytest.mark.parametrize("path", ["/api/calls", "/api/calls.jsonl", "/api/calls.csv"])
def test_call_list_filters_and_cursors_answer_200_or_400(service: FuzzedService,
                                                         path: str) -> None:
    """With the admin token, any query string is a page of calls (200) or a clear 400: never
    a 5xx, and a cursor the API gave out always leads to the next page."""
    if ("GET", path) not in ROUTES:
        pytest.skip(f"{path} is not a route of this app")

    @fuzz_profile()
    @given(query=query_strings(), paged=st.booleans())
    def run(query: bytes, paged: bool) -> None:
        query = b"limit=1&" + query if paged else query
        prepared = service.sendable("GET", path, headers=service.admin(), query=query)
        answer = service.request(prepared)
        service.check(answer, f"GET {path}?{query[:80]!r}")
        assert answer.status_code in (200, 400), answer.get_data(as_text=True)[:200]
        if answer.status_code == 200 and answer.is_json and answer.get_json().get("next"):
            following = service.send("GET", path, headers=service.admin(),
                                     query=b"cursor=" + answer.get_json()["next"].encode())
            assert following.status_code == 200

    run()

