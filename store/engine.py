"""Engines tuned for this workload, and the write gate that queues SQLite's writers.

SQLite runs in WAL mode with write transactions that take the lock up front; PostgreSQL with
pre-pinged pooled connections and session timeouts. Both wait at most about STORE_TIMEOUT_S.

The write gate: one SQLite write transaction at a time, handed over in turn rather than won by
polling.

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
import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

#: STORE_TIMEOUT_S's default: the longest an operation waits for a lock or for the database.
DEFAULT_STORE_TIMEOUT_S = 5.0
#: PostgreSQL's statement_timeout is the lock timeout plus this.
STATEMENT_TIMEOUT_MARGIN_MS = 1000

#: The page size of a SQLite file this store creates. Every row a call writes touches a leaf page
#: in each of about fifteen tables and indexes, and a commit appends every touched page to the
#: write-ahead log whole: 1 KiB pages (SQLite's default before 3.12) write a quarter of the bytes
#: of 4 KiB ones. Measured with bench/webhook_latency.py on this project's 2-core machine: commits
#: slower than 1 ms fell from about 2 % to about 0.5 % of calls, because the kernel had less to
#: write back. It applies to new files only: SQLite fixes a file's page size when it is created.
SQLITE_PAGE_SIZE = 1024


def make_engine(url: str, *, timeout_s: float = DEFAULT_STORE_TIMEOUT_S) -> Engine:
    """An engine tuned for this workload: SQLite in WAL mode with write transactions that take
    the lock up front (so two workers serialise instead of failing on upgrade), or PostgreSQL
    with pre-pinged pooled connections.

    No operation waits much longer than ``timeout_s`` for a lock held by someone else (SQLite's
    busy timeout; PostgreSQL's lock_timeout, plus a statement_timeout a little above it and a
    bounded connect): the driver then raises an OperationalError, which the store turns into
    StoreUnavailable, so a webhook answers 503 inside NCS's 10 s instead of hanging."""
    timeout_ms = max(1, round(timeout_s * 1000))
    if url.startswith("postgresql://"):
        # psycopg 3 whatever SQLAlchemy's default driver (2.0 defaults to psycopg2): the call
        # path runs on the driver connection itself (store/statements.py).
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite"):
        # Last in, first out: the connection just returned is the one whose page cache is
        # warm. A queue would rotate through the pool, and each connection would first re-read
        # the pages the others changed since it last ran (measured in the service under
        # bench/webhook_latency.py: about 50 us more per transaction).
        engine = sa.create_engine(
            url, connect_args={"timeout": timeout_s, "check_same_thread": False},
            pool_size=16, max_overflow=48, pool_use_lifo=True)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when transactions begin.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout={timeout_ms}")
            # Before WAL mode, which writes the file's header (an existing file ignores it).
            cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            _enter_wal(cursor, timeout_s)
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints run in the sweeper (Store.checkpoint); the automatic one would land on
            # whichever webhook commits when the log fills. This high limit is only a backstop
            # for processes without a sweeper.
            cursor.execute("PRAGMA wal_autocheckpoint=20000")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            readonly = conn.get_execution_options().get("readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        database = engine.url.database
        on_disk = bool(database) and database != ":memory:" and not database.startswith("file:")
        _WRITE_GATES[engine] = WriteGate(
            str(Path(database).with_suffix(".write.lock")) if on_disk else None, timeout_s)
        return engine
    # Session defaults sent with the connection itself (no extra round trip per checkout). The
    # statement timeout sits above the lock timeout so that waiting on a lock reports as such.
    options = (f"-c lock_timeout={timeout_ms} "
               f"-c statement_timeout={timeout_ms + STATEMENT_TIMEOUT_MARGIN_MS}")
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=40,
                            pool_recycle=1800,
                            connect_args={"options": options,
                                          "connect_timeout": max(2, math.ceil(timeout_s))})


#: The write gate of each SQLite engine make_engine made (see write_gate).
_WRITE_GATES: weakref.WeakKeyDictionary[Engine, WriteGate] = weakref.WeakKeyDictionary()


def write_gate(engine: Engine) -> WriteGate | None:
    """The write gate of a SQLite engine made by make_engine (None for any other engine)."""
    return _WRITE_GATES.get(engine)
#: How long _enter_wal sleeps between tries.
_WAL_RETRY_S = 0.002


def _enter_wal(cursor: Any, timeout_s: float) -> None:
    """Put the connection's file in WAL mode, waiting up to ``timeout_s`` for the lock it needs.

    A file still in its first (rollback-journal) mode is switched under an exclusive lock. When
    several workers open a brand-new file at the same moment, one of them holds a shared lock
    while another holds the reserved lock and waits for it; SQLite then answers "database is
    locked" at once instead of calling the busy handler, since waiting could deadlock. Trying
    again after the other has switched the file finds it in WAL already (CI saw a gunicorn
    worker fail to boot this way; four processes opening one new file hit it about once in six).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(_WAL_RETRY_S)


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
        # The gate lives as long as its engine (make_engine keeps it in a weak mapping).
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
