"""Issue 17 from outside: the official MCP Python SDK's client against ``POST /mcp`` under
gunicorn, two service instances on one database (SQLite and PostgreSQL), the sandbox as Agora,
and an operator endpoint in this process that verifies each request with ``standardwebhooks``.

The bearer token a join carries is only ever in the join; the store keeps its hash. These tests
add a token of their own for a live call straight to the store, which is what the endpoint
checks against, so the SDK can hold it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from standardwebhooks import Webhook

from store import Store
from tests.integration.conftest import SECRETS
from tests.integration.harness import (
    ROOT,
    free_port,
    running_stack,
    stack_database,
    wait_until,
)
from tools.tokens import new_token, token_hash

pytestmark = pytest.mark.integration

BOOKER_SECRET = "whsec_" + base64.b64encode(b"booker-secret-for-tests-0123456789").decode()
ADMIN = {"Authorization": "Bearer sandbox-admin-token"}
RUNNING = ("STARTING", "RUNNING")
#: How long the operator takes to answer: long enough for a repeat to arrive mid-run.
OPERATOR_DELAY_S = 0.6


@dataclass
class Operator:
    """The operator's tool endpoint: verifies, records and answers each request."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def serve_operator() -> tuple[Operator, ThreadingHTTPServer]:
    port = free_port()
    operator = Operator(f"http://127.0.0.1:{port}/agent-tools/book_slot")
    verifier = Webhook(BOOKER_SECRET)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                payload = verifier.verify(body, {k: v for k, v in self.headers.items()})
            except Exception as exc:  # any failure to verify is a refusal
                with operator.lock:
                    operator.refused.append(type(exc).__name__)
                self.send_response(401)
                self.end_headers()
                return
            with operator.lock:
                operator.received.append({"payload": payload,
                                          "key": self.headers.get("Idempotency-Key")})
                number = len(operator.received)
            time.sleep(OPERATOR_DELAY_S)
            answer = json.dumps({"text": f"Booked {payload['arguments']['slot']}.",
                                 "booking": f"B-{number}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer)
            self.wfile.flush()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return operator, server


@dataclass
class ToolStack:
    running: Any
    operator: Operator
    store: Store

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.running.services]


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[ToolStack]:
    log_dir = tmp_path_factory.mktemp(f"mcp-{request.param}")
    database_url = stack_database(request.param, log_dir, "phone_agent_mcp")
    operator, server = serve_operator()

    def env(urls: list[str]) -> dict[str, str]:
        return {"PUBLIC_URL": urls[0], "BOOKER_URL": operator.url,
                "BOOKER_SECRET": BOOKER_SECRET,
                "PERSONA_ROUTES": "book_*=booker,tarot_*=tarot,orders_*=orders,"
                                  "triage_*=triage,support_*=support,"
                                  "appointments_*=appointments"}

    try:
        with running_stack(log_dir, database_url, SECRETS, env=env, instances=2) as running:
            store = Store.from_url(database_url)
            try:
                yield ToolStack(running, operator, store)
            finally:
                store.engine.dispose()
    finally:
        server.shutdown()
        server.server_close()


def start_call(stack: ToolStack, prefix: str = "book") -> tuple[str, str]:
    """A live call (the caller joined, the agent runs) and a bearer token of it."""
    channel = f"{prefix}_{uuid.uuid4().hex[:10]}"
    answer = stack.running.service.event(103, channel=channel, seq=1)
    assert answer.status_code == 200 and answer.json()["outcome"] == "call_started", answer.text
    call = wait_until(lambda: [c for c in stack.store.calls_in_channel(channel)
                               if c.state == "active"], message="the call to be active")[0]
    token = new_token()
    stack.store.add_call_token(call.id, token_hash(token))
    return call.id, token


async def with_session(url: str, token: str | None, work: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(headers=headers, timeout=15) as http, \
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write, _), \
            ClientSession(read, write) as session:
        await session.initialize()
        return await work(session)


def test_the_official_client_initializes_lists_and_calls_tools(stack: ToolStack) -> None:
    call_id, token = start_call(stack)

    async def work(session: ClientSession) -> Any:
        listed = await session.list_tools()
        result = await session.call_tool("flag_urgent", {"summary": "A pipe burst upstairs."})
        bad = await session.call_tool("transfer_call", {"destination": "+15550100"})
        return listed, result, bad

    listed, result, bad = asyncio.run(with_session(stack.urls[1], token, work))
    names = [tool.name for tool in listed.tools]
    assert names == ["end_call", "transfer_call", "flag_urgent", "book_slot"]
    schema = {t.name: t.inputSchema for t in listed.tools}["transfer_call"]
    assert schema["properties"]["destination"]["enum"] == ["desk"]
    assert not result.isError
    # A raw number is not a destination: refused before anything reaches the gateway.
    assert bad.isError and not [r for r in stack.running.sandbox.requests("sip:transfer")]
    record = requests.get(f"{stack.urls[0]}/api/calls/{call_id}", headers=ADMIN,
                          timeout=10).json()
    assert [t["tool"] for t in record["tool_calls"]] == ["flag_urgent", "transfer_call"]
    assert "flagged_urgent" in [e["kind"] for e in record["timeline"]]


def test_a_side_effect_reaches_the_operator_once_through_both_instances(
        stack: ToolStack) -> None:
    call_id, token = start_call(stack)
    before = len(stack.operator.received)

    async def book(session: ClientSession) -> Any:
        return await session.call_tool("book_slot", {"slot": "Tuesday 3 pm"})

    async def twice_at_once() -> list[Any]:
        return list(await asyncio.gather(with_session(stack.urls[0], token, book),
                                         with_session(stack.urls[1], token, book)))

    results = asyncio.run(twice_at_once())
    results.append(asyncio.run(with_session(stack.urls[1], token, book)))
    assert len(stack.operator.received) == before + 1 and not stack.operator.refused
    texts = [r.content[0].text for r in results]
    assert texts == ["Booked Tuesday 3 pm."] * 3
    assert [r.structuredContent for r in results] == [results[0].structuredContent] * 3
    sent = stack.operator.received[-1]
    assert sent["payload"]["call"]["id"] == call_id and sent["key"].startswith("tc_")


def test_without_a_valid_token_of_a_live_call_the_answer_is_401_and_nothing_happens(
        stack: ToolStack) -> None:
    call_id, token = start_call(stack)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "book_slot", "arguments": {"slot": "never"}}}
    before = len(stack.operator.received)
    for authorization in (None, "Bearer not-a-token", f"Basic {token}", "Bearer "):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        answer = requests.post(f"{stack.urls[0]}/mcp", json=body, headers=headers, timeout=10)
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] == -32001
    # The call ends: its token stops working.
    channel = stack.store.get_call(call_id).channel
    stack.running.service.event(104, channel=channel, seq=2, reason=1)
    wait_until(lambda: stack.store.get_call(call_id).state == "ended",
               message="the call to end")
    answer = requests.post(f"{stack.urls[1]}/mcp", json=body, timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    assert len(stack.operator.received) == before
    assert stack.store.tool_calls_of(call_id) == []


def test_end_call_stops_the_agent_and_ends_the_call(stack: ToolStack) -> None:
    call_id, token = start_call(stack)
    channel = stack.store.get_call(call_id).channel

    async def end(session: ClientSession) -> Any:
        # Listed first, as an agent does when it starts: the SDK checks a result against the
        # tool's listing, and once the call has ended its token no longer lists anything.
        await session.list_tools()
        return await session.call_tool("end_call", {"reason": "the caller said goodbye"})

    result = asyncio.run(with_session(stack.urls[0], token, end))
    assert not result.isError
    wait_until(lambda: stack.store.get_call(call_id).state == "ended",
               message="the call to end")
    assert stack.store.get_call(call_id).end_reason == "agent_ended"
    wait_until(lambda: not [a for a in stack.running.sandbox.agents(channel)
                            if a["state"] in RUNNING], message="the agent to stop")


def test_transfer_sends_the_gateway_a_transfer_to_the_named_destination(
        stack: ToolStack) -> None:
    number = f"+1800{uuid.uuid4().int % 10**7:07d}"
    line = requests.post(f"{stack.urls[0]}/api/lines", headers=ADMIN, timeout=10,
                         json={"number": number, "persona": "booker"})
    assert line.status_code == 201, line.text
    # A phone call through the sandbox's SIP gateway: the lookup gives it the line's persona and
    # the gateway's call id, which a transfer needs.
    dialled = requests.post(f"{stack.running.sandbox.url}/_sandbox/sip/dial", timeout=15, json={
        "to": number, "from": "+15551234567", "duration_s": 30}).json()
    assert dialled["status"] == "bridged", dialled
    channel = dialled["channel"]
    call = wait_until(lambda: [c for c in stack.store.calls_in_channel(channel)
                               if c.state == "active" and c.gateway_callid],
                      timeout=15, message="the call")[0]
    callid = call.gateway_callid
    token = new_token()
    stack.store.add_call_token(call.id, token_hash(token))

    async def transfer(session: ClientSession) -> Any:
        await session.list_tools()
        return await session.call_tool("transfer_call", {"destination": "desk"})

    result = asyncio.run(with_session(stack.urls[1], token, transfer))
    assert not result.isError, result.content[0].text
    transfers = [r for r in stack.running.sandbox.requests("sip:transfer")
                 if r["body"].get("callid") == callid]
    assert len(transfers) == 1 and transfers[0]["body"]["destination"] == "+18005550123"
    # The gateway takes the caller out of the channel: the call ends, by the service's own
    # record of the transfer or by the caller's leave that follows it, whichever lands first.
    wait_until(lambda: stack.store.get_call(call.id).state == "ended", message="the call ended")
    assert "transferred" in [e["kind"] for e in stack.store.timeline(call.id)]


def test_500_random_and_malformed_bodies_get_no_5xx(stack: ToolStack) -> None:
    _, token = start_call(stack)
    rng = random.Random(17)
    methods = ["initialize", "ping", "tools/list", "tools/call", "notifications/initialized",
               "resources/list", "", None, 7]
    values: list[Any] = [None, True, 0, -1, 2**70, 1.5, "", "x" * 300, [], {}, [1, {"a": 2}],
                         {"name": "book_slot"}, {"name": "end_call", "arguments": []},
                         {"name": "flag_urgent", "arguments": {"summary": 5}},
                         {"protocolVersion": "2031-01-01"}]
    statuses = []
    with requests.Session() as session:
        for n in range(500):
            statuses.append(one_malformed_post(session, stack.urls[n % 2], token, rng, n,
                                               methods, values))
    assert set(statuses) <= {200, 202, 400}


def one_malformed_post(session: requests.Session, url: str, token: str, rng: random.Random,
                       n: int, methods: list[Any], values: list[Any]) -> int:
    shape = rng.randrange(5)
    if shape == 0:
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
    elif shape == 1:
        raw = json.dumps(rng.choice(values)).encode()
    else:
        message: dict[str, Any] = {"jsonrpc": rng.choice(["2.0", "2.0", "1.0", None])}
        if rng.random() < 0.8:
            message["method"] = rng.choice(methods)
        if rng.random() < 0.7:
            message["id"] = rng.choice([n, str(n), None, True, [n], {"n": n}])
        if rng.random() < 0.7:
            message["params"] = rng.choice(values)
        raw = json.dumps([message, message] if shape == 4 else message).encode()
    answer = session.post(f"{url}/mcp", data=raw, timeout=10, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream"})
    assert answer.status_code < 500, (raw, answer.text)
    if answer.content:
        answer.json()
    return answer.status_code


SCRIPTS = ("triage", "support", "tarot", "orders", "appointments", "support_faq",
           "support_unknown")


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_built_in_personas_script_plays_through_the_real_endpoint(stack: ToolStack,
                                                                       script: str) -> None:
    """`flask simulate call --script <persona>`: the sandbox's agent lists the persona's tools
    from the join's MCP server entry and calls them as the script's caller lines lead it to."""
    env = {**stack.running.env, "LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "app", "simulate", "call",
         "--url", stack.urls[0], "--script", script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "turn 1:" in result.stdout
    assert "->" in result.stdout  # a tool was called
