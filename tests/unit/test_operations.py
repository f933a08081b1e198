"""Operations on the real store (SQLite and PostgreSQL) with a fake ConvoAI: the cost guards,
the reconciler, retention, and the operator's events outbox."""

from __future__ import annotations

import base64
import itertools
import time

import pytest
import responses
from standardwebhooks import Webhook, WebhookVerificationError

from calls import guards
from calls import lifecycle as lc
from calls.lifecycle import CallerJoined, CallerLeft
from calls.outbox import EventSender
from calls.reconcile import Reconciler, goodbye_wait_s
from calls.service import CallService
from sip.errors import GatewayUnavailable
from store import StoreUnavailable
from tests.fakes import FakeConvoAI

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


@pytest.fixture
def convoai() -> FakeConvoAI:
    return FakeConvoAI()


def make_service(settings, store, convoai, **changes):
    ids = (f"call{n:04d}" for n in itertools.count(1))
    return CallService(settings.replace(**changes), store, convoai, new_id=lambda: next(ids))


def join(channel, seq=1):
    return CallerJoined(channel=channel, uid=111, seq=seq, notice_id=f"{channel}-j{seq}")


def leave(channel, seq=2):
    return CallerLeft(channel=channel, uid=111, seq=seq, notice_id=f"{channel}-l{seq}",
                      reason=1)


def send(service, event):
    return service.handle_caller_event(event, event_type=103 if isinstance(event, CallerJoined)
                                       else 104)


# -- cost guards -----------------------------------------------------------------------------

def test_refusal_reason_names_the_limit_reached():
    limits = guards.Limits(max_concurrent_calls=2, daily_agent_minutes=10)
    assert guards.refusal_reason(guards.Usage(1, 0), limits) is None
    assert guards.refusal_reason(guards.Usage(2, 0), limits) == guards.MAX_CONCURRENT
    assert guards.refusal_reason(guards.Usage(0, 600), limits) == guards.DAILY_MINUTES
    assert guards.refusal_reason(guards.Usage(99, 10**9), guards.Limits()) is None
    assert guards.utc_day_start(86_400 * 3 + 5) == 86_400 * 3


def test_a_third_simultaneous_call_gets_no_agent_and_is_recorded(settings, store, convoai):
    from observability import metrics

    service = make_service(settings, store, convoai, max_concurrent_calls=2)
    def refused_count(reason):
        return metrics.REGISTRY.get_sample_value("phone_agent_calls_refused_total",
                                                 {"reason": reason}) or 0

    before = refused_count("max_concurrent_calls")
    answers = [send(service, join(f"ch{n}")) for n in range(3)]
    assert [a["outcome"] for a in answers[:2]] == ["call_started", "call_started"]
    assert len(convoai.running()) == 2
    assert (answers[2]["outcome"], answers[2]["reason"]) == ("call_refused",
                                                             "max_concurrent_calls")
    refused = store.get_call(answers[2]["call_id"])
    assert (refused.state, refused.end_reason, refused.agent_id) == (
        lc.REFUSED, "max_concurrent_calls", None)
    assert [e["kind"] for e in store.timeline(refused.id)] == ["caller_joined", "call_refused"]
    assert refused_count("max_concurrent_calls") == before + 1
    # Its caller's leave is harmless, and once a place is free the next call is admitted.
    send(service, leave("ch2"))
    send(service, leave("ch0"))
    assert send(service, join("ch3"))["outcome"] == "call_started"
    assert len(convoai.running()) == 2


def test_the_daily_budget_counts_agent_time_since_midnight(settings, store, convoai, clock):
    service = make_service(settings, store, convoai, max_concurrent_calls=0,
                           daily_agent_minutes=1)
    send(service, join("a"))
    clock.advance(45)
    assert store.usage().agent_seconds_today == pytest.approx(45)
    send(service, leave("a"))
    clock.advance(100)  # an ended call stops counting when it ends
    assert store.usage().agent_seconds_today == pytest.approx(45)
    send(service, join("b"))
    clock.advance(20)
    answer = send(service, join("c"))
    assert store.get_call(answer["call_id"]).end_reason == "daily_agent_minutes"
    clock.advance(86_400)  # a new UTC day: only b's time since midnight counts
    assert store.usage().agent_seconds_today < 86_400


# -- the reconciler --------------------------------------------------------------------------

def make_reconciler(settings, store, service, convoai, clock, **kw):
    return Reconciler(settings, store, service, convoai, clock=clock, **kw)


def leg_recorder(hung_up):
    """A stand-in for SipService.hang_up_leg that notes whose leg and who asked."""
    def hang_up_leg(call, *, source, agent_id=None):
        hung_up.append((call.gateway_callid, source))
    return hang_up_leg


def test_orphans_with_our_prefix_are_stopped_and_other_agents_never_touched(
        settings, store, convoai, clock):
    service = make_service(settings, store, convoai)
    send(service, join("live"))
    foreign = convoai.add_foreign("someone-else-1234")
    unknown = convoai.add_foreign("phoneagent-ffffffffffffffff")  # no record of it
    # A call whose leave was lost: the record says ended, the agent still runs.
    send(service, join("lost"))
    lost = store.calls_in_channel("lost")[0]
    store.end_call(lost.id, "test")
    store.agent_stopped(lost.id)
    report = make_reconciler(settings, store, service, convoai, clock).run(force=True)
    running = {a.agent_id for a in convoai.running()}
    assert foreign in running and unknown not in running and lost.agent_id not in running
    assert store.calls_in_channel("live")[0].agent_id in running
    assert (report.orphans_stopped, report.foreign_agents) == (2, 1)
    assert "orphan_agent_stopped" in [e["kind"] for e in store.timeline(lost.id)]


def a_call_whose_agent_left(service, store, convoai, channel: str, gateway_callid: str):
    """A phone call whose agent left without the notification reaching us."""
    send(service, join(channel))
    call = store.calls_in_channel(channel)[0]
    store.set_gateway_callid(call.id, gateway_callid)
    convoai.agents[call.agent_id].running = False
    return call


def test_a_call_whose_agent_is_gone_is_closed_and_its_leg_hung_up(
        settings, store, convoai, clock):
    service = make_service(settings, store, convoai)
    call = a_call_whose_agent_left(service, store, convoai, "quiet", "gw-1")
    hung_up = []
    reconciler = make_reconciler(settings, store, service, convoai, clock,
                                 hang_up_leg=leg_recorder(hung_up))
    reconciler.run(force=True)
    assert store.get_call(call.id).state == lc.ACTIVE  # too soon: the list may lag
    clock.advance(300)
    assert reconciler.run(force=True).calls_closed == 1
    assert store.get_call(call.id).state == lc.ENDED
    assert store.get_call(call.id).end_reason == "agent_gone"
    assert hung_up == [("gw-1", "reconciler")]


@pytest.mark.parametrize("failure", [GatewayUnavailable(status=503, action="endcall"),
                                     StoreUnavailable("the store is busy")])
def test_a_leg_that_will_not_hang_up_does_not_keep_the_reconciler_from_ending_the_call(
        settings, store, convoai, clock, failure):
    service = make_service(settings, store, convoai)
    call = a_call_whose_agent_left(service, store, convoai, "stuck", "gw-2")

    def failing_leg(call, *, source, agent_id=None):
        raise failure

    reconciler = make_reconciler(settings, store, service, convoai, clock,
                                 hang_up_leg=failing_leg)
    clock.advance(300)
    assert reconciler.run(force=True).calls_closed == 1
    assert reconciler.run(force=True).calls_closed == 0
    ended = store.get_call(call.id)
    assert (ended.state, ended.end_reason) == (lc.ENDED, "agent_gone")


def test_a_call_past_its_personas_limit_hears_the_goodbye_then_ends(
        settings, store, convoai, clock):
    service = make_service(settings, store, convoai)
    send(service, join("long"))
    call = store.calls_in_channel("long")[0]
    store.set_gateway_callid(call.id, "gw-9")
    persona = service.persona_of(call)
    hung_up = []
    reconciler = make_reconciler(settings, store, service, convoai, clock,
                                 hang_up_leg=leg_recorder(hung_up))
    clock.advance(persona.max_call_s - 1)
    assert reconciler.run().goodbyes == 0
    clock.advance(1)
    assert reconciler.run().goodbyes == 1
    agent = convoai.agents[call.agent_id]
    assert agent.spoken == [persona.goodbye] and agent.running
    assert reconciler.run().goodbyes == 0  # said once
    clock.advance(goodbye_wait_s(persona.goodbye, settings.goodbye_wait_min_s,
                                settings.goodbye_wait_max_s))
    assert reconciler.run().ended_over_length == 1
    ended = store.get_call(call.id)
    assert (ended.state, ended.end_reason) == (lc.ENDED, "max_call_length")
    assert not agent.running and hung_up == [("gw-9", "reconciler")]
    kinds = [e["kind"] for e in store.timeline(call.id)]
    assert kinds.index("goodbye_spoken") < kinds.index("agent_stopped")


def test_one_worker_at_a_time_lists_the_agents(settings, store, convoai, clock):
    service = make_service(settings, store, convoai)
    first = make_reconciler(settings, store, service, convoai, clock)
    second = make_reconciler(settings, store, service, convoai, clock)
    second.holder = "another-worker"
    assert first.run().listed_agents is True
    assert second.run().listed_agents is False
    assert first.run().listed_agents is False
    clock.advance(settings.reconcile_interval_s + 1)
    assert second.run().listed_agents is True
    assert convoai.count("list") == 2


def test_retention_erases_old_ended_calls_and_keeps_live_ones(settings, store, convoai, clock):
    service = make_service(settings, store, convoai, retention_days=1)
    send(service, join("old"))
    send(service, leave("old"))
    send(service, join("ongoing"))
    clock.advance(2 * 86_400)
    send(service, join("new"))
    send(service, leave("new"))
    report = make_reconciler(settings.replace(retention_days=1), store, service, convoai,
                             clock).run(force=True)
    assert report.records_erased == 1
    assert store.calls_in_channel("old") == [] and store.timeline("call0001") == []
    assert store.calls_in_channel("ongoing") and store.calls_in_channel("new")


def test_the_conversation_is_kept_before_the_agent_is_stopped(settings, store, convoai):
    service = make_service(settings, store, convoai)
    send(service, join("talk"))
    call = store.calls_in_channel("talk")[0]
    convoai.agents[call.agent_id].history.extend([
        {"role": "assistant", "content": "Hello, how can I help?"},
        {"role": "user", "content": "Where is my order?"}])
    send(service, leave("talk"))
    from calls.records import transcript

    assert transcript(store.timeline(call.id)) == [
        {"role": "assistant", "content": "Hello, how can I help?"},
        {"role": "user", "content": "Where is my order?"}]


# -- operator events -------------------------------------------------------------------------

@responses.activate
def test_events_are_queued_with_the_change_and_delivered_signed(settings, store, convoai, clock):
    # The receiver's verifier (the Standard Webhooks reference library) refuses timestamps more
    # than five minutes from its own clock: the fake clock starts at the real time here.
    clock.now = time.time()
    store.emit_events = True
    service = make_service(settings, store, convoai)
    send(service, join("ev"))
    convoai.agents[store.calls_in_channel("ev")[0].agent_id].history.append(
        {"role": "user", "content": "hi"})
    send(service, leave("ev"))
    call = store.calls_in_channel("ev")[0]
    queued = {(e["id"], e["type"]) for e in store.outbox_events(call.id)}
    assert queued == {(f"evt_{call.id}_started", "call.started"),
                      (f"evt_{call.id}_transcript", "transcript.ready"),
                      (f"evt_{call.id}_ended", "call.ended")}
    store.agent_stopped(call.id)  # the same change recorded again is not a second event
    assert len(store.outbox_events(call.id)) == 3

    responses.post("https://ops.example.com/hook", status=204)
    sender = EventSender("https://ops.example.com/hook", SECRET, store, clock=clock)
    assert sender.deliver_due() == 3
    assert sender.deliver_due() == 0
    bodies = {}
    receiver = Webhook(SECRET)
    for sent in responses.calls:
        body = receiver.verify(sent.request.body, dict(sent.request.headers))
        bodies[body["type"]] = body
    tampered = dict(responses.calls[0].request.headers)
    with pytest.raises(WebhookVerificationError):
        receiver.verify(responses.calls[0].request.body + b" ", tampered)
    assert bodies["call.ended"]["data"]["id"] == call.id
    assert bodies["transcript.ready"]["data"]["transcript"] == [{"role": "user",
                                                                 "content": "hi"}]


@responses.activate
def test_a_failed_delivery_is_retried_later_not_at_once(settings, store, convoai, clock):
    store.emit_events = True
    service = make_service(settings, store, convoai)
    send(service, join("retry"))
    hook = responses.post("https://ops.example.com/hook", status=500)
    sender = EventSender("https://ops.example.com/hook", SECRET, store, clock=clock)
    assert sender.deliver_due() == 0
    assert sender.deliver_due() == 0 and hook.call_count == 1  # not due yet
    (event,) = store.outbox_events()
    assert (event["attempts"], event["last_error"]) == (1, "HTTP 500")
    clock.advance(6)
    responses.replace(responses.POST, "https://ops.example.com/hook", status=200)
    assert sender.deliver_due() == 1
    assert store.outbox_events()[0]["delivered_at"] is not None


def test_no_events_are_queued_unless_a_url_is_set(settings, store, convoai):
    service = make_service(settings, store, convoai)
    send(service, join("quiet"))
    send(service, leave("quiet"))
    assert store.outbox_events() == []


def test_an_agent_whose_start_is_recorded_while_the_reconciler_looks_is_not_stopped(
        settings, store, convoai, clock):
    """The list is taken while a join is in flight; by the time the reconciler asks for the
    agent's name, the start has been recorded. The agent belongs to a live call."""
    service = make_service(settings, store, convoai)
    reconciler = make_reconciler(settings, store, service, convoai, clock)
    send(service, join("racing"))
    call = store.calls_in_channel("racing")[0]
    real_lookup = store.call_by_agent_id
    store.call_by_agent_id = lambda agent_id: None  # as it was when the list was taken
    try:
        report = reconciler.run(force=True)
    finally:
        store.call_by_agent_id = real_lookup
    assert report.orphans_stopped == 0
    assert convoai.agents[call.agent_id].running


def test_an_agent_stopped_by_its_call_while_the_reconciler_looks_is_not_stopped_again(
        settings, store, convoai, clock):
    """The list is taken while the agent runs; before the reconciler reaches it, the caller
    hangs up and the agent is stopped. ConvoAI may still accept a second leave of a stopping
    agent, so the reconciler asks for its state and leaves it alone."""
    service = make_service(settings, store, convoai)
    reconciler = make_reconciler(settings, store, service, convoai, clock)
    send(service, join("racing"))
    call = store.calls_in_channel("racing")[0]
    listing = convoai.iter_agents

    def list_then_hang_up(**kw):
        taken = listing(**kw)
        send(service, leave("racing"))
        service.sweep()
        return taken

    convoai.iter_agents = list_then_hang_up
    report = reconciler.run(force=True)
    assert store.get_call(call.id).state == lc.ENDED
    assert report.orphans_stopped == 0
    assert convoai.calls.count(("leave", call.agent_id)) == 1
