"""The store's part for the rate limiter's counters (web/security.py decides what they mean):
one row per key, the hits of its current fixed window. Every worker and instance counts in the
same row, so a limit holds across all of them.

Counting is a write like any other: on SQLite it takes the store's write gate, so it waits its
turn behind the webhooks' transactions instead of failing on SQLite's busy lock. Any failure
here is StoreUnavailable: the limiter then lets the request through (a counter is never worth
an error answer)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from store.base import StoreBase, StoreUnavailable, short_error
from store.schema import rate_limits
from store.statements import dialect_insert


class RateCounters(StoreBase):
    """Hits per key in fixed windows."""

    def count_hit(self, key: str, window_start: float) -> tuple[int, float]:
        """Count one hit of ``key`` in the window starting at ``window_start``; returns the
        window's hits and its start. A newer window restarts the count; an older one (from an
        instance whose clock lags) adds to the current count instead of winding it back."""
        statement = dialect_insert(self.dialect, rate_limits).values(
            key=key, window_start=window_start, hits=1)
        newer = statement.excluded.window_start > rate_limits.c.window_start
        statement = statement.on_conflict_do_update(
            index_elements=[rate_limits.c.key],
            set_={"hits": sa.case((newer, 1), else_=rate_limits.c.hits + 1),
                  "window_start": sa.case((newer, statement.excluded.window_start),
                                          else_=rate_limits.c.window_start)},
        ).returning(rate_limits.c.hits, rate_limits.c.window_start)
        with self._counters(), self._write() as conn:
            hits, started = conn.execute(statement).one()
        return int(hits), float(started)

    def counted_hits(self, key: str) -> tuple[int, float] | None:
        """The hits of ``key`` and the start of their window, without counting one."""
        query = sa.select(rate_limits.c.hits, rate_limits.c.window_start).where(
            rate_limits.c.key == key)
        with self._counters(), self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else (int(row.hits), float(row.window_start))

    def prune_rate_counters(self, before: float) -> None:
        """Drop the counters of windows that started before ``before``."""
        with self._counters(), self._write() as conn:
            conn.execute(rate_limits.delete().where(rate_limits.c.window_start < before))

    @contextmanager
    def _counters(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.SQLAlchemyError as exc:  # a missing table, say: still not worth a 5xx
            raise StoreUnavailable(short_error(exc)) from exc
