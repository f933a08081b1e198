"""A campaign's results as CSV, one row per attempt (a contact never dialled has one row with
no attempt), so a spreadsheet can count dispositions and retries. The admin API
(outbound/views.py) and the dashboard (pages/campaigns.py) send the same download."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from flask import Response

from web.downloads import attachment

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


def download(campaign_id: str, contacts: list[dict[str, Any]]) -> Response:
    """The results of a campaign's ``contacts`` (a status's) as a CSV download, streamed."""
    return attachment(result_rows(contacts), "text/csv; charset=utf-8", filename(campaign_id))
