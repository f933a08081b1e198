"""Issue 19 from outside: campaigns and scheduled calls through the service under gunicorn, with
the sandbox as the phone network (sandbox/phone_network.py: the fictional 555-01xx numbers
answer, are busy, ring out, reach voicemail or fail). Two instances on one PostgreSQL, one
killed mid-campaign, dial no attempt twice and lose no contact; a scheduled call fires once
after a restart."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
import requests

from sandbox.phone_network import example
from tests.integration.conftest import SECRETS
from tests.integration.harness import Service, running_stack, stack_database, wait_until

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer sandbox-admin-token"}
ALWAYS = {"start": "00:00", "end": "24:00",
          "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
FINAL = ("completed", "exhausted", "opted_out", "suppressed", "cancelled")


def api(service: Service, method: str, path: str, **kwargs):
    return requests.request(method, f"{service.url}{path}", timeout=15,
                            **{"headers": ADMIN, **kwargs})


def dials(sandbox) -> list[dict]:
    return sandbox.requests("sip:outbound")


def test_a_campaign_gives_every_contact_its_disposition_and_final_state(fresh):
    kinds = {example("answered", 10): "answered", example("answered", 11): "answered",
             example("busy", 10): "busy", example("no_answer", 10): "no_answer",
             example("failed", 10): "failed", example("voicemail", 10): "voicemail"}
    suppressed = example("answered", 12)
    assert api(fresh.service, "POST", "/api/suppressions",
               json={"number": suppressed}).status_code in (200, 201)
    created = api(fresh.service, "POST", "/api/campaigns", json={
        "persona": "appointments", "from": "+15555550100", "window": ALWAYS,
        "contacts": [{"number": n} for n in [*kinds, suppressed]],
        "pacing": {"max_concurrent": 2, "per_minute": 60},
        "retry": {"max_attempts": 2, "delay_s": {"busy": 1, "no_answer": 1, "failed": None,
                                                 "voicemail": None}}})
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    status = wait_until(
        lambda: (s := api(fresh.service, "GET", f"/api/campaigns/{cid}").json())["state"]
        == "completed" and s, timeout=90, interval=0.5, message="the campaign to complete")
    contacts = {c["number"]: c for c in status["contacts"]}
    assert contacts[suppressed]["state"] == "suppressed"
    expected = {"answered": ("completed", ["answered"]),
                "busy": ("exhausted", ["busy", "busy"]),
                "no_answer": ("exhausted", ["no_answer", "no_answer"]),
                "failed": ("exhausted", ["failed"]),
                "voicemail": ("exhausted", ["voicemail"])}
    for number, kind in kinds.items():
        contact = contacts[number]
        assert (contact["state"], [a["disposition"] for a in contact["attempts"]]) \
            == expected[kind], (kind, contact)
    # The phone network saw each attempt once, and never the suppressed number.
    dialled = Counter(r["body"]["to"] for r in dials(fresh.sandbox))
    assert suppressed not in dialled
    assert {n: dialled[n] for n in kinds} == {n: len(expected[k][1]) for n, k in kinds.items()}
    answered = contacts[example("answered", 10)]["attempts"][0]
    assert answered["detail"]["duration_s"] > 0
    # The results export says the same.
    export = api(fresh.service, "GET", f"/api/campaigns/{cid}/results.csv")
    assert export.status_code == 200 and export.text.count("\n") == 1 + 9


@pytest.mark.postgres
def test_two_instances_one_killed_mid_campaign_dial_no_attempt_twice_and_lose_no_one(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    log_dir = tmp_path_factory.mktemp("outbound-kill")
    database_url = stack_database("postgresql", log_dir, "phone_agent_outbound_kill")
    numbers = [example("answered", i) for i in range(16)]
    # A lost claim is given up after WORK_LEASE_S (more than JOIN_BUDGET_S, 7 s), a lost dial
    # after DIAL_TIMEOUT_S (10 s at the least): the start the killed instance left is taken over
    # before its dial is given up as lost.
    env = {"WORK_LEASE_S": "8", "DIAL_TIMEOUT_S": "10"}
    with running_stack(log_dir, database_url, SECRETS, env=env, instances=2, name="instance",
                       notify=1) as running:
        running.sandbox.reset(concurrency_limit=200)
        first, second = running.services
        for service in (first, second):  # every worker's periodic runner starts with a request
            for _ in range(6):
                api(service, "GET", "/api/campaigns")
        created = api(second, "POST", "/api/campaigns", json={
            "persona": "appointments", "from": "+15555550100", "window": ALWAYS,
            "contacts": [{"number": n} for n in numbers],
            "pacing": {"max_concurrent": 4, "per_minute": 600},
            "retry": {"max_attempts": 3, "delay_s": {"failed": 1}}})
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        # Killed once the first agents are joining: the dials that follow their joins are
        # in flight in either instance.
        wait_until(lambda: running.sandbox.requests("join"), timeout=30, interval=0.01,
                   message="the first agent's join")
        os.killpg(first.process.proc.pid, signal.SIGKILL)  # mid-campaign, mid-dial maybe
        first.process.proc.wait()
        status = wait_until(
            lambda: (s := api(second, "GET", f"/api/campaigns/{cid}").json())["state"]
            == "completed" and s, timeout=120, interval=0.5,
            message="the campaign to complete on the surviving instance")
        sent = dials(running.sandbox)
    attempts = [a for c in status["contacts"] for a in c["attempts"]]
    # None lost: every contact reached a final state, each answered in the end.
    assert {c["state"] for c in status["contacts"]} == {"completed"}, status["counts"]
    # No attempt dialled twice: one dial per attempt's call (channel), at most.
    by_channel = Counter(r["body"]["channel"] for r in sent)
    assert by_channel and max(by_channel.values()) == 1
    calls = {a["call_id"] for a in attempts if a["call_id"]}
    assert len(calls) == len([a for a in attempts if a["call_id"]])
    dialled = Counter(r["body"]["to"] for r in sent)
    for contact in status["contacts"]:
        assert dialled[contact["number"]] <= len(contact["attempts"])


def test_a_scheduled_call_fires_once_at_its_time_after_a_restart(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    log_dir = tmp_path_factory.mktemp("outbound-restart")
    database_url = stack_database("sqlite", log_dir, "unused")
    number = example("answered", 19)
    with running_stack(log_dir, database_url, SECRETS, name="before") as running:
        at = datetime.fromtimestamp(time.time() + 8, UTC).replace(microsecond=0)
        placed = api(running.service, "POST", "/api/calls", json={
            "to": number, "persona": "appointments", "at": at.isoformat()})
        assert placed.status_code == 202, placed.text
        call_id = placed.json()["id"]
        assert placed.json()["state"] == "scheduled"
        assert dials(running.sandbox) == []  # not before its time
    with running_stack(log_dir, database_url, SECRETS, name="after") as running:
        api(running.service, "GET", "/api/campaigns")  # the workers' runners start
        record = wait_until(
            lambda: (r := api(running.service, "GET", f"/api/calls/{call_id}").json())[
                "state"] == "ended" and r, timeout=60, interval=0.5,
            message="the scheduled call to be dialled and end")
        assert [r["body"]["to"] for r in dials(running.sandbox)] == [number]
    due = next(e for e in record["timeline"] if e["kind"] == "dial_due")
    assert datetime.fromisoformat(due["at"].replace("Z", "+00:00")) >= at
    assert record["agent_id"] and record["end_reason"]
