"""A download: a body (text, or an iterator of text streamed as it is made) that browsers save
as ``filename`` instead of showing it. Shared by every export (calls, bookings, campaigns)."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Response


def attachment(body: str | Iterable[str], mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
