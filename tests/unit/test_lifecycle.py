"""The pure rules, one behaviour per test."""

import pytest

from calls import lifecycle as lc
from calls.lifecycle import CallerJoined, CallerLeft, LiveCall, Participant, decide

NOW = 1_000.0


def join(seq):
    return CallerJoined(channel="ch", uid=111, seq=seq, notice_id=f"j{seq}")


def leave(seq, reason=1):
    return CallerLeft(channel="ch", uid=111, seq=seq, notice_id=f"l{seq}", reason=reason)


def seen(last_seq, present=True, at=NOW):
    return Participant(last_seq=last_seq, present=present, updated_at=at)


def call(state, agent_id="agent-1", grace_until=None):
    return LiveCall(id="c1", state=state, agent_id=agent_id, grace_until=grace_until)


def test_first_join_in_a_quiet_channel_begins_a_call():
    assert decide(join(1), None, None, now=NOW, grace_s=30) == lc.Decision(
        outcome="call_started", new_call=True)


def test_a_duplicate_or_older_event_is_dropped():
    assert decide(join(5), seen(5), None, now=NOW, grace_s=30).outcome == "duplicate"
    stale = decide(join(4), seen(5, present=False), None, now=NOW, grace_s=30)
    assert (stale.outcome, stale.applied, stale.new_call) == ("stale", False, False)


def test_leave_before_join_never_starts_an_agent():
    first = decide(leave(2), None, None, now=NOW, grace_s=30)
    assert first.outcome == "no_live_call" and first.applied
    late_join = decide(join(1), seen(2, present=False), None, now=NOW, grace_s=30)
    assert late_join.ignored and not late_join.new_call


def test_a_second_join_while_in_a_call_starts_nothing():
    decision = decide(join(3), seen(1), call(lc.ACTIVE), now=NOW, grace_s=30)
    assert decision.outcome == "already_in_call" and not decision.new_call


def test_a_hang_up_ends_the_call_and_stops_its_agent():
    decision = decide(leave(2, reason=1), seen(1), call(lc.ACTIVE), now=NOW, grace_s=30)
    assert decision.change == lc.CallChange(state=lc.STOPPING, end_reason="caller_hung_up")
    assert decision.stop_agent_id == "agent-1"


def test_a_leave_while_the_start_is_in_flight_ends_the_call_without_an_agent_to_stop():
    decision = decide(leave(2), seen(1), call(lc.STARTING, agent_id=None), now=NOW, grace_s=30)
    assert decision.change.state == lc.STOPPING and decision.stop_agent_id is None


@pytest.mark.parametrize("reason", sorted(lc.TRANSIENT_LEAVE_REASONS))
def test_a_transient_leave_opens_the_rejoin_grace_window(reason):
    decision = decide(leave(2, reason), seen(1), call(lc.ACTIVE), now=NOW, grace_s=30)
    assert decision.change == lc.CallChange(state=lc.GRACE, grace_until=NOW + 30)
    assert decision.stop_agent_id is None


@pytest.mark.parametrize("reason", [0, 1, 3, 5, 12, 999, None])
def test_other_leave_reasons_are_final(reason):
    decision = decide(leave(2, reason), seen(1), call(lc.ACTIVE), now=NOW, grace_s=30)
    assert decision.change.state == lc.STOPPING


def test_without_a_grace_window_every_leave_is_final():
    assert decide(leave(2, 2), seen(1), call(lc.ACTIVE), now=NOW,
                  grace_s=0).change.state == lc.STOPPING


def test_rejoin_inside_the_window_continues_the_same_call_and_agent():
    decision = decide(join(3), seen(2, present=False), call(lc.GRACE, grace_until=NOW + 5),
                      now=NOW, grace_s=30)
    assert decision == lc.Decision(outcome="rejoined", change=lc.CallChange(state=lc.ACTIVE))


def test_rejoin_before_the_agent_was_known_resumes_the_start():
    decision = decide(join(3), seen(2, present=False),
                      call(lc.GRACE, agent_id=None, grace_until=NOW + 5), now=NOW, grace_s=30)
    assert decision.change.state == lc.STARTING


def test_a_join_after_the_window_ends_the_old_call_and_begins_a_new_one():
    decision = decide(join(3), seen(2, present=False), call(lc.GRACE, grace_until=NOW - 1),
                      now=NOW, grace_s=30)
    assert decision.new_call and decision.stop_agent_id == "agent-1"
    assert decision.change == lc.CallChange(state=lc.STOPPING, end_reason="rejoin_grace_expired")


def test_sequence_memory_of_an_absent_caller_expires():
    long_ago = NOW - lc.SEQ_MEMORY_S - 1
    assert decide(join(1), seen(9, present=False, at=long_ago), None, now=NOW,
                  grace_s=30).new_call
    # ...but not while the caller is in the channel.
    assert decide(join(1), seen(9, present=True, at=long_ago), None, now=NOW,
                  grace_s=30).ignored


def test_leave_with_no_live_call_is_recorded_but_does_nothing():
    decision = decide(leave(4), seen(3, present=False), None, now=NOW, grace_s=30)
    assert decision.applied and decision.change is None and decision.stop_agent_id is None


@pytest.mark.parametrize(("reason", "text"), [(1, "caller_hung_up"), (None, "caller_left"),
                                              (77, "caller_left_reason_77")])
def test_leave_reasons_read_well(reason, text):
    assert lc.leave_reason_text(reason) == text


def test_a_call_made_at_ring_time_starts_its_agent_when_the_caller_joins():
    decision = decide(join(1), None, call(lc.PENDING, agent_id=None), now=NOW, grace_s=30)
    assert decision.outcome == "call_answered" and decision.start_live_call
    assert decision.change == lc.CallChange(state=lc.STARTING) and not decision.new_call


def test_a_caller_who_leaves_a_ring_time_call_without_an_agent_just_ends_it():
    decision = decide(leave(2), seen(1), call(lc.PENDING, agent_id=None), now=NOW, grace_s=30)
    assert decision.change.state == lc.ENDED and decision.stop_agent_id is None


def test_the_callers_join_into_a_call_whose_agent_started_early_starts_nothing_more():
    decision = decide(join(1), None, call(lc.STARTING, agent_id=None), now=NOW, grace_s=30)
    assert decision.outcome == "already_in_call"
    assert not decision.new_call and not decision.start_live_call
