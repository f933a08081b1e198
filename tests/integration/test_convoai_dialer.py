"""OUTBOUND_BACKEND=convoai from outside: the service under gunicorn dials through the
sandbox's ConvoAI telephony (one /call, never the gateway's outbound nor a join), follows the
call's NCS 202 states on its timeline, and hangs it up through /calls/{agent_id}/hangup."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from sandbox import phone_network
from tests.integration.conftest import SECRETS, Stack
from tests.integration.harness import running_stack, stack_database, wait_until

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": "Bearer sandbox-admin-token"}
RUNNING = ("STARTING", "RUNNING")


@pytest.fixture(scope="module")
def convoai_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("stack-convoai-dialer")
    database_url = stack_database("sqlite", log_dir, "")
    # The callee stays on until hung up, so the hang-up below is the operator's.
    env = {"OUTBOUND_BACKEND": "convoai", "SANDBOX_OUTBOUND_CALL_DURATION_S": ""}
    with running_stack(log_dir, database_url, SECRETS, env=env,
                       name="convoai-dialer") as running:
        yield Stack(running.sandbox, running.service, "sqlite", running.env)


def api(stack: Stack, method: str, path: str, **kwargs):
    return requests.request(method, f"{stack.service.url}{path}", timeout=15,
                            **{"headers": ADMIN, **kwargs})


def convoai_kinds(record: dict) -> list[str]:
    return [e["kind"] for e in record["timeline"] if e["source"] == "convoai"]


def test_a_convoai_dialled_call_is_followed_by_its_202s_and_hung_up_through_convoai(
        convoai_stack):
    stack = convoai_stack
    stack.sandbox.reset()
    to = phone_network.example("answered")
    placed = api(stack, "POST", "/api/calls", json={"to": to, "persona": "appointments",
                                                    "variables": {"name": "Ana"}})
    assert placed.status_code == 202, placed.text
    call_id = placed.json()["id"]

    record = wait_until(lambda: (r := api(stack, "GET", f"/api/calls/{call_id}").json())[
        "agent_id"] and "call_answered" in convoai_kinds(r) and r, timeout=20,
        message="the call answered, as ConvoAI's 202 said")
    channel, agent_id = record["channel"], record["agent_id"]
    assert record["state"] == "active"
    kinds = convoai_kinds(record)
    assert "outbound_call_placed" in kinds
    assert kinds.index("call_ringing") < kinds.index("call_answered")

    # One /call, with the agent's name and the numbers; no join and no gateway dial.
    [call] = stack.sandbox.requests("place_call")
    assert call["status"] == 200 and call["body"]["name"] == record["agent_name"]
    assert call["body"]["sip"]["to_number"] == to
    assert call["body"]["properties"]["channel"] == channel
    assert stack.sandbox.requests("join") == []
    gateway_calls = stack.sandbox.control("GET", "sip/calls")["calls"]
    assert [c for c in gateway_calls if c["channel"] == channel] == []
    [phone] = stack.sandbox.control("GET", "phone-calls")["calls"]
    assert (phone["agent_id"], phone["state"]) == (agent_id, "answered")

    hung_up = api(stack, "POST", f"/api/calls/{call_id}/hangup")
    assert hung_up.status_code == 200, hung_up.text

    [hangup] = stack.sandbox.requests("hang_up_call")
    assert hangup["path"].endswith(f"/calls/{agent_id}/hangup")
    ended = wait_until(lambda: (r := api(stack, "GET", f"/api/calls/{call_id}").json())[
        "state"] == "ended" and "call_hangup" in convoai_kinds(r) and r, timeout=20,
        message="the call ended and its HANGUP recorded")
    assert ended["end_reason"] == "operator_hangup"
    assert stack.sandbox.control("GET", "phone-calls")["calls"][0]["reason"] == "request"
    wait_until(lambda: not [a for a in stack.sandbox.agents(channel) if a["state"] in RUNNING],
               message="the agent stopped")


def test_a_number_that_rings_out_ends_as_outbound_no_answer(convoai_stack):
    stack = convoai_stack
    stack.sandbox.reset()
    placed = api(stack, "POST", "/api/calls", json={"to": phone_network.example("no_answer")})
    assert placed.status_code == 202, placed.text
    record = wait_until(lambda: (r := api(stack, "GET", f"/api/calls/{placed.json()['id']}")
                                 .json())["state"] == "ended" and r, timeout=20,
                        message="the unanswered call to end")
    assert record["end_reason"] == "outbound_no_answer"
    assert "call_answered" not in convoai_kinds(record)
