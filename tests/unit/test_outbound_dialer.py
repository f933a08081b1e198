"""The dialer on a real store (SQLite and PostgreSQL) with an injected clock: campaigns keep
their pacing, windows, retries and the do-not-call list; scheduled calls fire once, on time;
an attempt is never dialled twice, also when its worker dies."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from calls import lifecycle
from calls.lifecycle import CallerJoined, CallerLeft
from calls.service import CallService
from config import Settings
from outbound import contacts as contact_lists
from outbound.dialer import Dialer
from outbound.rules import Invalid
from outbound.service import Conflict, OutboundService
from sandbox import phone_network
from sandbox.phone_network import example
from sip.errors import GatewayRejected
from sip.models import OutboundResult
from sip.service import SipService
from tests.fakes import FakeConvoAI

UTC = ZoneInfo("UTC")
#: Thursday 2026-12-03 10:00 UTC.
THURSDAY_10 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC).timestamp()


class PhoneNetwork:
    """The gateway's ``outbound`` as the sandbox's phone network answers it (no waiting):
    every dial is recorded by number; answered calls are hung up by :meth:`hang_up`."""

    def __init__(self) -> None:
        self.dialled: list[str] = []
        self.ended: list[str] = []
        self.lock = threading.Lock()
        self.ids = itertools.count(1)

    def outbound(self, *, to: str, **_: object) -> OutboundResult:
        with self.lock:
            self.dialled.append(to)
        outcome = phone_network.outcome(to)
        if outcome == "busy":
            raise GatewayRejected(status=200, reason="Busy")
        if outcome == "no_answer":
            raise GatewayRejected(status=200, reason="NoAnswer")
        if outcome == "failed":
            raise GatewayRejected(status=200, reason="Invalid")
        return OutboundResult(callid=f"gw-{next(self.ids)}")

    def end_call(self, callid: str) -> None:
        self.ended.append(callid)


@pytest.fixture
def world(store, clock):
    clock.now = THURSDAY_10
    settings = Settings.for_tests(database_url=str(store.engine.url),
                                  outbound_caller_id="+15555550100")
    convoai = FakeConvoAI()
    ids = (f"call{n:04d}" for n in itertools.count(1))
    calls = CallService(settings, store, convoai, new_id=lambda: next(ids))
    network = PhoneNetwork()
    sip = SipService(settings, store, calls, calls.personas, network, run_async=False)
    outbound = OutboundService(settings, store, sip, calls.personas)
    dialer = Dialer(settings, store, sip)
    return outbound, dialer, network, calls


def answer_and_hang_up(calls: CallService, store, *, talk: bool = True) -> int:
    """Every live answered outbound call: the callee joins (uid 111) and hangs up."""
    done = 0
    for call in store.calls_in_states(lifecycle.LIVE_STATES):
        if call.direction != "outbound" or not call.gateway_callid:
            continue
        if talk:
            calls.handle_caller_event(CallerJoined(call.channel, 111, 1, f"{call.id}-j"),
                                      event_type=103)
        if phone_network.outcome(call.called_number) == "voicemail":
            # What the agent's end_call tool does when a machine answers.
            store.end_call(call.id, "agent_ended")
            store.record_event(call.id, "agent", "agent_ended_call", {"reason": "voicemail"})
        calls.handle_caller_event(CallerLeft(call.channel, 111, 2, f"{call.id}-l"),
                                  event_type=104)
        done += 1
    return done


def campaign_body(numbers, **extra):
    return {"persona": "appointments", "from": "+15555550100",
            "contacts": [{"number": n} for n in numbers], **extra}


def create(outbound: OutboundService, body) -> dict:
    return outbound.create_campaign(body, contact_lists.from_json(body["contacts"]))


def test_a_campaign_of_thirty_keeps_its_pacing_retries_and_the_do_not_call_list(world, store,
                                                                                 clock):
    outbound, dialer, network, calls = world
    kinds = ["answered"] * 12 + ["busy"] * 6 + ["no_answer"] * 6 + ["failed"] * 3 \
        + ["voicemail"] * 3
    numbers = [example(kind, kinds[:i].count(kind)) for i, kind in enumerate(kinds)]
    suppressed = [numbers[0], numbers[12]]
    for number in suppressed:
        outbound.suppress(number)
    campaign = create(outbound, campaign_body(numbers, pacing={"max_concurrent": 3,
                                                                "per_minute": 30},
                                              retry={"max_attempts": 2,
                                                     "delay_s": {"busy": 120,
                                                                 "no_answer": 300,
                                                                 "failed": None,
                                                                 "voicemail": None}}))
    assert campaign["counts"]["suppressed"] == 2
    most_open = 0
    for _ in range(200):
        dialer.run_due()
        most_open = max(most_open, store.open_campaign_attempts(campaign["id"]))
        answer_and_hang_up(calls, store)
        clock.advance(20)
        if outbound.status(campaign["id"])["state"] == "completed":
            break
    status = outbound.status(campaign["id"])
    assert status["state"] == "completed"
    assert most_open == 3  # the pacing was used, and never exceeded
    assert not set(suppressed) & set(network.dialled)
    by_number = {c["number"]: c for c in status["contacts"]}
    for number, kind in zip(numbers, kinds, strict=True):
        contact = by_number[number]
        dispositions = [a["disposition"] for a in contact["attempts"]]
        if number in suppressed:
            assert (contact["state"], dispositions) == ("suppressed", [])
        elif kind == "answered":
            assert (contact["state"], dispositions) == ("completed", ["answered"])
        elif kind in ("busy", "no_answer"):  # retried once, per the policy
            assert (contact["state"], dispositions) == ("exhausted", [kind, kind])
        else:  # failed and voicemail are not retried by this policy
            assert (contact["state"], dispositions) == ("exhausted", [kind])
        assert network.dialled.count(number) == len(dispositions)
    assert sum(status["counts"].values()) == 30
    assert status["counts"]["pending"] == status["counts"]["dialling"] == 0
    # Retries waited for their delay: the two busy attempts of a contact are 120 s apart.
    busy = by_number[numbers[13]]["attempts"]
    first, second = (datetime.fromisoformat(a["at"]).timestamp() for a in busy)
    assert second - first >= 120


def test_a_contact_outside_its_window_is_dialled_only_once_it_opens(world, store, clock):
    outbound, dialer, network, calls = world
    tokyo, london = example("answered", 1), example("answered", 2)
    # 10:00 UTC on Thursday is 19:00 in Tokyo: outside a 09:00-17:00 window until Friday
    # 09:00 Tokyo time (00:00 UTC Friday); London is inside.
    body = {"persona": "appointments", "from": "+15555550100",
            "window": {"start": "09:00", "end": "17:00"},
            "contacts": [{"number": tokyo, "timezone": "Asia/Tokyo"},
                         {"number": london, "timezone": "Europe/London"}]}
    campaign = create(outbound, body)
    dialer.run_due()
    assert network.dialled == [london]
    answer_and_hang_up(calls, store)
    opens = datetime(2026, 12, 4, 0, 0, tzinfo=UTC).timestamp()
    clock.now = opens - 1
    dialer.run_due()
    assert network.dialled == [london]
    clock.now = opens
    dialer.run_due()
    assert network.dialled == [london, tokyo]
    (attempt,) = next(c for c in outbound.status(campaign["id"])["contacts"]
                      if c["number"] == tokyo)["attempts"]
    assert attempt["at"] == "2026-12-04T00:00:00.000Z"


def test_per_minute_pacing_spreads_the_dials(world, store, clock):
    outbound, dialer, network, calls = world
    numbers = [example("busy", i) for i in range(5)]
    create(outbound, campaign_body(numbers, pacing={"max_concurrent": 10, "per_minute": 2},
                                   retry={"max_attempts": 1}))
    dialer.run_due()
    assert len(network.dialled) == 2
    clock.advance(30)
    dialer.run_due()
    assert len(network.dialled) == 2
    clock.advance(31)
    dialer.run_due()
    assert len(network.dialled) == 4


def test_a_slot_is_free_the_moment_its_call_ends(world, store, clock):
    outbound, dialer, network, calls = world
    numbers = [example("answered", i) for i in range(3)]
    campaign = create(outbound, campaign_body(numbers, pacing={"max_concurrent": 1}))
    dialer.run_due()
    assert len(network.dialled) == 1
    assert store.open_campaign_attempts(campaign["id"]) == 1
    answer_and_hang_up(calls, store)
    # Not yet settled, but the call is over: its slot is free.
    assert store.open_campaign_attempts(campaign["id"]) == 0
    dialer.run_due()
    assert len(network.dialled) == 2


def test_pause_resume_and_cancel(world, store, clock):
    outbound, dialer, network, calls = world
    numbers = [example("answered", i) for i in range(4)]
    campaign = create(outbound, campaign_body(numbers, pacing={"max_concurrent": 1}))
    assert outbound.control(campaign["id"], "pause")["state"] == "paused"
    dialer.run_due()
    assert network.dialled == []
    with pytest.raises(Conflict, match="is paused: it cannot pause"):
        outbound.control(campaign["id"], "pause")
    outbound.control(campaign["id"], "resume")
    dialer.run_due()
    assert len(network.dialled) == 1
    status = outbound.control(campaign["id"], "cancel")
    assert status["state"] == "cancelled"
    assert status["counts"]["cancelled"] == 3 and status["counts"]["dialling"] == 1
    answer_and_hang_up(calls, store)
    dialer.run_due()
    status = outbound.status(campaign["id"])
    assert status["counts"]["completed"] == 1  # the call in progress finished normally
    assert len(network.dialled) == 1


def test_a_cost_guard_holds_the_campaign_without_using_up_attempts(world, store, clock):
    outbound, dialer, network, calls = world
    calls.limits = dataclasses.replace(calls.limits, max_concurrent_calls=1)
    numbers = [example("answered", i) for i in range(3)]
    campaign = create(outbound, campaign_body(numbers, pacing={"max_concurrent": 3}))
    dialer.run_due()
    dialer.run_due()
    assert len(network.dialled) == 1  # MAX_CONCURRENT_CALLS holds, whatever the pacing says
    answer_and_hang_up(calls, store)
    dialer.run_due()
    assert len(network.dialled) == 2
    status = outbound.status(campaign["id"])
    assert [len(c["attempts"]) for c in status["contacts"]] == [1, 1, 0]
    assert status["counts"]["pending"] == 1


def test_an_opt_out_during_the_call_ends_the_contact(world, store, clock):
    outbound, dialer, network, calls = world
    number = example("answered", 3)
    campaign = create(outbound, campaign_body([number], retry={"max_attempts": 3}))
    dialer.run_due()
    (call,) = [c for c in store.calls_in_states(lifecycle.LIVE_STATES)]
    calls.handle_caller_event(CallerJoined(call.channel, 111, 1, "j"), event_type=103)
    store.add_suppression(number, source="opt_out", call_id=call.id)  # what opt_out does
    calls.handle_caller_event(CallerLeft(call.channel, 111, 2, "l"), event_type=104)
    dialer.run_due()
    (contact,) = outbound.status(campaign["id"])["contacts"]
    assert contact["state"] == "opted_out"
    assert [a["disposition"] for a in contact["attempts"]] == ["opted_out"]


def test_a_worker_that_dies_after_its_claim_never_dials_that_attempt(world, store, clock):
    outbound, dialer, network, calls = world
    number = example("answered", 4)
    campaign = create(outbound, campaign_body([number], retry={
        "max_attempts": 2, "delay_s": {"failed": 60}}))
    # A worker claims the contact and dies before it makes the call.
    (claimed,) = store.claim_campaign_dials(campaign["id"], now=clock(), max_open=1,
                                            per_minute=10, holder="dead:1")
    for _ in range(3):
        dialer.run_due()
    assert network.dialled == []  # nobody dials an attempt someone else claimed
    clock.advance(store.work_lease_s + 1)
    dialer.run_due()  # settles it as failed: worker_lost
    clock.advance(61)
    dialer.run_due()  # the retry is a new attempt
    assert network.dialled == [number]
    (contact,) = outbound.status(campaign["id"])["contacts"]
    assert [a["disposition"] for a in contact["attempts"]][0] == "failed"
    assert contact["attempts"][0].get("detail") == {"cause": "worker_lost"}


def test_two_dialers_racing_never_dial_one_attempt_twice(world, store, clock):
    outbound, dialer, network, calls = world
    numbers = [example("answered", i) for i in range(8)]
    create(outbound, campaign_body(numbers, pacing={"max_concurrent": 8, "per_minute": 60}))
    other = Dialer(dialer.settings, store, dialer.sip)
    barrier = threading.Barrier(2)

    def run(d):
        barrier.wait()
        d.run_due()

    threads = [threading.Thread(target=run, args=(d,)) for d in (dialer, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(network.dialled) == sorted(numbers)


def test_a_scheduled_call_fires_once_at_its_time(world, store, clock):
    outbound, dialer, network, calls = world
    number = example("answered", 5)
    scheduled = outbound.schedule_call(to=number, caller_id=None, persona="support",
                                       variables={}, at=clock() + 3600)
    assert scheduled.call.state == "scheduled"
    clock.advance(3599)
    dialer.run_due()
    assert network.dialled == []
    assert store.get_call(scheduled.call.id).state == "scheduled"
    clock.advance(1)
    # A second dialer (another worker or a restarted one) sees the same due call.
    Dialer(dialer.settings, store, dialer.sip).run_due()
    dialer.run_due()
    assert network.dialled == [number]
    assert store.get_call(scheduled.call.id).state in lifecycle.LIVE_STATES


def test_a_scheduled_call_can_be_cancelled_until_it_starts(world, store, clock):
    outbound, dialer, network, calls = world
    scheduled = outbound.schedule_call(to=example("answered", 6), caller_id=None,
                                       persona=None, variables={}, at=clock() + 60)
    outbound.cancel_call(scheduled.call.id)
    call = store.get_call(scheduled.call.id)
    assert (call.state, call.end_reason) == ("ended", "cancelled")
    clock.advance(120)
    dialer.run_due()
    assert network.dialled == []
    with pytest.raises(Conflict, match="not scheduled"):
        outbound.cancel_call(scheduled.call.id)
    with pytest.raises(Invalid, match="in the past"):
        outbound.schedule_call(to=example("answered", 6), caller_id=None, persona=None,
                               variables={}, at=clock() - 3600)


def test_a_keyed_scheduled_call_exists_once(world, store, clock):
    outbound, dialer, network, calls = world
    first = outbound.schedule_call(to=example("answered", 7), caller_id=None, persona=None,
                                   variables={}, at=clock() + 60, key="reminder:BK-1:86400")
    again = outbound.schedule_call(to=example("answered", 7), caller_id=None, persona=None,
                                   variables={}, at=clock() + 60, key="reminder:BK-1:86400")
    assert first is not None and again is None


def test_only_a_persona_that_says_it_is_an_ai_and_for_whom_may_run_a_campaign(world):
    outbound = world[0]
    with pytest.raises(Invalid, match=r"persona must be one with an \[outbound\] section: "
                                      "appointments"):
        create(outbound, {**campaign_body([example("answered")]), "persona": "support"})


# -- what a review found --------------------------------------------------------------------------


def test_a_campaign_whose_every_contact_is_suppressed_is_completed_at_once(world):
    outbound = world[0]
    number = example("answered", 8)
    outbound.suppress(number)
    status = create(outbound, campaign_body([number]))
    assert (status["state"], status["counts"]["suppressed"]) == ("completed", 1)


def test_a_campaign_cancelled_while_a_call_is_open_retries_nobody(world, store, clock):
    outbound, dialer, network, calls = world
    number = example("busy", 8)
    campaign = create(outbound, campaign_body([number], retry={"max_attempts": 3}))
    # Claimed and given a call, then cancelled before the busy call is settled.
    (attempt,) = store.claim_campaign_dials(campaign["id"], now=clock(), max_open=1,
                                            per_minute=10, holder="w:1")
    call = dialer.sip.outbound_call(to=number, caller_id="+15555550100",
                                    persona="appointments", variables={})
    assert store.link_attempt_call(attempt["id"], call.id)
    outbound.control(campaign["id"], "cancel")
    dialer.sip.dial(call, region="NA", prompt="false", events_url=None)  # busy
    dialer.run_due()
    status = outbound.status(campaign["id"])
    (contact,) = status["contacts"]
    assert contact["state"] == "cancelled" and status["counts"]["pending"] == 0
    clock.advance(86_400)
    dialer.run_due()
    assert network.dialled == [number]


def test_a_claim_settled_as_lost_is_never_linked_so_never_dialled(world, store, clock):
    outbound, dialer, network, calls = world
    campaign = create(outbound, campaign_body([example("answered", 9)]))
    (attempt,) = store.claim_campaign_dials(campaign["id"], now=clock(), max_open=1,
                                            per_minute=10, holder="slow:1")
    clock.advance(store.work_lease_s + 1)
    dialer.settle()  # written off as worker_lost
    assert store.link_attempt_call(attempt["id"], "call-of-the-slow-worker") is False


def test_a_scheduled_call_to_a_number_listed_since_is_not_dialled(world, store, clock):
    outbound, dialer, network, calls = world
    number = example("answered", 13)
    scheduled = outbound.schedule_call(to=number, caller_id=None, persona="appointments",
                                       variables={}, at=clock() + 60)
    outbound.suppress(number)
    clock.advance(60)
    dialer.run_due()
    assert network.dialled == []
    call = store.get_call(scheduled.call.id)
    assert (call.state, call.end_reason) == ("ended", "suppressed")
    assert store.attempt_for_call(call.id)["disposition"] == "suppressed"


def test_a_scheduled_call_due_at_capacity_waits_for_room_then_gives_up(world, store, clock):
    outbound, dialer, network, calls = world
    calls.limits = dataclasses.replace(calls.limits, max_concurrent_calls=1)
    busy_line = outbound.schedule_call(to=example("answered", 14), caller_id=None,
                                       persona=None, variables={}, at=clock() + 10)
    waits = outbound.schedule_call(to=example("answered", 15), caller_id=None, persona=None,
                                   variables={}, at=clock() + 10)
    clock.advance(10)
    dialer.run_due()
    assert network.dialled == [example("answered", 14)]
    assert store.get_call(waits.call.id).state == "scheduled"  # waiting for room
    answer_and_hang_up(calls, store)
    clock.advance(30)
    dialer.run_due()
    assert network.dialled == [example("answered", 14), example("answered", 15)]
    # One that never gets room within ten minutes is refused.
    stuck = outbound.schedule_call(to=example("answered", 16), caller_id=None, persona=None,
                                   variables={}, at=clock() + 10)
    clock.advance(10)
    dialer.run_due()
    clock.advance(601)
    dialer.run_due()
    call = store.get_call(stuck.call.id)
    assert call.state == "ended" and call.end_reason == "refused_max_concurrent_calls"
    assert store.attempt_for_call(call.id)["disposition"] == "refused"
    assert busy_line.call.id != stuck.call.id


def test_a_campaign_that_cannot_dial_holds_up_nothing_else(world, store, clock, monkeypatch):
    outbound, dialer, network, calls = world
    campaign = create(outbound, campaign_body([example("answered", 17)]))
    scheduled = outbound.schedule_call(to=example("answered", 18), caller_id=None,
                                       persona=None, variables={}, at=clock())
    original = dialer.sip.outbound_call

    def persona_gone(**kwargs):
        if kwargs.get("persona") == "appointments":
            raise KeyError("appointments")  # the persona was removed from the configuration
        return original(**kwargs)

    monkeypatch.setattr(dialer.sip, "outbound_call", persona_gone)
    dialer.run_due()
    assert network.dialled == [example("answered", 18)]  # the scheduled call went out
    assert store.get_call(scheduled.call.id).state in lifecycle.LIVE_STATES
    (contact,) = outbound.status(campaign["id"])["contacts"]
    # The contact kept its attempt and waits to be tried again.
    assert (contact["state"], contact["attempts"]) == ("pending", [])
