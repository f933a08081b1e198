"""Memory: how much each gunicorn worker's resident memory grows over 10,000 calls.

    .venv/bin/python bench/memory.py [--calls 10000] [--batch 500] [--out FILE.md]

A fake ConvoAI (bench/fake_convoai.py, answering at once) and the service under the production
gunicorn configuration, on 127.0.0.1. Calls are sent in batches shaped like the burst's
(bench/plan.py: a join and a leave per call, 20 % of events delivered twice, 10 % of calls
reordered) over keep-alive connections from several client processes (bench/loadgen.py). Each
worker's VmRSS (/proc/<pid>/status; the workers are the children of gunicorn's arbiter) is read
at start, after a warm-up batch ("before"), after every batch, and after a short idle at the end.

The result is the "## Memory" section of --out (other sections are kept) with a plot beside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import zlib
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
    header_lines,
    load_average,
    machine_line,
    now_utc,
    plot_path,
    pyplot,
    say,
    start_profiler,
    stop_profilers,
    verdict,
    vm_rss_kib,
    write_section,
)
from bench.plan import assess, make_plan  # noqa: E402

SECTION = "## Memory"
PLOT_NAME = "memory.png"
TARGET_GROWTH_MIB = 10.0


@dataclass
class Series:
    pids: list[int]
    calls: list[int] = field(default_factory=list)  # measured calls done at each sample
    rss: dict[int, list[int]] = field(default_factory=dict)  # KiB per worker per sample
    start: dict[int, int] = field(default_factory=dict)  # before the warm-up
    idle: dict[int, int] = field(default_factory=dict)  # after the idle at the end
    threads: dict[int, int] = field(default_factory=dict)  # at the end
    db_files: dict[int, int] = field(default_factory=dict)  # open SQLite connections, at the end
    failed: int = 0
    duplicate_agents: int = 0
    orphans: int = 0
    wall_s: float = 0.0

    def sample(self, calls: int) -> dict[int, int]:
        now = {}
        for pid in self.pids:
            kib = vm_rss_kib(pid)
            if kib is None:
                raise BenchError(f"worker {pid} is gone (did it crash or get recycled?)")
            now[pid] = kib
            self.rss.setdefault(pid, []).append(kib)
        self.calls.append(calls)
        return now

    def growth_mib(self, pid: int) -> float:
        return (self.rss[pid][-1] - self.rss[pid][0]) / 1024


def batch(args: argparse.Namespace, stack: Stack, server: Server, label: str,
          calls: int) -> tuple[int, int, int]:
    """Send one batch; returns (failed POSTs, duplicate agents, orphans)."""
    plan = make_plan("127.0.0.1", server.port, calls=calls, streams=args.connections,
                     dup_pct=args.dup_pct, reorder_pct=args.reorder_pct, label=label,
                     seed=zlib.crc32(label.encode()))
    stack.fake.reset()
    run = loadgen.run("127.0.0.1", server.port, plan.streams, processes=args.processes,
                      timeout_s=args.batch_timeout)
    failed = sum(1 for r in run.results.values() if r.status != 200) \
        + plan.sends - len(run.results)
    stack.fake.settle(quiet_s=0.5, limit_s=30)
    outcome = assess(plan, stack.fake.record())
    return failed, outcome.duplicate_agents, outcome.orphans


def run(args: argparse.Namespace, children: list[Child], log_dir: Path) -> None:
    started = now_utc()
    t_start = time.monotonic()
    load_before = load_average()
    stack = Stack(children, log_dir, latency_ms=0, database_url=args.database_url)
    service = stack.gunicorn("service", args.service_app)
    stack.wait_all(service)
    series = Series(service.child.worker_pids())
    if len(series.pids) < 1:
        raise BenchError("no gunicorn worker found")
    say(f"service workers {series.pids}; logs in {log_dir}")
    series.start = {pid: vm_rss_kib(pid) or 0 for pid in series.pids}
    if args.warmup:
        batch(args, stack, service, "warm", args.warmup)
    series.sample(0)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        children.append(start_profiler(service.child, args.profile / "service.txt", log_dir,
                                       gil=args.profile_gil))
    done = 0
    t0 = time.monotonic()
    while done < args.calls:
        n = min(args.batch, args.calls - done)
        failed, dups, orphans = batch(args, stack, service, f"b{done}", n)
        series.failed += failed
        series.duplicate_agents += dups
        series.orphans += orphans
        done += n
        now = series.sample(done)
        say(f"{done:6d} calls: RSS " + ", ".join(f"{pid} {kib / 1024:.1f} MiB"
                                                 for pid, kib in now.items())
            + f" ({time.monotonic() - t0:.0f} s)")
    series.wall_s = time.monotonic() - t0
    if args.profile:
        stop_profilers(children)
    time.sleep(args.idle_s)
    series.idle = {pid: vm_rss_kib(pid) or 0 for pid in series.pids}
    db_path = stack.database_url.split("sqlite:///", 1)[1] if \
        stack.database_url.startswith("sqlite:///") else None
    for pid in series.pids:
        series.threads[pid] = thread_count(pid)
        series.db_files[pid] = open_files(pid, db_path) if db_path else 0
    load_after = load_average()

    png = plot_path(args, PLOT_NAME)
    plot_name = os.path.relpath(png, args.out.parent) if not args.no_write else None
    section = render(args, series, stack, (load_before, load_after), plot_name, started,
                     time.monotonic() - t_start)
    if args.no_write:
        say(section)
        return
    plot(series, png, f"Worker RSS over {args.calls:,} calls, {started:%Y-%m-%d} "
                      f"({stack.conf['workers']} gthread workers, "
                      f"{stack.database.split(' (')[0]})")
    write_section(args.out, section)
    say(section)
    say(f"wrote {args.out} and {png}")


def thread_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def open_files(pid: int, path: str) -> int:
    """How many of the process's descriptors are open on ``path`` (one per SQLite connection)."""
    target = os.path.realpath(path)
    count = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                count += 1
        except OSError:
            continue
    return count


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}"


def render(args: argparse.Namespace, series: Series, stack: Stack, load: tuple[str, str],
           plot_name: str | None, started: dt.datetime, duration_s: float) -> str:
    growths = {pid: series.growth_mib(pid) for pid in series.pids}
    met = all(g < TARGET_GROWTH_MIB for g in growths.values())
    lines = [
        *header_lines(SECTION, "memory.py", started, duration_s),
        f"{args.calls:,} calls in batches of {args.batch} shaped like the burst's (a caller join "
        f"and a leave per call, {args.dup_pct:g} % of the events delivered twice, "
        f"{args.reorder_pct:g} % of the calls with the leave first; `bench/plan.py`), sent over "
        f"{args.connections} keep-alive connections from {args.processes} client processes "
        "(`bench/loadgen.py`) to the service, with a fake ConvoAI answering at once. Each "
        "worker's VmRSS (`/proc/<pid>/status`; the workers are the arbiter's children) is read "
        f"at start, after a warm-up batch of {args.warmup} calls (*before*), after every "
        f"batch, and after {args.idle_s:g} s idle at the end. *Growth* = after the last batch "
        "- before.",
        "",
        machine_line(load),
        stack.config_line(args.service_app, 0),
        f"- {args.calls:,} calls took {series.wall_s:.0f} s. Non-200 answers: {series.failed}; "
        f"duplicate agents: {series.duplicate_agents}; orphans: {series.orphans}.",
        "",
        "| worker | start MiB | before MiB | after MiB | after idle MiB | growth MiB | "
        "threads at end | SQLite connections at end |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, pid in enumerate(series.pids):
        lines.append(f"| {i + 1} (pid {pid}) | {mib(series.start[pid])} | "
                     f"{mib(series.rss[pid][0])} | {mib(series.rss[pid][-1])} | "
                     f"{mib(series.idle[pid])} | {growths[pid]:+.1f} | "
                     f"{series.threads[pid]} | {series.db_files[pid] or '-'} |")
    worst = max(growths.values())
    lines += [
        "",
        f"**Target (each worker grows by under {TARGET_GROWTH_MIB:g} MiB over "
        f"{args.calls:,} calls): {verdict(met)}** (largest growth {worst:+.1f} MiB).",
        "",
    ]
    if plot_name:
        lines += [f"![Worker RSS over calls]({plot_name})", ""]
    return "\n".join(lines)


def plot(series: Series, path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.2), dpi=110)
    for i, pid in enumerate(series.pids):
        ys = [kib / 1024 for kib in series.rss[pid]]
        ax.plot(series.calls, ys, marker="o", markersize=3,
                label=f"worker {i + 1} (pid {pid}): {ys[0]:.1f} -> {ys[-1]:.1f} MiB")
        ax.axhline(ys[0] + TARGET_GROWTH_MIB, color=ax.lines[-1].get_color(), linewidth=0.7,
                   linestyle=":")
    ax.plot([], [], color="grey", linestyle=":", label=f"before + {TARGET_GROWTH_MIB:g} MiB "
                                                       "(target)")
    ax.set_xlabel("calls since the warm-up")
    ax.set_ylabel("VmRSS (MiB)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.25)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10000, help="measured calls")
    parser.add_argument("--batch", type=int, default=500, help="calls between RSS samples")
    parser.add_argument("--warmup", type=int, default=500, help="calls before 'before'")
    parser.add_argument("--dup-pct", type=float, default=20.0)
    parser.add_argument("--reorder-pct", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--connections", type=int, default=16,
                        help="keep-alive connections, over all client processes")
    parser.add_argument("--idle-s", type=float, default=5.0,
                        help="idle time before the last RSS reading")
    parser.add_argument("--batch-timeout", type=float, default=120.0)
    parser.add_argument("--timeout", type=float, default=480.0,
                        help="give up on the whole run after this many seconds")
    add_output_args(parser, PLOT_NAME)
    args = parser.parse_args(argv)
    if args.calls < 1 or args.batch < 10 or args.warmup < 0 or \
            args.connections < args.processes:
        parser.error("need --calls >= 1, --batch >= 10, --warmup >= 0, "
                     "--connections >= --processes")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return bench_main("memory", lambda children, log_dir: run(args, children, log_dir),
                      keep_logs=args.keep_logs, timeout_s=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
