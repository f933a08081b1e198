"""A batch of calls as NCS would deliver it under load, and what the fake ConvoAI says came of it.

Each call is a caller join (clientSeq 1) and a leave (clientSeq 2) in its own channel. A share of
the events is delivered twice (the same body and noticeId, as an NCS retry is), and a share of
the calls has its leave delivered before its join (the join then must start nothing). The calls
are dealt to connections (streams); on each stream the calls' deliveries are interleaved at
random, a call's own deliveries keeping their order. The duplicate of a normal call's join goes
to another stream, so it races the original; every other duplicate follows its original on the
same stream (a retry never precedes the delivery it repeats).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.common import JOIN_EVENT, LEAVE_EVENT, event_body
from bench.loadgen import Send, http_post


@dataclass
class Delivery:
    key: int
    call: int
    kind: str  # "join" | "leave"
    duplicate: bool
    data: bytes


@dataclass
class Plan:
    channels: list[str]
    reordered: set[int]
    deliveries: list[Delivery]
    streams: list[list[Send]]
    events: int  # distinct NCS events (2 per call)
    duplicated: int  # events delivered twice

    @property
    def sends(self) -> int:
        return len(self.deliveries)


def make_plan(host: str, port: int, *, calls: int, streams: int, dup_pct: float,
              reorder_pct: float, label: str, seed: int) -> Plan:
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:6]
    channels = [f"burst_{label}_{tag}_{i}" for i in range(calls)]
    reordered = set(rng.sample(range(calls), round(calls * reorder_pct / 100)))
    events = [(call, kind) for call in range(calls) for kind in ("join", "leave")]
    duplicated = set(rng.sample(range(len(events)), round(len(events) * dup_pct / 100)))
    deliveries: list[Delivery] = []

    def deliver(call: int, kind: str, duplicate: bool, data: bytes) -> Delivery:
        d = Delivery(len(deliveries), call, kind, duplicate, data)
        deliveries.append(d)
        return d

    # Per call, its deliveries in order; plus the join duplicates that race on another stream.
    sequences: list[list[Delivery]] = []
    racing: list[Delivery] = []
    for call, channel in enumerate(channels):
        bodies = {
            "join": http_post(host, port, "/webhook", event_body(JOIN_EVENT, channel, 1)),
            "leave": http_post(host, port, "/webhook",
                               event_body(LEAVE_EVENT, channel, 2, reason=1)),
        }
        order = ("leave", "join") if call in reordered else ("join", "leave")
        seq = [deliver(call, kind, False, bodies[kind]) for kind in order]
        for kind in order:
            if 2 * call + (kind == "leave") not in duplicated:
                continue
            dup = deliver(call, kind, True, bodies[kind])
            if kind == "join" and call not in reordered:
                racing.append(dup)
            else:
                first = seq.index(next(d for d in seq if d.kind == kind and not d.duplicate))
                seq.insert(rng.randint(first + 1, len(seq)), dup)
        sequences.append(seq)

    lanes: list[list[Delivery]] = [[] for _ in range(streams)]
    for s in range(streams):
        pending = [list(seq) for seq in sequences[s::streams]]
        while pending:
            weights = [len(p) for p in pending]
            pick = rng.choices(range(len(pending)), weights=weights)[0]
            lanes[s].append(pending[pick].pop(0))
            if not pending[pick]:
                pending.pop(pick)
    if streams > 1:
        for dup in racing:
            home = dup.call % streams
            other = rng.choice([s for s in range(streams) if s != home])
            original = next(d for d in lanes[home] if d.call == dup.call and d.kind == "join")
            ratio = lanes[home].index(original) / max(1, len(lanes[home]))
            lanes[other].insert(round(ratio * len(lanes[other])), dup)
    else:
        for dup in racing:
            lane = lanes[0]
            at = next(i for i, d in enumerate(lane) if d.call == dup.call and d.kind == "join")
            lane.insert(at + 1, dup)
    return Plan(channels, reordered, deliveries,
                [[Send(d.key, d.data) for d in lane] for lane in lanes if lane],
                events=len(events), duplicated=len(duplicated))


@dataclass
class Outcome:
    """What reached the fake ConvoAI for one plan's channels."""

    agents: int = 0  # joins that reached ConvoAI
    duplicate_agents: int = 0  # joins beyond the first, per channel
    orphans: int = 0  # agents started and never stopped (every call ends with a leave)
    reordered_with_agent: int = 0  # leave-before-join calls that started an agent anyway
    normal_without_agent: int = 0  # join-then-leave calls that never started one
    unknown_leaves: int = 0  # leaves of agents the fake never started
    examples: list[str] = field(default_factory=list)


def assess(plan: Plan, record: dict[str, list[dict[str, Any]]]) -> Outcome:
    index = {channel: i for i, channel in enumerate(plan.channels)}
    joins = [j for j in record["joins"] if j["channel"] in index]
    agents = {j["agent_id"] for j in joins}
    stopped = {lv["agent_id"] for lv in record["leaves"]}
    per_channel = Counter(j["channel"] for j in joins)
    out = Outcome(agents=len(joins))
    out.duplicate_agents = sum(n - 1 for n in per_channel.values() if n > 1)
    orphans = [j for j in joins if j["agent_id"] not in stopped]
    out.orphans = len(orphans)
    out.reordered_with_agent = sum(1 for c in per_channel if index[c] in plan.reordered)
    out.normal_without_agent = sum(1 for i, c in enumerate(plan.channels)
                                   if i not in plan.reordered and c not in per_channel)
    out.unknown_leaves = sum(1 for lv in record["leaves"] if lv["channel"] is None
                             and lv["agent_id"] not in agents)
    out.examples = ([f"duplicate agents in {c}" for c, n in per_channel.items() if n > 1][:2]
                    + [f"orphan {j['agent_id']} in {j['channel']}" for j in orphans][:2])
    return out
