"""Property-based: random duplicates, redundant copies, reordering, and joins/leaves that land
while other calls' starts and stops are still in flight, through the real store and service."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from calls import lifecycle as lc
from calls import migrate
from calls.lifecycle import CallerJoined, CallerLeft
from calls.service import CallService
from store import WORK_LEASE_S, Store
from tests.fakes import FakeClock, FakeConvoAI

GRACE_S = 30
_channel_numbers = itertools.count()


class DeferredExecutor:
    """Holds background work until the test decides to run it: that is the interleaving."""

    def __init__(self) -> None:
        self.pending: list = []

    def submit(self, fn, *args):
        self.pending.append((fn, args))

    def run(self, index: int) -> None:
        fn, args = self.pending.pop(index % len(self.pending))
        fn(*args)


@dataclass(frozen=True)
class Delivery:
    event: CallerJoined | CallerLeft
    kind: str  # "join" or "leave"


@st.composite
def scenarios(draw):
    """Calls in one channel, one after the other, each possibly with a network drop and rejoin;
    the last call may still be in progress. Then copies and a delivery order."""
    channel = f"ch-{next(_channel_numbers)}"  # each example gets a channel of its own
    seq = itertools.count(draw(st.integers(1, 10**12)), draw(st.integers(1, 1000)))
    events: list[Delivery] = []
    calls = draw(st.integers(1, 3))
    for n in range(calls):
        events.append(Delivery(CallerJoined(channel, 111, next(seq), f"{channel}-{len(events)}"),
                               "join"))
        if draw(st.booleans()):  # a drop and a rejoin inside the grace window
            events.append(Delivery(CallerLeft(channel, 111, next(seq), f"{channel}-{len(events)}",
                                              reason=draw(st.sampled_from([2, 10, 99]))),
                                   "leave"))
            events.append(Delivery(CallerJoined(channel, 111, next(seq),
                                                f"{channel}-{len(events)}"), "join"))
        if n < calls - 1 or draw(st.booleans()):
            events.append(Delivery(CallerLeft(channel, 111, next(seq), f"{channel}-{len(events)}",
                                              reason=draw(st.sampled_from([1, 0, 3, None]))),
                                   "leave"))
    copies: list[Delivery] = []
    for d in events:
        copies += [d] * draw(st.integers(1, 3))
        if draw(st.booleans()):  # the same event again under another noticeId
            e = d.event
            copies.append(Delivery(type(e)(**{**e.__dict__, "notice_id": e.notice_id + "-r"}),
                                   d.kind))
    order = draw(st.permutations(copies))
    # After each delivery, how much pending work (starts, stops) runs, and in which order.
    work = [draw(st.lists(st.integers(0, 50), max_size=3)) for _ in order]
    in_flight = [draw(st.booleans()) for _ in order]
    return channel, events, order, work, in_flight


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    clock = FakeClock(1_800_000_000.0)
    store = Store.from_url(f"sqlite:///{tmp_path_factory.mktemp('prop') / 'p.db'}", clock=clock)
    migrate.upgrade(store.engine)
    yield store, clock
    store.engine.dispose()


@hsettings(max_examples=150, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scenarios())
def test_lifecycle_rules_hold_under_any_delivery(shared_store, settings, scenario):
    store, clock = shared_store
    clock.advance(10_000)  # each example starts well after the previous one
    channel, events, order, work, in_flight = scenario
    convoai = FakeConvoAI()
    executor = DeferredExecutor()
    ids = (f"{channel}-{n}" for n in itertools.count())
    # No cost guard: examples share one store, and the rules under test are the lifecycle's.
    service = CallService(settings.replace(rejoin_grace_s=GRACE_S, max_concurrent_calls=0),
                          store, convoai,
                          new_id=lambda: next(ids), executor=executor)

    state = {"highest": 0}
    plan = list(zip(order, work, in_flight, strict=True))

    def deliver_next() -> None:
        delivery, steps, _ = plan.pop(0)
        event = delivery.event
        answer = service.handle_caller_event(event, event_type=103 if delivery.kind == "join"
                                             else 104)
        if answer["outcome"] in ("call_started", "call_restarted"):
            # Rule c: only the newest event seen so far can begin a call, so a join delivered
            # after its own leave never starts an agent.
            assert event.seq > state["highest"], answer
        state["highest"] = max(state["highest"], event.seq)
        for index in steps:
            if executor.pending:
                executor.run(index)
        _check_always(store, convoai, channel)

    def while_joining(_agent_id: str) -> None:
        # Some deliveries land while ConvoAI is still answering a join.
        if plan and plan[0][2]:
            deliver_next()

    convoai.on_join = while_joining
    while plan:
        deliver_next()

    # Let everything settle: pending work, then the sweeper after every window has passed.
    while executor.pending:
        executor.run(0)
    last = max(events, key=lambda d: d.event.seq)
    if last.kind == "leave":
        # Rule d: an agent whose caller left during its start is stopped as soon as its id is
        # known, by the work that learnt the id, not later by the sweeper.
        assert [a for a in convoai.running() if a.channel == channel] == []
    clock.advance(max(GRACE_S, WORK_LEASE_S) + 1)
    for _ in range(3):
        service.sweep()
        while executor.pending:
            executor.run(0)
    _check_always(store, convoai, channel)

    calls = store.calls_in_channel(channel)
    running = [a for a in convoai.running() if a.channel == channel]
    if last.kind == "leave":
        # Rules a and d: the caller is gone, so no agent may be left running.
        assert running == [], (running, calls)
        assert all(c.state in lc.FINAL_STATES for c in calls), calls
    else:
        # The caller is still on the line: exactly one live call with one running agent.
        live = [c for c in calls if c.state in lc.LIVE_STATES]
        assert len(live) == 1 and len(running) == 1, (live, running)
        assert running[0].labels["call_id"] == live[0].id
    # Rule b overall: never more agents than calls, and every agent belongs to one call.
    assert len(convoai.agents) == len({a.labels["call_id"] for a in convoai.agents.values()})
    assert len(calls) <= sum(1 for d in events if d.kind == "join")


def _check_always(store, convoai, channel):
    calls = store.calls_in_channel(channel)
    # Rule a: one live call per channel at any moment.
    assert sum(1 for c in calls if c.state in lc.LIVE_STATES) <= 1, calls
    # Rule b: at most one agent per call, ever.
    per_call = [a.labels["call_id"] for a in convoai.agents.values() if a.channel == channel]
    assert len(per_call) == len(set(per_call)), per_call
