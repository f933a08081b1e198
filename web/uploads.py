"""What a multipart form uploaded, as text (a CSV of contacts or numbers)."""

from __future__ import annotations

from werkzeug.datastructures import FileStorage


def uploaded_text(upload: FileStorage | None) -> str | None:
    """The file's text (UTF-8, with or without a byte-order mark; undecodable bytes replaced
    so the CSV reader can name the line), or None when no file was chosen."""
    if upload is None or not upload.filename:
        return None
    return upload.read().decode("utf-8-sig", errors="replace")
