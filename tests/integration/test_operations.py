"""Issue 6's acceptance, from outside: call records, the reconciler and the cost guards, with the
service under gunicorn against the sandbox over loopback."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import jsonschema
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from convoai.client import ConvoAIClient
from convoai.payload import build_join_properties
from personas import load_registry
from personas.startup import load_settings
from tests.integration.harness import ROOT, Service, free_port, wait_until

pytestmark = pytest.mark.integration
RUNNING = ("STARTING", "RUNNING")


def admin(stack) -> dict[str, str]:
    return {"Authorization": "Bearer sandbox-admin-token"}


def the_call(stack, channel: str) -> dict:
    """The channel's one call, in detail (an empty dict until the service has recorded it)."""
    calls = requests.get(f"{stack.service.url}/api/calls", params={"channel": channel},
                         headers=admin(stack), timeout=10).json()["calls"]
    assert len(calls) <= 1, calls
    if not calls:
        return {}
    return requests.get(f"{stack.service.url}/api/calls/{calls[0]['id']}",
                        headers=admin(stack), timeout=10).json()


def test_a_simulated_call_has_its_timeline_transcript_and_time_to_agent(fresh):
    channel = fresh.channel("record")
    fresh.sandbox.control("POST", "calls", json={"channel": channel, "duration_s": 3})
    detail = wait_until(lambda: (d := the_call(fresh, channel)).get("state") == "ended"
                        and d["transcript"] and d, timeout=30, message="the call's record")
    kinds = [event["kind"] for event in detail["timeline"]]
    for expected in ("caller_joined", "agent_started", "agent_joined", "call_ending",
                     "agent_history", "agent_stopped"):
        assert expected in kinds, kinds
    assert kinds.index("caller_joined") < kinds.index("agent_started") < \
        kinds.index("agent_stopped")
    assert all(event["at"].endswith("Z") for event in detail["timeline"])
    assert {"ncs", "service"} <= {event["source"] for event in detail["timeline"]}
    assert isinstance(detail["time_to_agent_ms"], int) and 0 <= detail["time_to_agent_ms"] < 5000
    assert detail["transcript"][0]["role"] == "assistant"
    assert "AI assistant" in detail["transcript"][0]["content"]  # the persona's greeting
    assert {turn["role"] for turn in detail["transcript"]} <= {"assistant", "user"}
    # The post-call analysis, through the sandbox's chat completions endpoint, fits the
    # persona's [analysis.schema] (support: topic and sentiment).
    analysis = wait_until(lambda: (a := the_call(fresh, channel)["analysis"])["state"] == "done"
                          and a, timeout=20, message="the call's analysis")
    persona = load_registry(load_settings(fresh.env, dotenv=False)).get("support")
    jsonschema.validate(analysis["data"], dict(persona.analysis.schema))
    assert analysis["summary"] and isinstance(analysis["success"], bool) and analysis["model"]


def flask_cli(stack, *args: str) -> subprocess.CompletedProcess[str]:
    flask = str(Path(sys.executable).parent / "flask")
    return subprocess.run([flask, "--app", "app", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**stack.env, "LOG_LEVEL": "WARNING"})


def start_outside_the_service(stack, name: str, channel: str) -> str:
    """Start an agent straight on the sandbox's ConvoAI, as another program would."""
    settings = load_settings(stack.env, dotenv=False)
    persona = load_registry(settings).get("support")
    with ConvoAIClient(settings.convoai_api_url, settings.agora_app_id,
                       settings.agora_customer_id, settings.agora_customer_secret) as client:
        properties = build_join_properties(settings, persona, call_id=uuid.uuid4().hex[:16],
                                           channel=channel)
        return client.join(name, properties).agent_id


def test_reconcile_stops_our_orphans_and_never_touches_other_agents(fresh):
    foreign_channel, orphan_channel = fresh.channel("foreign"), fresh.channel("orphan")
    foreign = start_outside_the_service(fresh, "crm-bot-" + uuid.uuid4().hex[:8],
                                        foreign_channel)
    orphan = start_outside_the_service(fresh, "phoneagent-" + uuid.uuid4().hex[:16],
                                       orphan_channel)
    # An agent whose leave was lost: ConvoAI answers "not found" but the agent keeps running.
    lost_channel = fresh.channel("lost")
    assert fresh.service.event(103, channel=lost_channel, seq=1).status_code == 200
    wait_until(lambda: [a for a in fresh.sandbox.agents(lost_channel) if a["state"] in RUNNING],
               message="the call's agent")
    fresh.sandbox.faults(leave_errors=[{"status": 404, "reason": "TaskNotFound"}])
    assert fresh.service.event(104, channel=lost_channel, seq=2, reason=1).status_code == 200
    wait_until(lambda: the_call(fresh, lost_channel).get("state") == "ended",
               message="the call ended in the records")
    assert [a for a in fresh.sandbox.agents(lost_channel) if a["state"] in RUNNING]

    result = flask_cli(fresh, "calls", "reconcile")
    assert result.returncode == 0, result.stderr
    assert "orphans stopped: 2" in result.stdout, result.stdout
    states = {a["agent_id"]: a["state"] for a in fresh.sandbox.agents()}
    assert states[foreign] in RUNNING
    assert states[orphan] not in RUNNING
    assert not [a for a in fresh.sandbox.agents(lost_channel) if a["state"] in RUNNING]
    kinds = [event["kind"] for event in the_call(fresh, lost_channel)["timeline"]]
    assert "orphan_agent_stopped" in kinds
    # Nothing left to do: a second run stops nothing and still leaves the foreign agent.
    again = flask_cli(fresh, "calls", "reconcile", "--json")
    assert again.returncode == 0 and '"orphans_stopped": 0' in again.stdout
    assert {a["agent_id"]: a["state"] for a in fresh.sandbox.agents()}[foreign] in RUNNING


def test_a_call_past_its_personas_limit_is_ended_after_the_goodbye(fresh):
    channel = fresh.channel("brief")  # the "brief" persona: max_call_s = 10
    fresh.sandbox.control("POST", "calls", json={"channel": channel, "duration_s": 120})
    detail = wait_until(lambda: (d := the_call(fresh, channel)).get("state") == "ended" and d,
                        timeout=40, interval=0.5, message="the call ended at its limit")
    assert detail["end_reason"] == "max_call_length"
    kinds = [event["kind"] for event in detail["timeline"]]
    assert kinds.index("goodbye_spoken") < kinds.index("agent_stopped")
    (agent,) = fresh.sandbox.agents(channel)
    spoken = [turn["content"] for turn in agent["history"] if turn["role"] == "assistant"]
    assert spoken[-1] == "Our time is up for today. Thank you for calling, goodbye."
    asked = [(r["kind"], r["status"]) for r in fresh.sandbox.requests()
             if agent["agent_id"] in r["path"]]
    assert ("speak", 200) in asked, asked
    assert asked.index(("speak", 200)) < asked.index(("leave", 200)), asked


@pytest.fixture
def capped(stack, tmp_path):
    """A second service on the same sandbox with MAX_CONCURRENT_CALLS=2, its own database."""
    if stack.backend != "sqlite":
        pytest.skip("one backend is enough for a second service")
    # Its own agent name prefix too: two deployments on one ConvoAI project must not share one,
    # or each one's reconciler would take the other's agents for orphans.
    env = {**stack.env, "MAX_CONCURRENT_CALLS": "2", "AGENT_NAME_PREFIX": "capped",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'capped.db'}"}
    service = Service(tmp_path, env, free_port(), name="capped")
    yield service
    service.process.stop()


def test_a_third_simultaneous_call_starts_no_agent_and_is_counted(fresh, capped):
    channels = [fresh.channel("cap") for _ in range(3)]
    answers = [capped.event(103, channel=c, seq=1).json() for c in channels]
    assert [a["outcome"] for a in answers] == ["call_started", "call_started", "call_refused"]
    running = [c for c in channels
               if [a for a in fresh.sandbox.agents(c) if a["state"] in RUNNING]]
    assert running == channels[:2]
    calls = requests.get(f"{capped.url}/api/calls", headers=admin(fresh), timeout=10).json()
    refused = [c for c in calls["calls"] if c["channel"] == channels[2]]
    assert refused[0]["state"] == "refused"
    assert refused[0]["end_reason"] == "max_concurrent_calls"
    assert refused[0]["agent_id"] is None
    text = requests.get(f"{capped.url}/metrics", timeout=10).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("phone_agent_calls_refused_total",
                    (("reason", "max_concurrent_calls"),))] == 1
    assert samples[("phone_agent_calls_active", ())] == 2
    for channel in channels:
        capped.event(104, channel=channel, seq=2, reason=1)
