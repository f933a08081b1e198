"""The lifecycle end to end through the real store (SQLite and PostgreSQL) and a fake ConvoAI."""

import itertools
import threading
import time

import pytest

from calls import lifecycle as lc
from calls.agent_events import handle_agent_event
from calls.lifecycle import CallerJoined, CallerLeft
from calls.service import CallService, call_id_for_join
from convoai.errors import LimitExceeded, UpstreamError, UpstreamUnavailable
from store import WORK_LEASE_S, StoreUnavailable
from tests.fakes import FakeConvoAI


@pytest.fixture
def convoai():
    return FakeConvoAI()


@pytest.fixture
def service(settings, store, convoai):
    ids = (f"call{n:04d}" for n in itertools.count(1))
    return CallService(settings, store, convoai, new_id=lambda: next(ids))


def join(seq, channel="ch", notice=None):
    return CallerJoined(channel=channel, uid=111, seq=seq, notice_id=notice or f"{channel}-j{seq}")


def leave(seq, reason=1, channel="ch", notice=None):
    return CallerLeft(channel=channel, uid=111, seq=seq, notice_id=notice or f"{channel}-l{seq}",
                      reason=reason)


def send(service, event):
    return service.handle_caller_event(event, event_type=103 if isinstance(event, CallerJoined)
                                       else 104)


def test_one_call_starts_one_agent_and_the_hang_up_stops_it(service, store, convoai):
    answer = send(service, join(1))
    assert answer == {"status": "ok", "outcome": "call_started", "call_id": "call0001"}
    assert [a.name for a in convoai.running()] == ["phoneagent-call0001"]
    assert store.get_call("call0001").state == lc.ACTIVE
    send(service, leave(2))
    assert convoai.running() == [] and convoai.count("leave") == 1
    record = store.get_call("call0001")
    assert (record.state, record.end_reason) == (lc.ENDED, "caller_hung_up")


def test_duplicates_and_redundant_copies_start_one_agent(service, convoai):
    outcomes = [send(service, join(1))["outcome"] for _ in range(3)]
    outcomes.append(send(service, join(1, notice="other-notice"))["outcome"])
    assert outcomes == ["call_started", "duplicate_notice", "duplicate_notice", "duplicate"]
    assert convoai.count("join") == 1
    for _ in range(3):
        send(service, leave(2))
    assert convoai.count("leave") == 1 and convoai.running() == []


def test_the_call_commits_as_starting_with_its_lease_before_its_join_goes_out(
        service, store, convoai, clock):
    # Another connection's view of the call as the join is sent.
    seen = {}
    original = convoai.join

    def join_watching_the_store(name, properties, **kwargs):
        seen["sent"] = store.get_call("call0001")
        return original(name, properties, **kwargs)

    convoai.join = join_watching_the_store
    assert send(service, join(1))["outcome"] == "call_started"
    assert seen["sent"].state == lc.STARTING
    assert seen["sent"].retry_at == clock.now + WORK_LEASE_S
    assert store.get_call("call0001").state == lc.ACTIVE


def test_a_call_the_store_could_not_record_sends_no_join(service, store, convoai, monkeypatch):
    def down(*_, **__):
        raise StoreUnavailable("disk I/O error")

    with monkeypatch.context() as patched:
        patched.setattr(store, "apply_caller_event", down)
        with pytest.raises(StoreUnavailable):  # the webhook answers 503: NCS sends it again
            send(service, join(1))
    assert convoai.count("join") == 0
    answer = send(service, join(1))
    assert answer["outcome"] == "call_started"
    assert [a.name for a in convoai.running()] == [f"phoneagent-{answer['call_id']}"]


class WorkerDied(BaseException):
    """The worker's process ending in the middle of a request (nothing catches it)."""


def test_a_start_whose_worker_died_mid_join_is_adopted_by_the_sweeper(
        settings, store, convoai, clock):
    # Real call ids: taken from the join's noticeId.
    service = CallService(settings, store, convoai)
    original = convoai.join

    def join_then_die(name, properties, **_):
        original(name, properties)  # ConvoAI got the join ...
        raise WorkerDied  # ... but the worker died before recording the agent

    convoai.join = join_then_die
    with pytest.raises(WorkerDied):
        send(service, join(1))
    convoai.join = original
    (call,) = store.calls_in_channel("ch")
    assert call.id == call_id_for_join("ch-j1") and call.state == lc.STARTING
    (first,) = convoai.running()

    # NCS got no answer and sends the delivery again: the event is decided already.
    assert send(service, join(1))["outcome"] == "duplicate"
    assert convoai.count("join") == 1
    clock.advance(WORK_LEASE_S + 1)  # the dead worker's lease runs out
    assert service.sweep() == 1
    assert convoai.count("join") == 2  # the second got 409 and adopted the first agent
    assert convoai.running() == [first]
    recorded = store.get_call(call.id)
    assert recorded.agent_id == first.agent_id and recorded.state == lc.ACTIVE


def test_a_delivery_replayed_after_its_notice_was_forgotten_makes_a_call_of_its_own(
        settings, store, convoai, clock):
    service = CallService(settings, store, convoai)
    first = send(service, join(1))["call_id"]
    send(service, leave(2))
    clock.advance(lc.SEQ_MEMORY_S + 1)
    store.prune_notices(older_than_s=0)
    again = send(service, join(1))
    assert again["outcome"] == "call_started" and again["call_id"] != first
    assert len(convoai.running()) == 1
    assert store.get_call(first).state == lc.ENDED


def test_leave_delivered_before_its_join_leaves_no_agent(service, convoai):
    send(service, leave(2))
    assert send(service, join(1))["outcome"] == "stale"
    assert convoai.count("join") == 0


def test_caller_leaving_while_the_join_is_in_flight_gets_the_agent_stopped(
        service, store, convoai):
    # The leave is applied while ConvoAI is still answering the join.
    convoai.on_join = lambda agent_id: send(service, leave(2))
    send(service, join(1))
    assert convoai.count("join") == 1 and convoai.running() == []
    assert store.get_call("call0001").state == lc.ENDED


def test_two_calls_one_after_the_other_get_two_agents(service, convoai):
    for seq in (1, 3):
        send(service, join(seq))
        send(service, leave(seq + 1))
    assert convoai.count("join") == 2 and convoai.count("leave") == 2
    assert convoai.running() == []


def test_rejoin_inside_the_grace_window_keeps_the_agent(service, store, convoai, clock):
    send(service, join(1))
    assert send(service, leave(2, reason=10))["outcome"] == "caller_away"
    clock.advance(5)
    assert send(service, join(3))["outcome"] == "rejoined"
    assert convoai.count("join") == 1 and len(convoai.running()) == 1
    assert store.get_call("call0001").state == lc.ACTIVE


def test_caller_who_does_not_return_is_ended_by_the_sweeper(service, store, convoai, clock):
    send(service, join(1))
    send(service, leave(2, reason=2))
    assert service.sweep() == 0 and len(convoai.running()) == 1
    clock.advance(31)
    assert service.sweep() == 1
    assert convoai.running() == []
    assert store.get_call("call0001").end_reason == "caller_did_not_return"


def test_join_after_the_grace_window_is_a_new_call(service, convoai, clock):
    send(service, join(1))
    send(service, leave(2, reason=2))
    clock.advance(31)
    assert send(service, join(3))["outcome"] == "call_restarted"
    assert convoai.count("join") == 2 and len(convoai.running()) == 1


def test_concurrency_limit_refuses_the_call_without_retrying(service, store, convoai):
    convoai.join_errors.append(LimitExceeded(status=422, reason="ConcurrencyLimitExceeded",
                                             detail="too many agents"))
    send(service, join(1))
    record = store.get_call("call0001")
    assert record.state == lc.REFUSED and "ConcurrencyLimitExceeded" in record.last_error
    assert convoai.count("join") == 1


@pytest.mark.parametrize("failure", [
    LimitExceeded(status=422, reason="ConcurrencyLimitExceeded", detail="too many agents"),
    UpstreamError(status=400, reason="InvalidRequest", detail="bad body"),
])
def test_a_join_whose_start_failed_is_still_a_known_notice(service, store, convoai, failure):
    # A join that starts an agent records its notice with the start's outcome (after the
    # join went out); a failed start must record it too, or a copy would look new.
    convoai.join_errors.append(failure)
    send(service, join(1))
    assert send(service, join(1))["outcome"] == "duplicate_notice"
    assert convoai.count("join") == 1


def test_a_join_answered_while_its_call_ends_is_still_a_known_notice(service, store, convoai):
    # The call the join would start is already over when its start runs (the background
    # start of a call the caller left at once): nothing starts, the notice is still kept.
    applied = store.apply_caller_event(join(1), grace_s=0, agent_name_prefix="phoneagent",
                                       new_id=lambda: "call0001", event_type=103)
    assert applied.notice is not None and applied.start is not None
    store.start_failed("call0001", state=lc.FAILED, reason="gone")
    service.start_agent("call0001", None, applied.notice)
    assert convoai.count("join") == 0
    assert send(service, join(1))["outcome"] == "duplicate_notice"


def test_the_timeline_begins_with_the_join_that_made_the_call(service, store):
    send(service, join(7, notice="first-notice"))
    timeline = store.timeline("call0001")
    assert timeline[0]["kind"] == "caller_joined" and timeline[0]["source"] == "ncs"
    assert timeline[0]["detail"] == {"seq": 7, "notice_id": "first-notice"}
    assert timeline[0]["at"] == store.get_call("call0001").created_at
    assert [e["kind"] for e in timeline].count("caller_joined") == 1


def test_a_join_whose_first_attempt_got_through_is_adopted_on_conflict(service, store, convoai):
    # The first join reached ConvoAI but its answer was lost; the retry gets 409.
    original_join = convoai.join

    def join_then_lose_answer(name, properties, **kw):
        original_join(name, properties)
        convoai.join = original_join
        return original_join(name, properties)  # second call: TaskConflict

    convoai.join = join_then_lose_answer
    send(service, join(1))
    record = store.get_call("call0001")
    assert record.state == lc.ACTIVE and record.agent_id == "agent-1"
    assert len(convoai.running()) == 1


def test_a_failed_leave_is_retried_by_the_sweeper(service, store, convoai, clock):
    send(service, join(1))
    convoai.leave_errors.append(UpstreamError(status=503, reason="ServiceUnavailable"))
    send(service, leave(2))
    assert len(convoai.running()) == 1 and store.get_call("call0001").state == lc.STOPPING
    clock.advance(11)
    service.sweep()
    assert convoai.running() == [] and store.get_call("call0001").state == lc.ENDED


def test_a_start_whose_worker_died_is_completed_by_the_sweeper(service, store, convoai, clock):
    convoai.join_errors.append(UpstreamUnavailable(detail="worker killed"))
    # Simulate the worker dying after recording the call but before the join was answered:
    # the store says starting, and nobody is working on it.
    service.start_agent = lambda *args, **kwargs: None
    send(service, join(1))
    del service.start_agent
    assert store.get_call("call0001").state == lc.STARTING
    clock.advance(WORK_LEASE_S + 1)
    convoai.join_errors.clear()
    service.sweep()
    assert store.get_call("call0001").state == lc.ACTIVE and len(convoai.running()) == 1


def test_concurrent_copies_of_one_join_start_one_agent(service, convoai, store):
    barrier = threading.Barrier(8)
    answers = []

    def deliver(n):
        barrier.wait()
        answers.append(send(service, join(1, notice=f"copy-{n % 3}")))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a["outcome"] for a in answers].count("call_started") == 1
    assert convoai.count("join") == 1 and len(store.calls_in_channel("ch")) == 1


def test_agent_left_notification_ends_the_call(service, store, convoai):
    from ncs.events import AgentEvent

    send(service, join(1))
    event = AgentEvent(kind="agent_left", event_type=102, agent_id="agent-1",
                       name="phoneagent-call0001", channel="ch",
                       labels={"call_id": "call0001", "service": "phoneagent"},
                       payload={"message": "Idle for too long", "status": "STOPPED"})
    assert handle_agent_event(service, event, notice_id="cv-1")["outcome"] == "call_ended_by_agent"
    assert handle_agent_event(service, event, notice_id="cv-1")["outcome"] == "duplicate_notice"
    assert store.get_call("call0001").state == lc.ENDED
    stranger = AgentEvent(kind="agent_left", event_type=102, agent_id="x", name="someone-else",
                          channel="ch", labels={}, payload={})
    assert handle_agent_event(service, stranger, notice_id="cv-2")["status"] == "ignored"


def test_the_sweepers_checkpoint_runs_between_transactions(store):
    """SQLite refuses a checkpoint inside a transaction; the store must not open one for it."""
    store.checkpoint()
    store.checkpoint()  # and again: nothing left open by the first


def test_reconcile_endpoint_sweeps_once_and_needs_the_cron_secret(settings, clock):
    from factory.app import create_app

    app = create_app(settings.replace(cron_secret="cron-secret-0123456789"))
    web = app.test_client()
    assert web.get("/api/reconcile").status_code == 401
    assert web.get("/api/reconcile", headers={"Authorization": "Bearer wrong"}
                   ).status_code == 401
    for token in ("cron-secret-0123456789", "sandbox-admin-token"):
        answer = web.get("/api/reconcile", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        assert answer.get_json()["calls_handled"] == 0


# -- ConvoAI's 104 (token expiring) and 112 (turns finished) ----------------------------------

def agent_event(kind, event_type, *, agent_id="agent-1", call_id="call0001",
                name="phoneagent-call0001", **payload):
    from ncs.events import AgentEvent

    labels = {"call_id": call_id, "service": "phoneagent"} if call_id else {}
    return AgentEvent(kind=kind, event_type=event_type, agent_id=agent_id, name=name,
                      channel="ch", labels=labels, payload={"agent_id": agent_id, **payload})


def token_expiring(**overrides):
    return agent_event("agent_token_expiring", 104, start_ts=1_799_913_600, channel="ch",
                       message="Task exceeded maximum lifetime", **overrides)


def kinds(store, call_id):
    return [e["kind"] for e in store.timeline(call_id)]


def test_token_expiring_renews_the_live_agents_token_once(service, store, convoai, settings):
    from sandbox.tokens import verify_rtc_token

    send(service, join(1))
    answer = handle_agent_event(service, token_expiring(), notice_id="cv-104")
    assert answer == {"status": "ok", "outcome": "token_renewed", "call_id": "call0001"}
    [(agent_id, properties)] = convoai.updates
    assert agent_id == "agent-1" and set(properties) == {"token"}
    grant = verify_rtc_token(properties["token"], app_id=settings.agora_app_id,
                             certificate=settings.agora_app_certificate, channel="ch",
                             uid=str(settings.agent_uid), now=time.time())
    assert grant.version == "007" and grant.expires_at > time.time() + 23 * 3600
    assert kinds(store, "call0001")[-2:] == ["agent_token_expiring", "agent_token_renewed"]
    # The same delivery again (an NCS retry) renews nothing more.
    again = handle_agent_event(service, token_expiring(), notice_id="cv-104")
    assert again["outcome"] == "duplicate_notice" and len(convoai.updates) == 1


@pytest.mark.parametrize(("overrides", "outcome"), [
    ({"call_id": None, "agent_id": "agent-unknown"}, "unknown_call"),
    ({"call_id": "no-such-call"}, "unknown_call"),
    ({"agent_id": "agent-other"}, "agent_not_live"),
    ({"call_id": None, "name": "someone-else"}, None),
])
def test_token_expiring_for_an_agent_not_live_here_is_ignored_with_a_reason(
        service, convoai, overrides, outcome):
    send(service, join(1))
    answer = handle_agent_event(service, token_expiring(**overrides), notice_id="cv-104")
    assert answer["status"] == "ignored" and answer["reason"]
    assert answer.get("outcome") == outcome
    assert convoai.updates == []


def test_token_expiring_after_the_call_ended_renews_nothing(service, store, convoai):
    send(service, join(1))
    send(service, leave(2))
    answer = handle_agent_event(service, token_expiring(), notice_id="cv-104")
    assert (answer["status"], answer["outcome"]) == ("ignored", "agent_not_live")
    assert convoai.updates == [] and "agent_token_expiring" in kinds(store, "call0001")


def test_a_failed_renewal_is_recorded_and_still_answered_200(service, store, convoai):
    send(service, join(1))
    convoai.update_errors.append(UpstreamUnavailable(detail="timeout on POST /update"))
    answer = handle_agent_event(service, token_expiring(), notice_id="cv-104")
    assert (answer["status"], answer["outcome"]) == ("ok", "token_renew_failed")
    failed = store.timeline("call0001")[-1]
    assert failed["kind"] == "agent_token_renew_failed"
    assert "timeout" in failed["detail"]["error"]
    assert store.get_call("call0001").state == lc.ACTIVE


def test_turns_finished_is_kept_on_the_timeline_checked_and_bounded(service, store):
    send(service, join(1))
    good = {"turn_id": 1, "start": {"start_at": 1_800_000_001_000, "type": "greeting"},
            "end": {"end_at": 1_800_000_003_000, "type": "ok"},
            "metrics": {"e2e_latency_ms": 900, "segmented_latency_ms": {"tts_ttfb": 300}}}
    turns = [good, "junk", {"turn_id": True}, *({**good, "turn_id": n} for n in range(2, 400))]
    event = agent_event("turns_finished", 112, channel="ch", start_ts=1_800_000_000,
                        stop_ts=1_800_000_600, total_turn_count=401, is_truncated=False,
                        turns=turns, extra="x" * 10_000)
    assert handle_agent_event(service, event, notice_id="cv-112")["outcome"] == "recorded"
    detail = store.timeline("call0001")[-1]["detail"]
    assert set(detail) == {"agent_id", "start_ts", "stop_ts", "total_turn_count",
                           "is_truncated", "turns"}
    # The first 200 entries, less the two that are not turns; cut, so marked truncated.
    assert len(detail["turns"]) == 198 and detail["is_truncated"] is True
    assert detail["turns"][0]["e2e_latency_ms"] == 900
    assert detail["turns"][0]["start_type"] == "greeting"
