"""Issue 3's acceptance for the simulator: `flask simulate call` against the running service."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.integration.harness import ROOT, wait_until

pytestmark = pytest.mark.integration
FLASK = str(Path(sys.executable).parent / "flask")
ADMIN = {"Authorization": "Bearer sandbox-admin-token"}
RUNNING = ("STARTING", "RUNNING")


def simulate(stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "LOG_LEVEL": "WARNING"}
    return subprocess.run([FLASK, "--app", "app", "simulate", "call", "--url",
                           stack.service.url, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def calls_in(stack, channel: str) -> list[dict]:
    return requests.get(f"{stack.service.url}/api/calls", params={"channel": channel},
                        headers=ADMIN, timeout=10).json()["calls"]


def test_duplicates_and_reordering_still_give_exactly_one_agent_and_say_so(fresh):
    result = simulate(fresh, "--duration", "1", "--duplicates", "3", "--reorder")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "result: OK: exactly one agent was started" in result.stdout
    assert result.stdout.count("agent started: ") == 1
    assert "agent stopped: call ended" in result.stdout
    assert "late copy of the join" in result.stdout and "stale" in result.stdout


def test_a_dropped_leave_is_ended_by_the_sandboxs_idle_timeout_visible_in_the_timeline(fresh):
    # Routed to the "quick" persona (idle_timeout 2 s) by PERSONA_ROUTES in the test harness.
    result = simulate(fresh, "--duration", "1", "--drop-leave", "--channel",
                      fresh.channel("idle"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the leave event is dropped" in result.stdout
    assert "ConvoAI: agent left (Idle for too long)" in result.stdout


def test_the_simulator_fails_loudly_when_the_service_refuses_its_signature(fresh):
    channel = fresh.channel("secret")
    result = simulate(fresh, "--duration", "0", "--secret", "not-the-secret", "--channel",
                      channel, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("simulate: the service refused the NCS signature")
    assert len(result.stderr.splitlines()) == 1
    assert calls_in(fresh, channel) == []


def test_a_wrong_admin_token_exits_1_in_one_line_before_the_caller_joins(fresh):
    # The service has ADMIN_TOKEN set (sandbox-admin-token); the simulator brings another.
    channel = fresh.channel("token")
    result = simulate(fresh, "--duration", "0", "--token", "not-the-token", "--channel",
                      channel, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr == ("simulate: the service refused the admin token (missing or wrong "
                             "bearer token): set ADMIN_TOKEN (or --token) to the service's. "
                             "Nothing was sent.\n")
    assert calls_in(fresh, channel) == []
    assert fresh.sandbox.agents(channel) == []


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_after_the_join_the_simulator_still_sends_the_leave(fresh, stop):
    channel = fresh.channel("interrupted")
    simulator = subprocess.Popen(
        [FLASK, "--app", "app", "simulate", "call", "--url", fresh.service.url, "--duration",
         "60", "--channel", channel], cwd=ROOT, env={**fresh.env, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: [a for a in fresh.sandbox.agents(channel) if a["state"] == "RUNNING"],
                   timeout=20, message="the call's agent")
        simulator.send_signal(stop)
        out, err = simulator.communicate(timeout=30)
    finally:
        if simulator.poll() is None:
            simulator.kill()
            simulator.wait()
    assert simulator.returncode != 0
    assert "-> 104 caller left" in out, out + err
    wait_until(lambda: [c["state"] for c in calls_in(fresh, channel)] == ["ended"], timeout=20,
               message="the call to end")
    assert not [a for a in fresh.sandbox.agents(channel) if a["state"] in RUNNING]


def test_the_simulator_says_so_in_one_line_when_the_service_is_unreachable(fresh):
    env = {**fresh.env, "LOG_LEVEL": "WARNING"}
    result = subprocess.run([FLASK, "--app", "app", "simulate", "call", "--url",
                             "http://127.0.0.1:9"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("simulate: cannot reach")
    assert "Traceback" not in result.stderr


def storm_agents(stack) -> list[dict]:
    """The sandbox's agents in the storm's channels: the stack is shared by every file, and an
    earlier file's call may still be settling there."""
    return [a for a in stack.sandbox.agents() if a["channel"].startswith("storm_")]


def test_a_storm_of_calls_is_answered_with_200s_and_leaves_no_agent_running(fresh):
    result = subprocess.run(
        [FLASK, "--app", "app", "simulate", "storm", "--url", fresh.service.url, "--calls", "20",
         "--concurrency", "10", "--duration", "0.5", "--duplicates", "1"],
        cwd=ROOT, env={**fresh.env, "LOG_LEVEL": "WARNING"}, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "20 calls, 80 webhooks" in result.stdout and "answers {200: 80}" in result.stdout
    wait_until(lambda: len(storm_agents(fresh)) == 20 and not [
        a for a in storm_agents(fresh) if a["state"] in ("STARTING", "RUNNING")],
        timeout=20, message="20 agents, all stopped")


def test_an_interrupted_storm_leaves_no_agent_running(fresh):
    storm = subprocess.Popen(
        [FLASK, "--app", "app", "simulate", "storm", "--url", fresh.service.url, "--calls", "40",
         "--concurrency", "4", "--duration", "60"], cwd=ROOT,
        env={**fresh.env, "LOG_LEVEL": "WARNING"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: len([a for a in storm_agents(fresh)
                                if a["state"] == "RUNNING"]) == 4,
                   timeout=20, message="the first 4 calls' agents")
        storm.send_signal(signal.SIGINT)
        storm.communicate(timeout=30)
    finally:
        if storm.poll() is None:
            storm.kill()
            storm.wait()
    assert storm.returncode != 0
    wait_until(lambda: not [a for a in storm_agents(fresh) if a["state"] in RUNNING],
               timeout=20, message="every agent stopped")
    assert len(storm_agents(fresh)) == 4  # no call started after the interruption
