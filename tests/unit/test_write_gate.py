"""The SQLite write gate: one writer at a time across threads and processes, bounded waits."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from calls import migrate
from store import Store, StoreUnavailable, make_engine
from store.engine import WriteGate, WriteGateTimeout


def _hold_and_count(gate: WriteGate, inside: list[int], most: list[int], rounds: int) -> None:
    for _ in range(rounds):
        gate.acquire()
        try:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            time.sleep(0.0002)
            inside[0] -= 1
        finally:
            gate.release()


def test_threads_of_one_process_write_one_at_a_time(tmp_path: Path) -> None:
    gate = WriteGate(str(tmp_path / "db.write.lock"), timeout_s=10)
    inside, most = [0], [0]
    threads = [threading.Thread(target=_hold_and_count, args=(gate, inside, most, 50))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == [1]
    assert inside == [0]


def _process_writer(path: str, ledger: str, rounds: int, start: Any) -> None:
    gate = WriteGate(path, timeout_s=10)
    start.wait(60)  # all at once, whenever each interpreter got here
    for _ in range(rounds):
        gate.acquire()
        try:
            # Append "in", pause, append "out": with one writer at a time the file alternates.
            with open(ledger, "a") as f:
                f.write("in\n")
            time.sleep(0.0002)
            with open(ledger, "a") as f:
                f.write("out\n")
        finally:
            gate.release()


def test_processes_sharing_a_file_write_one_at_a_time(tmp_path: Path) -> None:
    # Fresh interpreters: a fork of this multi-threaded test process could inherit a lock that
    # another of its threads holds, and hang.
    context = multiprocessing.get_context("spawn")
    ledger, start = tmp_path / "ledger", context.Barrier(3)
    processes = [context.Process(target=_process_writer,
                                 args=(str(tmp_path / "db.write.lock"), str(ledger), 100, start),
                                 daemon=True)
                 for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    lines = ledger.read_text().split()
    assert len(lines) == 3 * 100 * 2
    assert lines == ["in", "out"] * (3 * 100)


def test_a_gate_held_elsewhere_times_out_instead_of_hanging(tmp_path: Path) -> None:
    path = str(tmp_path / "db.write.lock")
    # Two gates on one file behave as two processes: flock excludes separate opens of it.
    holder, waiter = WriteGate(path, timeout_s=10), WriteGate(path, timeout_s=0.2)
    holder.acquire()
    started = time.monotonic()
    with pytest.raises(WriteGateTimeout):
        waiter.acquire()
    assert time.monotonic() - started >= 0.2
    # The waiter's own thread lock was given back: once the holder is done it gets in.
    holder.release()
    waiter.acquire()
    waiter.release()


def test_a_thread_waiting_behind_a_stuck_thread_times_out(tmp_path: Path) -> None:
    gate = WriteGate(str(tmp_path / "db.write.lock"), timeout_s=0.1)
    gate.acquire()
    failed: list[BaseException] = []

    def wait() -> None:
        try:
            gate.acquire()
        except WriteGateTimeout as exc:
            failed.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    thread.join(5)
    assert len(failed) == 1
    gate.release()


def _child_tries(gate: WriteGate, released: Any, result: Any) -> None:
    # The gate came through fork held: the child must wait for the parent's turn to end, not
    # walk in on the parent's file lock, nor stay locked out by a thread lock copied held.
    for _ in range(2):
        try:
            gate.acquire()
            result.put("entered")
            gate.release()
        except WriteGateTimeout:
            result.put("timed out")
        released.wait(10)


def _fork_with_the_gate_held(path: str, out: Any) -> None:
    # Runs in a fresh, single-threaded interpreter, where forking is safe.
    context = multiprocessing.get_context("fork")
    gate = WriteGate(path, timeout_s=0.3)
    released, result = context.Event(), context.Queue()
    gate.acquire()  # opens the file, then holds both locks across the fork
    child = context.Process(target=_child_tries, args=(gate, released, result), daemon=True)
    child.start()
    first = result.get(timeout=10)
    gate.release()
    released.set()
    second = result.get(timeout=10)
    child.join(10)
    out.put((first, second, child.exitcode))


def test_a_gate_inherited_through_fork_is_the_childs_own(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    # Not a daemon: daemons may not start processes of their own.
    helper = context.Process(target=_fork_with_the_gate_held,
                             args=(str(tmp_path / "db.write.lock"), out))
    helper.start()
    try:
        assert out.get(timeout=60) == ("timed out", "entered", 0)
    finally:
        helper.join(10)
        if helper.exitcode is None:
            helper.kill()


def test_a_store_write_answers_unavailable_while_another_process_holds_the_turn(
        tmp_path: Path) -> None:
    database = tmp_path / "calls.db"
    engine = make_engine(f"sqlite:///{database}", timeout_s=0.2)
    migrate.upgrade(engine)
    store = Store(engine)
    other = WriteGate(str(database.with_suffix(".write.lock")), timeout_s=1)
    other.acquire()
    try:
        with pytest.raises(StoreUnavailable):
            store.take_lease("test", "me", 10)
    finally:
        other.release()
    assert store.take_lease("test", "me", 10)
    engine.dispose()
