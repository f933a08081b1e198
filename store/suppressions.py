"""The store's part for the do-not-call list (outbound/ checks it before every dial; the
``opt_out`` tool and the API write it): numbers in E.164 form, with where each came from."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.base import StoreBase, values_present
from store.schema import suppressions
from store.statements import dialect_insert


class SuppressionRecords(StoreBase):
    """The do-not-call list."""

    def add_suppression(self, number: str, *, source: str, call_id: str | None = None,
                        note: str | None = None) -> bool:
        """Put ``number`` (E.164) on the list; False when it was already there."""
        with self._write() as conn:
            return self._suppress(conn, number, source=source, call_id=call_id, note=note)

    def add_suppressions(self, numbers: Iterable[str], *, source: str) -> int:
        """Several numbers in one transaction (a CSV import); returns how many were new."""
        with self._write() as conn:
            return sum(self._suppress(conn, n, source=source) for n in numbers)

    def _suppress(self, conn: Connection, number: str, *, source: str,
                  call_id: str | None = None, note: str | None = None) -> bool:
        statement = dialect_insert(conn.dialect.name, suppressions).values(
            number=number, source=source, call_id=call_id, note=note, created_at=self.clock())
        return conn.execute(statement.on_conflict_do_nothing().returning(
            suppressions.c.number)).first() is not None

    def remove_suppression(self, number: str) -> bool:
        with self._write() as conn:
            return bool(conn.execute(suppressions.delete().where(
                suppressions.c.number == number)).rowcount)

    def get_suppression(self, number: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(sa.select(suppressions).where(
                suppressions.c.number == number)).first()
        return dict(row._mapping) if row else None

    def suppressed_numbers(self, numbers: Iterable[str]) -> set[str]:
        """Which of ``numbers`` are on the list."""
        with self._read() as conn:
            return values_present(conn, suppressions.c.number, numbers)

    def list_suppressions(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(
                sa.select(suppressions).order_by(suppressions.c.created_at.desc()))]

