"""Issue 3's acceptance for the simulator: `flask simulate call` against the running service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import ROOT, wait_until

pytestmark = pytest.mark.integration


def simulate(stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "LOG_LEVEL": "WARNING"}
    flask = str(Path(sys.executable).parent / "flask")
    return subprocess.run([flask, "--app", "app", "simulate", "call", "--url",
                           stack.service.url, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_duplicates_and_reordering_still_give_exactly_one_agent_and_say_so(fresh):
    result = simulate(fresh, "--duration", "1", "--duplicates", "3", "--reorder")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "result: OK: exactly one agent was started" in result.stdout
    assert result.stdout.count("agent started: ") == 1
    assert "agent stopped: call ended" in result.stdout
    assert "late copy of the join" in result.stdout and "stale" in result.stdout


def test_a_dropped_leave_is_ended_by_the_sandboxs_idle_timeout_visible_in_the_timeline(fresh):
    # Routed to the "quick" persona (idle_timeout 3 s) by PERSONA_ROUTES in the test harness.
    result = simulate(fresh, "--duration", "1", "--drop-leave", "--channel",
                      fresh.channel("idle"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the leave event is dropped" in result.stdout
    assert "ConvoAI: agent left (Idle for too long)" in result.stdout


def test_the_simulator_fails_loudly_when_the_service_refuses_its_signature(fresh):
    result = simulate(fresh, "--duration", "0", "--secret", "not-the-secret", timeout=60)
    assert result.returncode == 1
    assert "answered 401" in result.stderr and "FAILED" in result.stderr


def test_the_simulator_says_so_in_one_line_when_the_service_is_unreachable(fresh):
    env = {**fresh.env, "LOG_LEVEL": "WARNING"}
    flask = str(Path(sys.executable).parent / "flask")
    result = subprocess.run([flask, "--app", "app", "simulate", "call", "--url",
                             "http://127.0.0.1:9"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("simulate: cannot reach")
    assert "Traceback" not in result.stderr




def test_a_storm_of_calls_is_answered_with_200s_and_leaves_no_agent_running(fresh):
    flask = str(Path(sys.executable).parent / "flask")
    result = subprocess.run(
        [flask, "--app", "app", "simulate", "storm", "--url", fresh.service.url, "--calls", "20",
         "--concurrency", "10", "--duration", "0.5", "--duplicates", "1"],
        cwd=ROOT, env={**fresh.env, "LOG_LEVEL": "WARNING"}, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "20 calls, 80 webhooks" in result.stdout and "answers {200: 80}" in result.stdout
    wait_until(lambda: len(fresh.sandbox.agents()) == 20 and not [
        a for a in fresh.sandbox.agents() if a["state"] in ("STARTING", "RUNNING")],
        timeout=20, message="20 agents, all stopped")
