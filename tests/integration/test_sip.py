"""Issue 5 from outside: the lookup hook, gateway events, outbound calls and the admin API, with
the sandbox playing Agora's SIP gateway."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.integration.harness import EVENTS_TOKEN, LOOKUP_AUTH, LOOKUP_TOKEN, wait_until

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": "Bearer sandbox-admin-token"}
RUNNING = ("STARTING", "RUNNING")


def api(stack, method, path, **kwargs):
    return requests.request(method, f"{stack.service.url}{path}", timeout=15,
                            **{"headers": ADMIN, **kwargs})


def call_record(stack, call_id):
    return api(stack, "GET", f"/api/calls/{call_id}").json()


def new_line(stack, persona="support"):
    number = f"+1800{uuid.uuid4().int % 10**7:07d}"
    response = api(stack, "POST", "/api/lines", json={"number": number, "persona": persona,
                                                      "variables": {"team": "billing"}})
    assert response.status_code == 201, response.text
    return number


def lookup(stack, did, *, token=LOOKUP_TOKEN, callid=None):
    return requests.post(f"{stack.service.url}/sip/lookup", timeout=15,
                         headers={"Authorization": f"Bearer {token}"},
                         json={"did": did, "pin": "", "callerid": "+15551234567",
                               "callid": callid or uuid.uuid4().hex, "sip_headers": {}})


def test_lookup_needs_the_bearer_token_and_refuses_unknown_numbers(fresh):
    assert lookup(fresh, "+18005550199", token="wrong-token-000000").status_code == 401
    assert requests.post(f"{fresh.service.url}/sip/lookup", json={}, timeout=5
                         ).status_code == 401
    refused = lookup(fresh, "+18009990000")
    assert refused.status_code == 404 and refused.json()["error"] == "refused"


def test_an_extension_line_is_found_with_exactly_the_provisioned_header(fresh):
    """Agora's inbound example as the gateway sends it: "to": "7373", "from": "benweekes", and
    the Authorization header exactly as supplied at provisioning (here a Basic one)."""
    added = api(fresh, "POST", "/api/lines", json={"number": "7373", "persona": "support"})
    assert added.status_code == 201 and added.json()["number"] == "7373"

    callid = uuid.uuid4().hex

    def post(did, auth):
        return requests.post(f"{fresh.service.url}/sip/lookup", timeout=15,
                             headers={"Authorization": auth},
                             json={"did": did, "pin": "", "callerid": "benweekes",
                                   "callid": callid, "sip_headers": {}})

    credential = LOOKUP_AUTH.split()[1]
    for wrong in (f"Bearer {credential}", credential, f"{LOOKUP_AUTH}x"):
        assert post("7373", wrong).status_code == 401
    assert post("<script>", LOOKUP_AUTH).status_code == 404  # no line can have it: not a 400
    answer = post("7373", LOOKUP_AUTH)
    assert answer.status_code == 200, answer.text
    channel = answer.json()["channel"]
    [call] = api(fresh, "GET", "/api/calls", params={"channel": channel}).json()["calls"]
    assert (call["called_number"], call["caller_number"]) == ("7373", "benweekes")
    # The caller never comes: hang the phone leg up, which stops the early agent.
    requests.post(answer.json()["webhook_url"], timeout=5, json={
        "event": "call_hangup", "callid": callid, "channel": channel})
    wait_until(lambda: not [a for a in fresh.sandbox.agents(channel) if a["state"] in RUNNING],
               message="the agent stopped")


def test_a_call_through_a_line_gets_a_fresh_channel_and_an_agent_before_the_caller(fresh):
    number = new_line(fresh, persona="orders")
    dialled = requests.post(f"{fresh.sandbox.url}/_sandbox/sip/dial", timeout=15, json={
        "to": number, "from": "+15551234567", "duration_s": 3}).json()
    assert dialled["status"] == "bridged", dialled
    channel = dialled["channel"]
    assert channel.startswith("line_")
    # The sandbox's gateway checked the token the lookup returned for that channel and uid 111.
    agent = wait_until(lambda: [a for a in fresh.sandbox.agents(channel)
                                if a["state"] in RUNNING], message="the agent")[0]
    joins = [r for r in fresh.sandbox.requests("join")
             if r["body"]["properties"]["channel"] == channel]
    assert len(joins) == 1
    assert joins[0]["body"]["properties"]["labels"]["persona"] == "orders"
    variables = joins[0]["body"]["properties"]["llm"]["template_variables"]
    assert variables["caller_number"] == "+15551234567"
    assert variables["called_number"] == number and variables["team"] == "billing"
    # With START_AGENT_ON_LOOKUP the join left before the caller's NCS join was even sent.
    caller_joins = wait_until(lambda: [d for d in requests.get(
        f"{fresh.sandbox.url}/_sandbox/ncs", params={"channel": channel}, timeout=5).json()[
        "deliveries"] if d["productId"] == 1 and d["eventType"] == 103 and d["notifyMs"]],
        message="the caller's NCS join")
    assert joins[0]["at"] * 1000 < min(d["notifyMs"] for d in caller_joins)
    # The caller's own join (NCS 103) arrives after the lookup and starts nothing more.
    wait_until(lambda: not [a for a in fresh.sandbox.agents(channel) if a["state"] in RUNNING],
               timeout=20, message="the agent stopped after the hang-up")
    assert len(fresh.sandbox.agents(channel)) == 1
    # The sandbox marks the agent stopped when the leave arrives; the service records the call
    # as ended once the leave has been answered, a moment later.
    calls = wait_until(lambda: (found := api(fresh, "GET", "/api/calls", params={
        "channel": channel}).json()["calls"]) and found[0]["state"] != "stopping" and found,
        message="the call's record past stopping")
    assert len(calls) == 1 and calls[0]["agent_id"] == agent["agent_id"]
    assert calls[0]["state"] == "ended"


def test_a_gateway_hangup_alone_stops_the_agent(fresh):
    number = new_line(fresh)
    callid = uuid.uuid4().hex
    answer = lookup(fresh, number, callid=callid)
    assert answer.status_code == 200
    channel = answer.json()["channel"]
    assert answer.json()["uid"] == "111" and answer.json()["audio_scenario"] == "10"
    assert answer.json()["webhook_url"].endswith(f"/sip/events/{EVENTS_TOKEN}")
    fresh.service.event(103, channel=channel, seq=1)
    wait_until(lambda: [a for a in fresh.sandbox.agents(channel) if a["state"] in RUNNING],
               message="the agent")
    hangup = requests.post(answer.json()["webhook_url"], timeout=5, json={
        "event": "call_hangup", "callid": callid, "channel": channel, "uid": "111",
        "timestamp": int(time.time()), "hangup_cause": "NORMAL_CLEARING", "duration": "12",
        "billsec": "10", "sip_disposition": "recv_bye"})
    assert hangup.status_code == 200 and hangup.json()["outcome"] == "call_ending"
    wait_until(lambda: not [a for a in fresh.sandbox.agents(channel) if a["state"] in RUNNING],
               message="the agent stopped by the gateway's hang-up alone")


def test_a_wrong_events_token_is_a_404(fresh):
    response = requests.post(f"{fresh.service.url}/sip/events/not-the-token", timeout=5,
                             json={"event": "call_hangup"})
    assert response.status_code == 404


def test_an_outbound_call_starts_its_agent_dials_and_ends_when_the_callee_hangs_up(fresh):
    placed = api(fresh, "POST", "/api/calls", json={"to": "+15557654321",
                                                    "persona": "appointments",
                                                    "variables": {"name": "Ana"}})
    assert placed.status_code == 202, placed.text
    call_id = placed.json()["id"]
    record = wait_until(lambda: (r := call_record(fresh, call_id))["state"] == "ended" and r,
                        timeout=20, message="the outbound call to end")
    assert record["agent_id"] and record["persona"] == "appointments"
    kinds = [e["kind"] for e in record["timeline"]]
    assert "agent_started" in kinds and "outbound_answered" in kinds
    assert kinds.index("agent_started") < kinds.index("outbound_answered")
    assert not [a for a in fresh.sandbox.agents(record["channel"]) if a["state"] in RUNNING]


def test_a_busy_outbound_call_fails_and_its_agent_is_stopped(fresh):
    placed = api(fresh, "POST", "/api/calls", json={"to": "+15550000000"})  # ...0000 is busy
    assert placed.status_code == 202
    record = wait_until(lambda: (r := call_record(fresh, placed.json()["id"]))["state"] in (
        "ended", "failed") and r, timeout=20, message="the busy call to end")
    # The gateway says Busy twice: in outbound's answer and in its call_hangup event
    # (USER_BUSY). Whichever arrives first closes the call; both name the cause.
    assert record["end_reason"] in ("outbound_busy", "gateway_user_busy"), record
    wait_until(lambda: not [a for a in fresh.sandbox.agents(record["channel"])
                            if a["state"] in RUNNING], message="the agent stopped")


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/calls"), ("GET", "/api/calls/x"), ("POST", "/api/calls"),
    ("GET", "/api/lines"), ("POST", "/api/lines"), ("DELETE", "/api/lines/+18005550100"),
    ("POST", "/api/calls/x/hangup"), ("POST", "/api/calls/x/transfer"),
    ("POST", "/api/calls/x/dtmf"),
])
@pytest.mark.parametrize("token", [None, "Bearer wrong", "sandbox-admin-token"])
def test_every_api_route_needs_the_admin_token(fresh, method, path, token):
    headers = {"Authorization": token} if token else {}
    response = requests.request(method, f"{fresh.service.url}{path}", headers=headers,
                                json={}, timeout=5)
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"


def flask_cli(stack, *args):
    import subprocess
    import sys
    from pathlib import Path

    from tests.integration.harness import ROOT

    return subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "app", *args],
                          cwd=ROOT, env={**stack.env, "LOG_LEVEL": "WARNING"},
                          capture_output=True, text=True, timeout=60)


def test_provision_reserves_a_number_with_string_fields_and_a_valid_token(fresh):
    result = flask_cli(fresh, "sip", "provision", "--region", "NA", "--persona", "tarot",
                       "--label", "tarot line")
    assert result.returncode == 0, result.stderr
    assert "PIN " in result.stdout and "expires " in result.stdout
    assert "persona tarot" in result.stdout
    sent = [r for r in fresh.sandbox.requests("sip:inbound")]
    assert len(sent) == 1 and sent[0]["status"] == 200
    body = sent[0]["body"]
    assert body["action"] == "inbound" and body["region"] == "AREA_CODE_NA"
    assert all(isinstance(v, str) for k, v in body.items() if k != "video")
    assert body["uid"] == "111" and body["channel"].startswith("pstn_tarot_")
    # Calling the reserved number with its PIN reaches the channel, and the tarot persona.
    numbers = api(fresh, "GET", "/api/numbers").json()["numbers"]
    reservation = next(n for n in numbers if n["channel"] == body["channel"])
    dialled = requests.post(f"{fresh.sandbox.url}/_sandbox/sip/dial", timeout=15, json={
        "to": reservation["number"], "pin": reservation["pin"], "duration_s": 2}).json()
    assert dialled["status"] == "bridged" and dialled["channel"] == body["channel"]
    join = wait_until(lambda: [r for r in fresh.sandbox.requests("join")
                               if r["body"]["properties"]["channel"] == body["channel"]],
                      message="the agent's join")[0]
    assert join["body"]["properties"]["labels"]["persona"] == "tarot"
    released = flask_cli(fresh, "sip", "release", reservation["id"])
    assert released.returncode == 0, released.stderr
    assert not [n for n in api(fresh, "GET", "/api/numbers").json()["numbers"]
                if n["id"] == reservation["id"]]


def test_provision_refuses_an_unknown_persona_in_one_line(fresh):
    result = flask_cli(fresh, "sip", "provision", "--persona", "nobody")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "sip: unknown persona 'nobody'"


def test_the_sip_credentials_never_reach_the_output(fresh):
    """The events path carries SIP_EVENTS_TOKEN and access logs print paths: it must be
    redacted there, like the lookup token and every other secret."""
    requests.post(f"{fresh.service.url}/sip/events/{EVENTS_TOKEN}", timeout=5,
                  json={"event": "call_ringing", "callid": "none"})
    lookup(fresh, "+18009990001")
    from tests.integration.conftest import SECRETS

    output = fresh.service.process.output()
    leaked = [s for s in (LOOKUP_TOKEN, EVENTS_TOKEN, *SECRETS.values()) if s in output]
    assert not leaked
    assert "/sip/events/***" in output  # the request was logged, with the token redacted


def test_a_pin_entered_on_a_line_can_choose_the_persona(fresh):
    number = f"+1888{uuid.uuid4().int % 10**7:07d}"
    assert api(fresh, "POST", "/api/lines", json={
        "number": number, "persona": "support", "pins": {"2": "tarot"}}).status_code == 201
    bad = api(fresh, "POST", "/api/lines", json={"number": number, "pins": {"2": "nobody"}})
    assert bad.status_code == 400
    for pin, persona in (("2", "tarot"), ("9", "support")):
        answer = requests.post(f"{fresh.service.url}/sip/lookup", timeout=15, headers={
            "Authorization": f"Bearer {LOOKUP_TOKEN}"}, json={
            "did": number, "pin": pin, "callerid": "", "callid": uuid.uuid4().hex,
            "sip_headers": {}})
        channel = answer.json()["channel"]
        join = wait_until(lambda ch=channel: [r for r in fresh.sandbox.requests("join")
                                              if r["body"]["properties"]["channel"] == ch],
                          message="the early join")[0]
        assert join["body"]["properties"]["labels"]["persona"] == persona
