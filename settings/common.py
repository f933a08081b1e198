"""What several groups share: where the repository is, and what counts as an http(s) URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
#: Hosts for which plain http is acceptable in PUBLIC_URL (a tunnel or proxy on the same machine).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def is_http_url(value: str) -> bool:
    """Whether ``value`` is an absolute http(s) URL with a host."""
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
