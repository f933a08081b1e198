"""Burst: how many NCS events a second the service takes through its 2 workers, and whether a
burst with duplicates and reordering ever starts a second agent for a call or leaves one running.

    .venv/bin/python bench/burst.py [--calls 1000] [--rounds 3] [--out FILE.md]

A fake ConvoAI (bench/fake_convoai.py, answering at once), the service and the floor
(bench/floor_app.py) under the production gunicorn configuration, on 127.0.0.1. Each round
sends 1,000 calls (2,000 events: a join and a leave per call; 20 % of the events delivered twice,
10 % of the calls with the leave before the join; bench/plan.py) as fast as the client can, over
keep-alive connections spread across several client processes (bench/loadgen.py), first to one
target, then to the other (the order alternates by round). After the service's burst the fake's
record gives:

- duplicate agents: joins beyond the first for any channel;
- orphans: agents that were started and never stopped (every call ends with a leave);
- leave-before-join calls that started an agent, and join-then-leave calls that did not.

The result is the "## Burst" section of --out (other sections are kept) with a plot beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import loadgen  # noqa: E402
from bench.common import (  # noqa: E402
    BenchError,
    Child,
    Server,
    Stack,
    add_output_args,
    bench_main,
    cpu_seconds,
    header_lines,
    load_average,
    machine_line,
    ms,
    now_utc,
    plot_path,
    pyplot,
    say,
    sequential_calls,
    start_profiler,
    stop_profilers,
    summary,
    verdict,
    write_section,
)
from bench.plan import Outcome, Plan, assess, make_plan  # noqa: E402

SECTION = "## Burst"
PLOT_NAME = "burst.png"
TARGET_EVENTS_PER_S = 500.0
#: ... and at least this share of the floor's rate under the same client (issue #16).
TARGET_SHARE_OF_FLOOR = 0.5


@dataclass
class Burst:
    target: str
    round: int
    plan: Plan
    run: loadgen.RunResult
    server_cpu_s: float
    fake_cpu_s: float
    outcome: Outcome | None = None
    statuses: Counter = field(default_factory=Counter)
    answers: Counter = field(default_factory=Counter)
    #: the ConvoAI requests the fake received for this burst, by kind (joins, leaves, history)
    upstream: dict[str, int] = field(default_factory=dict)

    @property
    def wall_s(self) -> float:
        res = self.run.results.values()
        return max(r.t_answer for r in res) - min(r.t_send for r in res)

    @property
    def events_per_s(self) -> float:
        return self.plan.events / self.wall_s

    @property
    def sends_per_s(self) -> float:
        return self.plan.sends / self.wall_s

    @property
    def answer_times(self) -> list[float]:
        return [r.t_answer - r.t_send for r in self.run.results.values() if r.status]

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)


def one_burst(args: argparse.Namespace, stack: Stack, server: Server, label: str, rnd: int,
              *, seed: int) -> Burst:
    plan = make_plan("127.0.0.1", server.port, calls=args.calls, streams=args.connections,
                     dup_pct=args.dup_pct, reorder_pct=args.reorder_pct, label=label, seed=seed)
    stack.fake.reset()
    pids = [server.child.pid, *server.child.worker_pids()]
    cpu0, fake0 = cpu_seconds(pids), cpu_seconds([stack.fake_child.pid])
    run = loadgen.run("127.0.0.1", server.port, plan.streams, processes=args.processes,
                      timeout_s=args.burst_timeout)
    cpu1, fake1 = cpu_seconds(pids), cpu_seconds([stack.fake_child.pid])
    missing = plan.sends - len(run.results)
    if missing:
        raise BenchError(f"{server.name}: {missing} of {plan.sends} deliveries never ran "
                         f"(--burst-timeout {args.burst_timeout:g} s)")
    burst = Burst(server.name, rnd, plan, run, cpu1 - cpu0, fake1 - fake0)
    for res in run.results.values():
        burst.statuses[res.status] += 1
        if res.status == 200:
            burst.answers[_outcome(res.body)] += 1
    return burst


def _outcome(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        return "unparsed"
    return str(answer.get("outcome") or answer.get("status"))


def run(args: argparse.Namespace, children: list[Child], log_dir: Path) -> None:
    started = now_utc()
    t_start = time.monotonic()
    load_before = load_average()
    stack = Stack(children, log_dir, latency_ms=0, database_url=args.database_url)
    service = stack.gunicorn("service", args.service_app)
    floor = stack.gunicorn("floor", args.floor_app)
    stack.wait_all(service, floor)
    say(f"service workers {service.child.worker_pids()}, floor workers "
        f"{floor.child.worker_pids()}; logs in {log_dir}")
    for server in (service, floor):
        sequential_calls(server, 20, server.name)
        warm = one_burst(args, stack, server, f"warm{server.name}", -1, seed=999)
        say(f"warm-up {server.name}: {warm.plan.sends} deliveries, {warm.events_per_s:.0f} "
            "events/s")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        children.append(start_profiler(service.child, args.profile / "service.txt", log_dir,
                                       gil=args.profile_gil))

    bursts: list[Burst] = []
    for rnd in range(args.rounds):
        order = (service, floor) if rnd % 2 == 0 else (floor, service)
        for server in order:
            burst = one_burst(args, stack, server, f"{server.name}{rnd}", rnd, seed=rnd)
            if server is service:
                stack.fake.settle(quiet_s=args.settle_s, limit_s=60)
                burst.outcome = assess(burst.plan, stack.fake.record())
            # The floor joins inline and sends nothing else: its count is whole on the answer.
            burst.upstream = stack.fake.requests()
            bursts.append(burst)
            o = burst.outcome
            say(f"round {rnd + 1}/{args.rounds} {server.name:7s}: {burst.plan.sends} deliveries "
                f"in {burst.wall_s:.2f} s = {burst.events_per_s:.0f} events/s, failed "
                f"{burst.failed}" + (f", agents {o.agents}, duplicate agents "
                                     f"{o.duplicate_agents}, orphans {o.orphans}" if o else ""))
    if args.profile:
        stop_profilers(children)
    load_after = load_average()

    png = plot_path(args, PLOT_NAME)
    plot_name = os.path.relpath(png, args.out.parent) if not args.no_write else None
    section = render(args, bursts, stack, (load_before, load_after), plot_name, started,
                     time.monotonic() - t_start)
    if args.no_write:
        say(section)
        return
    plot(bursts, png, f"Burst: {args.calls} calls per round, {started:%Y-%m-%d} "
                      f"({stack.conf['workers']} gthread workers, "
                      f"{stack.database.split(' (')[0]})")
    write_section(args.out, section)
    say(section)
    say(f"wrote {args.out} and {png}")


def render(args: argparse.Namespace, bursts: list[Burst], stack: Stack, load: tuple[str, str],
           plot_name: str | None, started: dt.datetime, duration_s: float) -> str:
    service = [b for b in bursts if b.target == "service"]
    floor = [b for b in bursts if b.target == "floor"]
    med_s = statistics.median(b.events_per_s for b in service)
    med_f = statistics.median(b.events_per_s for b in floor)
    dups = sum(b.outcome.duplicate_agents for b in service if b.outcome)
    orphans = sum(b.outcome.orphans for b in service if b.outcome)
    reordered_started = sum(b.outcome.reordered_with_agent for b in service if b.outcome)
    missing = sum(b.outcome.normal_without_agent for b in service if b.outcome)
    failed = sum(b.failed for b in service)
    share = med_s / med_f if med_f else 0.0
    # What the share mostly follows: the server CPU each POST costs (bench/README.md).
    cpu_s = statistics.median(b.server_cpu_s * 1000 / b.plan.sends for b in service)
    cpu_f = statistics.median(b.server_cpu_s * 1000 / b.plan.sends for b in floor)
    rate_met = med_s >= TARGET_EVENTS_PER_S and share >= TARGET_SHARE_OF_FLOOR
    safe = dups == 0 and orphans == 0 and reordered_started == 0 and failed == 0
    p = service[0].plan
    lines = [
        *header_lines(SECTION, "burst.py", started, duration_s),
        f"{args.calls:,} calls ({p.events:,} NCS events: a caller join and a leave per call; "
        f"{args.dup_pct:g} % of the events ({p.duplicated}) delivered twice with the same "
        f"noticeId, {args.reorder_pct:g} % of the calls ({len(p.reordered)}) with the leave "
        f"delivered before the join; {p.sends:,} POSTs) sent as fast as the client can, then "
        "the same shape of burst to the floor (`bench/floor_app.py`: verify, parse, join inline; "
        "no store, so no duplicate or ordering checks; leaves ignored). The client "
        f"(`bench/loadgen.py`) is {args.processes} processes holding {args.connections} "
        "keep-alive connections in all; requests are signed and serialised before the clock "
        "starts and each costs the client tens of microseconds (client CPU below). On each "
        "connection the calls' deliveries are interleaved at random; a duplicate of a join "
        "races its original on another connection, other duplicates follow theirs "
        "(`bench/plan.py`). *events/s* = 2,000 events / (last answer - first send); "
        "*POSTs/s* counts the duplicates too. After the service's burst the fake ConvoAI's "
        "record (`bench/fake_convoai.py`, answering at once) is read once no join or leave has "
        f"arrived for {args.settle_s:g} s: *duplicate agents* are joins beyond the first in a "
        "channel, *orphans* agents started and never stopped (every call ends with a leave).",
        "",
        machine_line(load),
        stack.config_line(args.service_app, 0) + " The floor runs under the same gunicorn "
        "configuration.",
        f"- Rounds: {args.rounds}, service and floor alternating first, after a warm-up burst "
        "and 20 sequential calls per target.",
        "",
        "| round | target | events/s | POSTs/s | wall s | answer p50 ms | answer p99 ms | "
        "answer max ms | non-200 | server CPU s | server CPU ms / POST | fake CPU s | client CPU s "
        "| agents | duplicate agents | orphans |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
        "---: | ---: | ---: | ---: |",
    ]
    for b in bursts:
        ans = summary(b.answer_times)
        o = b.outcome
        lines.append(
            f"| {b.round + 1} | {b.target} | {b.events_per_s:.0f} | {b.sends_per_s:.0f} | "
            f"{b.wall_s:.2f} | {ms(ans['p50'])} | {ms(ans['p99'])} | {ms(ans['max'])} | "
            f"{b.failed} | {b.server_cpu_s:.1f} | {b.server_cpu_s * 1000 / b.plan.sends:.2f} | "
            f"{b.fake_cpu_s:.1f} | "
            f"{b.run.client_cpu_s:.1f} | " + (f"{o.agents} | {o.duplicate_agents} | {o.orphans}"
                                             if o else "- | - | -") + " |")
    answers = Counter()
    for b in service:
        answers.update(b.answers)
    lines += [
        "",
        "Service answers over all rounds: "
        + ", ".join(f"{k} {v}" for k, v in sorted(answers.items(), key=lambda kv: -kv[1]))
        + f". Leave-before-join calls that started an agent: {reordered_started}; "
        f"join-then-leave calls that started none: {missing}.",
        "",
        f"**Target (>= {TARGET_EVENTS_PER_S:g} events/s and >= {TARGET_SHARE_OF_FLOOR:g} x the "
        f"floor's, medians of rounds): {verdict(rate_met)}** (service {med_s:.0f} events/s, "
        f"{share:.3f} x the floor's {med_f:.0f} "
        f"events/s under the same client). **Target (no duplicate agent, no orphan): "
        f"{verdict(safe)}** ({dups} duplicate agents, {orphans} orphans, {failed} non-200 "
        "answers).",
        "",
        f"Server CPU per POST (medians of rounds): service {cpu_s:.2f} ms, floor {cpu_f:.2f} ms "
        f"({cpu_s / cpu_f if cpu_f else 0:.1f} x). Both servers take about as much of the "
        "shared machine as they can get, so the share of the floor's rate tracks the inverse "
        "of this ratio: see bench/README.md, \"The burst against the floor\".",
        "",
        "ConvoAI requests per call (all rounds, as the fake received them): "
        + upstream_line("service", service, args.calls) + "; "
        + upstream_line("floor", floor, args.calls) + ". Each costs its sender about the same "
        "CPU: the service stops every agent it starts and asks for the conversation first, "
        "while the floor ignores leaves but joins again on each duplicate.",
        "",
    ]
    examples = [e for b in service if b.outcome for e in b.outcome.examples]
    errors = [r.error for b in bursts for r in b.run.results.values() if r.error]
    if examples:
        lines += ["Examples: " + "; ".join(examples[:4]), ""]
    if errors:
        lines += ["Client errors: " + "; ".join(errors[:3]), ""]
    if plot_name:
        lines += [f"![Deliveries answered over time, service and floor]({plot_name})", ""]
    return "\n".join(lines)


def upstream_line(name: str, bursts: list[Burst], calls: int) -> str:
    """``name``'s ConvoAI requests per call over ``bursts``, by kind and in all."""
    total = Counter()
    for b in bursts:
        total.update(b.upstream)
    n = calls * len(bursts)
    kinds = ("joins", "history", "leaves")
    parts = " + ".join(f"{total[kind] / n:.2f} {kind}" for kind in kinds)
    return f"{name} {parts} = {sum(total[kind] for kind in kinds) / n:.2f}"


def plot(bursts: list[Burst], path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.2), dpi=110)
    colours = {"service": "tab:red", "floor": "tab:blue"}
    seen: set[str] = set()
    longest = 0.0
    for b in bursts:
        t0 = min(r.t_send for r in b.run.results.values())
        xs = sorted(r.t_answer - t0 for r in b.run.results.values())
        longest = max(longest, xs[-1])
        label = None if b.target in seen else f"{b.target} (each line a round)"
        seen.add(b.target)
        ax.step(xs, range(1, len(xs) + 1), where="post", color=colours[b.target], alpha=0.8,
                label=label)
    sends = bursts[0].plan.sends
    per_event = sends / bursts[0].plan.events
    slope = TARGET_EVENTS_PER_S * per_event
    ax.plot([0, sends / slope], [0, sends], color="grey", linestyle="--", linewidth=0.9,
            label=f"target: {TARGET_EVENTS_PER_S:g} events/s ({slope:.0f} POSTs/s)")
    ax.set_xlabel("seconds since the burst's first POST")
    ax.set_ylabel("POSTs answered")
    ax.set_xlim(0, max(longest, sends / slope) * 1.05)
    ax.set_ylim(0, sends * 1.03)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.25)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="calls per burst")
    parser.add_argument("--rounds", type=int, default=3, help="bursts per target")
    parser.add_argument("--dup-pct", type=float, default=20.0,
                        help="share of events delivered twice")
    parser.add_argument("--reorder-pct", type=float, default=10.0,
                        help="share of calls whose leave comes before the join")
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--connections", type=int, default=32,
                        help="keep-alive connections, over all client processes")
    parser.add_argument("--settle-s", type=float, default=2.0,
                        help="quiet time at the fake ConvoAI before its record is read")
    parser.add_argument("--floor-app", default="bench.floor_app:app")
    parser.add_argument("--burst-timeout", type=float, default=120.0,
                        help="give up on a burst after this many seconds")
    parser.add_argument("--timeout", type=float, default=480.0,
                        help="give up on the whole run after this many seconds")
    add_output_args(parser, PLOT_NAME)
    args = parser.parse_args(argv)
    if args.calls < 10 or args.rounds < 1 or args.processes < 1 or \
            args.connections < args.processes:
        parser.error("need --calls >= 10, --rounds >= 1, --connections >= --processes >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return bench_main("burst", lambda children, log_dir: run(args, children, log_dir),
                      keep_logs=args.keep_logs, timeout_s=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
