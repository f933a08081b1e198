"""What a caller's event writes (calls/plan.py): pure, one behaviour per test."""

import pytest

from calls import guards
from calls import lifecycle as lc
from calls.lifecycle import CallerJoined, CallerLeft, LiveCall, decide
from calls.plan import WORK_LEASE_S, Plan, TimelineEntry, agent_name, plan

NOW = 1_000.0
LIMITS = guards.Limits(max_concurrent_calls=2)


def join(seq=1):
    return CallerJoined(channel="ch", uid=111, seq=seq, notice_id=f"j{seq}")


def leave(seq=2, reason=1):
    return CallerLeft(channel="ch", uid=111, seq=seq, notice_id=f"l{seq}", reason=reason)


def live(state, agent_id="agent-1", grace_until=None):
    return LiveCall(id="c1", state=state, agent_id=agent_id, grace_until=grace_until)


def planned(event, call=None, **options):
    decision = decide(event, None, call, now=NOW, grace_s=30)
    return plan(event, decision, call, now=NOW, agent_name_prefix="phoneagent", **options)


def test_the_agent_is_named_after_the_call_in_one_place():
    assert agent_name("phoneagent", "abc") == "phoneagent-abc"


def test_a_join_in_a_quiet_channel_plans_a_starting_call_with_its_lease():
    result = planned(join(), new_call_id="n1", persona="support")
    new = result.new_call
    assert (new.id, new.state, new.agent_name, new.persona) == (
        "n1", lc.STARTING, "phoneagent-n1", "support")
    assert new.retry_at == NOW + WORK_LEASE_S and new.join_notice_id == "j1"
    assert result.start_new_call and result.starts_agent
    assert result.participant == (1, True) and result.call_id == "n1"
    assert result.timeline == () and result.emit == ()


def test_a_call_over_the_cost_guard_is_planned_refused_with_its_event_and_no_agent():
    result = planned(join(), new_call_id="n1", limits=LIMITS,
                     usage=guards.Usage(open_calls=2, agent_seconds_today=0))
    assert result.refused == guards.MAX_CONCURRENT
    assert result.new_call.state == lc.REFUSED and result.new_call.retry_at is None
    assert result.new_call.end_reason == guards.MAX_CONCURRENT
    assert not result.starts_agent
    assert result.timeline == (TimelineEntry("n1", "service", "call_refused",
                                             {"reason": guards.MAX_CONCURRENT}),)
    assert result.emit == (("ended", "n1"),)


def test_a_call_inside_the_limits_starts_its_agent():
    result = planned(join(), new_call_id="n1", limits=LIMITS,
                     usage=guards.Usage(open_calls=1, agent_seconds_today=0))
    assert result.refused is None and result.start_new_call


def test_a_new_call_needs_its_id():
    with pytest.raises(ValueError):
        planned(join())


def test_a_final_leave_stops_the_agent_under_a_lease_and_writes_the_timeline():
    result = planned(leave(), live(lc.ACTIVE))
    assert result.stop == ("c1", "agent-1")
    assert result.live.change.state == lc.STOPPING and result.live.retry_at == NOW + WORK_LEASE_S
    assert result.timeline == (TimelineEntry("c1", "ncs", "call_ending",
                                             {"seq": 2, "notice_id": "l2"}),)
    assert result.participant == (2, False) and result.emit == ()


def test_a_leave_from_a_pending_call_ends_it_and_tells_the_operator():
    result = planned(leave(), live(lc.PENDING, agent_id=None))
    assert result.live.change.state == lc.ENDED and result.live.retry_at is None
    assert result.emit == (("ended", "c1"),) and result.stop is None


def test_the_join_of_a_pending_call_starts_its_agent():
    result = planned(join(), live(lc.PENDING, agent_id=None))
    assert result.start_live_call and result.live.caller_seen
    assert result.new_call is None and result.call_id == "c1"


def test_a_join_while_in_a_call_only_notes_the_caller():
    result = planned(join(), live(lc.ACTIVE))
    assert result.live.caller_seen and result.live.change is None
    assert not result.starts_agent and result.timeline == ()


def test_a_join_after_the_grace_window_closes_the_old_call_and_plans_a_new_one():
    result = planned(join(), live(lc.GRACE, grace_until=NOW - 1), new_call_id="n2")
    assert result.stop == ("c1", "agent-1") and result.live.change.state == lc.STOPPING
    assert result.new_call.id == "n2" and result.start_new_call and result.call_id == "n2"


def test_an_event_the_rules_ignore_writes_nothing():
    decision = lc.Decision(outcome="stale", applied=False)
    result = plan(join(), decision, live(lc.ACTIVE), now=NOW, agent_name_prefix="p")
    assert result == Plan(decision, live=result.live)
    assert result.participant is None and result.call_id == "c1"
    assert result.live.change is None and not result.live.caller_seen
