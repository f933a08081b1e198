"""Slow upstream: with ConvoAI taking 2 s per join, does a caller who rings during a rush still get
the join request sent at once, and does every webhook answer within NCS's 10 s?

    .venv/bin/python bench/slow_upstream.py [--calls 200] [--spread-s 1] [--latency-ms 2000]

A fake ConvoAI (bench/fake_convoai.py) that holds every join and leave for --latency-ms before
answering, and the service under the production gunicorn configuration, on 127.0.0.1. Each round
sends --calls caller joins spread evenly over --spread-s seconds, each on its own connection (as
NCS's many senders would), then, once every join has been answered, their leaves the same way.
Measured per call, from just before the client's POST:

- join delay: until the agent's join request arrives at the fake ConvoAI (CLOCK_MONOTONIC on
  both sides);
- answer time: until the webhook's answer (joins and leaves).

While the joins are in flight the connections each gunicorn worker holds are sampled. The result
is the "## Slow upstream" section of --out (other sections are kept) with a plot beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import threading
import time
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
    connections_per_worker,
    header_lines,
    join_body,
    leave_body,
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

SECTION = "## Slow upstream"
PLOT_NAME = "slow_upstream.png"
TARGET_DELAY_S = 0.5
TARGET_ANSWER_S = 10.0


@dataclass
class Round:
    delays: list[float] = field(default_factory=list)
    join_answers: list[float] = field(default_factory=list)
    leave_answers: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # non-200 answers and client errors
    missing_joins: int = 0
    duplicate_agents: int = 0
    orphans: int = 0
    peak_connections: dict[int, int] = field(default_factory=dict)
    send_span_s: float = 0.0


class ConnectionSampler(threading.Thread):
    """Samples, every 50 ms, how many connections each worker holds; keeps each one's peak."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.pids = server.child.worker_pids()
        self.port = server.port
        self.peak: dict[int, int] = dict.fromkeys(self.pids, 0)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            for pid, n in connections_per_worker(self.pids, self.port).items():
                self.peak[pid] = max(self.peak.get(pid, 0), n)


def send_spread(server: Server, bodies: list[bytes], spread_s: float, processes: int,
                timeout_s: float) -> loadgen.RunResult:
    """One POST per connection, the i-th at i * spread / n seconds after the start."""
    n = len(bodies)
    streams = [[loadgen.Send(i, loadgen.http_post("127.0.0.1", server.port, "/webhook", body,
                                                  close=True), at=i * spread_s / n)]
               for i, body in enumerate(bodies)]
    return loadgen.run("127.0.0.1", server.port, streams, processes=processes,
                       timeout_s=timeout_s)


def describe(res: loadgen.Result | None) -> str:
    if res is None:
        return "not sent"
    return f"{res.status} {res.error or res.body[:120].decode(errors='replace')}"


def one_round(args: argparse.Namespace, stack: Stack, server: Server, label: str) -> Round:
    rnd = Round()
    channels = [f"slow_{label}_{i}_{os.urandom(3).hex()}" for i in range(args.calls)]
    stack.fake.reset()
    sampler = ConnectionSampler(server)
    sampler.start()
    try:
        joins = send_spread(server, [join_body(c) for c in channels], args.spread_s,
                            args.processes, args.round_timeout)
    finally:
        sampler.stopped.set()
        sampler.join(5)
    rnd.peak_connections = sampler.peak
    sends = [joins.results[i].t_send for i in joins.results]
    rnd.send_span_s = max(sends) - min(sends) if sends else 0.0
    record = stack.fake.record()
    arrival: dict[str, float] = {}
    for j in record["joins"]:
        arrival.setdefault(j["channel"], j["t"])
    for i, channel in enumerate(channels):
        res = joins.results.get(i)
        if res is None or res.status != 200:
            rnd.failed.append(f"join {channel}: {describe(res)}")
        if res is not None and res.status:
            rnd.join_answers.append(res.t_answer - res.t_send)
        if res is not None and channel in arrival:
            rnd.delays.append(arrival[channel] - res.t_send)
        elif res is not None:
            rnd.missing_joins += 1

    leaves = send_spread(server, [leave_body(c) for c in channels], args.spread_s,
                         args.processes, args.round_timeout)
    for i, channel in enumerate(channels):
        res = leaves.results.get(i)
        if res is None or res.status != 200:
            rnd.failed.append(f"leave {channel}: {describe(res)}")
        if res is not None and res.status:
            rnd.leave_answers.append(res.t_answer - res.t_send)
    stack.fake.settle(quiet_s=max(2.0, args.latency_ms / 1000 + 1), limit_s=60)
    record = stack.fake.record()
    wanted = set(channels)
    joins_seen = [j for j in record["joins"] if j["channel"] in wanted]
    stopped = {lv["agent_id"] for lv in record["leaves"]}
    per_channel: dict[str, int] = {}
    for j in joins_seen:
        per_channel[j["channel"]] = per_channel.get(j["channel"], 0) + 1
    rnd.duplicate_agents = sum(n - 1 for n in per_channel.values())
    rnd.orphans = sum(1 for j in joins_seen if j["agent_id"] not in stopped)
    return rnd


def run(args: argparse.Namespace, children: list[Child], log_dir: Path) -> None:
    started = now_utc()
    t_start = time.monotonic()
    load_before = load_average()
    stack = Stack(children, log_dir, latency_ms=0, database_url=args.database_url)
    service = stack.gunicorn("service", args.service_app)
    stack.wait_all(service)
    say(f"service workers {service.child.worker_pids()}; logs in {log_dir}")
    sequential_calls(service, args.warmup, "warm")
    stack.fake.set_latency(args.latency_ms)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        children.append(start_profiler(service.child, args.profile / "service.txt", log_dir,
                                       gil=args.profile_gil))
    rounds: list[Round] = []
    for r in range(args.rounds):
        rnd = one_round(args, stack, service, f"r{r}")
        rounds.append(rnd)
        d = summary(rnd.delays)
        a = summary(rnd.join_answers + rnd.leave_answers)
        say(f"round {r + 1}/{args.rounds}: join delay p50 {ms(d['p50'])} ms, p99 "
            f"{ms(d['p99'])} ms, max {ms(d['max'])} ms; answer max {a['max']:.2f} s; "
            f"failed {len(rnd.failed)}, peak connections per worker "
            f"{sorted(rnd.peak_connections.values(), reverse=True)}")
    if args.profile:
        stop_profilers(children)
    load_after = load_average()
    if not any(r.delays for r in rounds):
        raise BenchError(f"no join reached the fake ConvoAI: {rounds[0].failed[:2]}")

    png = plot_path(args, PLOT_NAME)
    plot_name = os.path.relpath(png, args.out.parent) if not args.no_write else None
    section = render(args, rounds, stack, (load_before, load_after), plot_name, started,
                     time.monotonic() - t_start)
    if args.no_write:
        say(section)
        return
    plot(rounds, png, f"Slow upstream: {args.calls} calls in {args.spread_s:g} s, joins taking "
                      f"{args.latency_ms / 1000:g} s, {args.rounds} rounds, {started:%Y-%m-%d} "
                      f"({stack.conf['workers']} gthread workers x {stack.conf['threads']} "
                      "threads)")
    write_section(args.out, section)
    say(section)
    say(f"wrote {args.out} and {png}")


def render(args: argparse.Namespace, rounds: list[Round], stack: Stack, load: tuple[str, str],
           plot_name: str | None, started: dt.datetime, duration_s: float) -> str:
    delays = [d for r in rounds for d in r.delays]
    join_ans = [a for r in rounds for a in r.join_answers]
    leave_ans = [a for r in rounds for a in r.leave_answers]
    answers = join_ans + leave_ans
    missing = sum(r.missing_joins for r in rounds)
    failed = [f for r in rounds for f in r.failed]
    late = sum(1 for d in delays if d > TARGET_DELAY_S)
    slow = sum(1 for a in answers if a > TARGET_ANSWER_S)
    delay_met = not late and not missing and bool(delays)
    answer_met = not slow and not failed
    dups = sum(r.duplicate_agents for r in rounds)
    orphans = sum(r.orphans for r in rounds)
    cols = ("p50", "p90", "p99", "max")

    def row(name: str, values: list[float]) -> str:
        s = summary(values)
        return f"| {name} | {len(values)} | " + " | ".join(ms(s[c]) for c in cols) + " |"

    lines = [
        *header_lines(SECTION, "slow_upstream.py", started, duration_s),
        f"The fake ConvoAI (`bench/fake_convoai.py`) holds every join and leave "
        f"{args.latency_ms / 1000:g} s before answering. Each round sends {args.calls} caller "
        f"joins spread evenly over {args.spread_s:g} s, each on its own connection (NCS has many "
        "senders), and once all are answered their leaves the same way (`bench/loadgen.py`, "
        f"{args.processes} client processes). *Join delay* runs from just before the client's "
        "POST to the arrival of the agent's join request at the fake ConvoAI (both ends read "
        "CLOCK_MONOTONIC); *answer* to the webhook's answer. While the joins are in flight the "
        "connections each gunicorn worker holds are sampled every 50 ms.",
        "",
        machine_line(load),
        stack.config_line(args.service_app, args.latency_ms),
        f"- Rounds: {args.rounds} of {args.calls} calls, after {args.warmup} sequential warm-up "
        "calls with the fake answering at once. Joins sent over "
        + ", ".join(f"{r.send_span_s:.2f} s" for r in rounds) + ".",
        "",
        "| measure (ms) | n | p50 | p90 | p99 | max |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        row("join delay (webhook to join request at ConvoAI)", delays),
        row("answer, caller joins", join_ans),
        row("answer, caller leaves", leave_ans),
        "",
        "Per round, join delay max (ms): "
        + ", ".join(ms(max(r.delays)) if r.delays else "-" for r in rounds)
        + "; peak connections held per worker: "
        + ", ".join("/".join(str(n) for n in sorted(r.peak_connections.values(), reverse=True))
                    for r in rounds)
        + f". Joins that never reached ConvoAI: {missing}. Non-200 answers or client errors: "
        f"{len(failed)}. Duplicate agents: {dups}; orphans: {orphans}.",
        "",
        f"**Target (every join request leaves within {TARGET_DELAY_S:g} s of its webhook): "
        f"{verdict(delay_met)}** ({late} of {len(delays)} later; max "
        f"{max(delays) if delays else float('nan'):.3f} s). **Target (every webhook answered "
        f"within {TARGET_ANSWER_S:g} s): {verdict(answer_met)}** ({slow} slower, {len(failed)} "
        f"failed; max {max(answers) if answers else float('nan'):.2f} s).",
        "",
    ]
    if failed:
        lines += ["First failures: " + "; ".join(failed[:3]), ""]
    if plot_name:
        lines += [f"![Join delay and answer times under a slow ConvoAI]({plot_name})", ""]
    return "\n".join(lines)


def plot(rounds: list[Round], path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.2), dpi=110)
    series = (("join delay (to join request at ConvoAI)", [d for r in rounds for d in r.delays],
               "tab:red", "-"),
              ("answer, caller joins", [a for r in rounds for a in r.join_answers], "tab:blue",
               "--"),
              ("answer, caller leaves", [a for r in rounds for a in r.leave_answers], "tab:green",
               ":"))
    for label, values, colour, style in series:
        if not values:
            continue
        xs = sorted(values)
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        ax.step(xs, ys, where="post", color=colour, linestyle=style,
                label=f"{label}: p50 {summary(xs)['p50']:.3f} s, max {xs[-1]:.3f} s")
    ax.axvline(TARGET_DELAY_S, color="tab:red", linewidth=0.8, alpha=0.5)
    ax.text(TARGET_DELAY_S, 0.02, f" join target {TARGET_DELAY_S:g} s", color="tab:red",
            fontsize=8)
    ax.axvline(TARGET_ANSWER_S, color="tab:blue", linewidth=0.8, alpha=0.5)
    ax.text(TARGET_ANSWER_S, 0.02, f" answer target {TARGET_ANSWER_S:g} s", color="tab:blue",
            fontsize=8, ha="right")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlim(0, TARGET_ANSWER_S * 1.2)
    ax.set_xlabel("seconds from the client's POST (linear below 10 ms, log above)")
    ax.set_ylabel("fraction of calls (CDF)")
    ax.set_ylim(0, 1.005)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="center left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per round")
    parser.add_argument("--spread-s", type=float, default=1.0,
                        help="the joins (and then the leaves) arrive within this many seconds")
    parser.add_argument("--latency-ms", type=float, default=2000.0,
                        help="how long the fake ConvoAI takes per join and leave")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=20, help="sequential warm-up calls")
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--round-timeout", type=float, default=60.0,
                        help="give up on a round's joins or leaves after this many seconds")
    parser.add_argument("--timeout", type=float, default=480.0,
                        help="give up on the whole run after this many seconds")
    add_output_args(parser, PLOT_NAME)
    args = parser.parse_args(argv)
    if args.calls < 1 or args.rounds < 1 or args.spread_s <= 0 or args.processes < 1:
        parser.error("need --calls, --rounds, --processes >= 1 and --spread-s > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return bench_main("slow_upstream", lambda children, log_dir: run(args, children, log_dir),
                      keep_logs=args.keep_logs, timeout_s=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
