"""Run every benchmark, one after another, each writing its own section of docs/performance.md.

    .venv/bin/python bench/run_all.py [--only burst,memory] [-- extra args for every one]

This is what `make bench` runs. Each benchmark is a child process in its own process group with
a time limit; on Ctrl-C, SIGTERM or the limit the whole group is stopped (the benchmarks stop
their own servers on SIGTERM). The exit status is 1 if any benchmark failed (a missed target is
not a failure: it is reported in the section).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ("webhook_latency", "burst", "slow_upstream", "memory")
LIMIT_S = 900.0


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the benchmark's group (it stops its servers), then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, 40), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_one(name: str, extra: list[str], limit_s: float) -> int:
    argv = [sys.executable, str(ROOT / "bench" / f"{name}.py"), *extra]
    sys.stdout.write(f"\n== {name}: {' '.join(argv[1:])}\n")
    sys.stdout.flush()
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=ROOT, start_new_session=True)
    try:
        status = proc.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        sys.stderr.write(f"run_all: {name} exceeded {limit_s:.0f} s; stopped\n")
        stop(proc)
        return 124
    except KeyboardInterrupt:
        stop(proc)
        raise
    sys.stdout.write(f"== {name}: exit {status} after {time.monotonic() - t0:.0f} s\n")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--limit", type=float, default=LIMIT_S,
                        help="seconds each benchmark may take")
    parser.add_argument("extra", nargs="*", help="passed to every benchmark (after --)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    failed = []
    try:
        for name in names:
            if run_one(name, args.extra, args.limit) != 0:
                failed.append(name)
    except KeyboardInterrupt:
        sys.stderr.write("run_all: interrupted\n")
        return 130
    if failed:
        sys.stderr.write(f"run_all: failed: {', '.join(failed)}\n")
        return 1
    sys.stdout.write("\nrun_all: every benchmark ran; see docs/performance.md\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
