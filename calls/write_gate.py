"""One SQLite write transaction at a time, handed over in turn rather than won by polling.

SQLite lets one writer in at a time. A connection that finds the write lock taken sleeps and
tries again, 1, 2, 5, 10 ... up to 100 ms apart (its busy handler), so under a burst the lock
often sits free while every waiter sleeps, and an unlucky waiter can lose for over a second
(measured with bench/burst.py: answer p99 about 600 ms, against 50-75 ms for the stateless
floor). The gate queues writers in front of the lock instead:

- threads of one process wait on a ``threading.Lock``, which wakes the next at once;
- processes sharing the file (gunicorn's workers) take turns with ``flock`` on a side file,
  ``<database>.write.lock``. Only the one thread per process that got through the thread lock
  polls it, and never sleeps more than 0.5 ms between tries.

Both waits end after the store's timeout (STORE_TIMEOUT_S) with :class:`WriteGateTimeout`, so a
webhook still answers 503 in time when a writer hangs. Writers that bypass the gate (another
program on the file, say) are still kept out by SQLite's own lock.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref
from collections.abc import Callable

#: The first and the longest pause between two tries at the side file's lock.
FIRST_PAUSE_S = 0.00005
LONGEST_PAUSE_S = 0.0005


class WriteGateTimeout(Exception):
    """The gate stayed closed for the whole timeout."""


class WriteGate:
    """The write gate of one SQLite database, for every thread of this process.

    ``path`` is the side file processes lock (None for an in-memory database, which no other
    process sees). The file is opened in the process that first uses the gate: an ``flock`` is
    shared by every process holding the same open file, so a gate inherited through ``fork``
    opens its own in the child."""

    def __init__(self, path: str | None, timeout_s: float) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._fd: int | None = None
        os.register_at_fork(after_in_child=_after_fork_of(weakref.ref(self)))

    def acquire(self) -> None:
        """Wait for the gate (raises WriteGateTimeout after ``timeout_s``)."""
        deadline = time.monotonic() + self.timeout_s
        if not self._lock.acquire(timeout=self.timeout_s):
            raise WriteGateTimeout(f"no write turn within {self.timeout_s:g} s")
        if self.path is None:
            return
        try:
            self._lock_file(deadline)
        except BaseException:
            self._lock.release()
            raise

    def release(self) -> None:
        """Let the next writer in. Only the holder calls it, exactly once per acquire."""
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._lock.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        # The gate lives as long as its engine (calls/store.py keeps it in a weak mapping).
        self.close()

    def _lock_file(self, deadline: float) -> None:
        if self._fd is None:
            assert self.path is not None
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        pause = FIRST_PAUSE_S
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WriteGateTimeout(
                        f"another process kept the write turn for {self.timeout_s:g} s") from None
            time.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE_S)

    def _after_fork(self) -> None:
        # The parent's thread lock may be held by a thread that does not exist here, and its
        # file is the parent's (closing this copy leaves the parent's lock alone).
        self._lock = threading.Lock()
        self.close()


def _after_fork_of(gate: weakref.ref[WriteGate]) -> Callable[[], None]:
    """os.register_at_fork's hook for ``gate``, without keeping the gate alive."""
    def hook() -> None:
        found = gate()
        if found is not None:
            found._after_fork()
    return hook
