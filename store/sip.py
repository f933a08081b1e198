"""SIP lines (your numbers, routed by the ring-time lookup) and number reservations."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from store.base import StoreBase
from store.schema import lines, numbers


class SipRecords(StoreBase):
    """Lines and reservations."""

    # -- reservations (numbers) ----------------------------------------------------------------

    def add_reservation(self, values: dict[str, Any]) -> dict[str, Any]:
        with self._write() as conn:
            conn.execute(numbers.insert().values(**values))
        return dict(values)

    def list_reservations(self, *, include_released: bool = False) -> list[dict[str, Any]]:
        query = sa.select(numbers).order_by(numbers.c.created_at.desc())
        if not include_released:
            query = query.where(numbers.c.released_at.is_(None))
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(query).all()]

    def get_reservation(self, reservation_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(sa.select(numbers).where(numbers.c.id == reservation_id)).first()
        return dict(row._mapping) if row else None

    def release_reservation(self, reservation_id: str) -> bool:
        with self._write() as conn:
            return bool(conn.execute(numbers.update().where(
                numbers.c.id == reservation_id, numbers.c.released_at.is_(None)).values(
                released_at=self.clock())).rowcount)

    # -- lines ---------------------------------------------------------------------------------

    def put_line(self, number: str, *, persona: str | None, label: str | None,
                 variables: dict[str, str] | None,
                 pins: dict[str, str] | None = None) -> dict[str, Any]:
        values = {"number": number, "persona": persona, "label": label,
                  "variables": json.dumps(variables or {}, separators=(",", ":")),
                  "pins": json.dumps(pins or {}, separators=(",", ":")),
                  "created_at": self.clock()}
        with self._write() as conn:
            conn.execute(lines.delete().where(lines.c.number == number))
            conn.execute(lines.insert().values(**values))
        return _line(values)

    def get_line(self, number: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(sa.select(lines).where(lines.c.number == number)).first()
        return _line(row._mapping) if row else None

    def list_lines(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(sa.select(lines).order_by(lines.c.number)).all()
        return [_line(r._mapping) for r in rows]

    def remove_line(self, number: str) -> bool:
        with self._write() as conn:
            return bool(conn.execute(lines.delete().where(lines.c.number == number)).rowcount)


def _line(mapping: Any) -> dict[str, Any]:
    return {"number": mapping["number"], "persona": mapping["persona"],
            "label": mapping["label"], "variables": json.loads(mapping["variables"] or "{}"),
            "pins": json.loads(mapping.get("pins") or "{}")}
