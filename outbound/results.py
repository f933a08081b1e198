"""A campaign's results as CSV, one row per attempt (a contact never dialled has one row with
no attempt), so a spreadsheet can count dispositions and retries. Pure: the admin API
(outbound/views.py) and the dashboard's download (pages/campaigns.py) stream the same rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

FIELDS = ("number", "state", "timezone", "attempt", "at", "disposition", "call_id",
          "duration_s", "cause")


def result_rows(contacts: list[dict[str, Any]]) -> Iterator[str]:
    """The CSV text, a contact at a time (the header first), from a status's ``contacts``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, FIELDS)
    writer.writeheader()
    for contact in contacts:
        base = {"number": contact["number"], "state": contact["state"],
                "timezone": contact["timezone"] or ""}
        for n, attempt in enumerate(contact["attempts"] or [None], start=1):
            detail = (attempt or {}).get("detail") or {}
            writer.writerow({**base, "attempt": n if attempt else "",
                             "at": (attempt or {}).get("at") or "",
                             "disposition": (attempt or {}).get("disposition") or "",
                             "call_id": (attempt or {}).get("call_id") or "",
                             "duration_s": detail.get("duration_s", ""),
                             "cause": detail.get("cause", "")})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def filename(campaign_id: str) -> str:
    return f"campaign-{campaign_id}.csv"
