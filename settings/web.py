"""The web side: who may use the admin API, where the service is reached, and request limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from settings.common import is_http_url


@dataclass(frozen=True)
class WebSettings:
    """ADMIN_TOKEN, CRON_SECRET, PUBLIC_URL, PORT, rate limits, CORS and proxies."""

    admin_token: str = field(default="", repr=False)
    cron_secret: str = field(default="", repr=False)
    public_url: str = ""
    #: The port `make run` and gunicorn.conf.py serve on: in sandbox mode without PUBLIC_URL,
    #: agents reach the tools endpoint at http://127.0.0.1:PORT/mcp.
    port: int = 8000
    rate_limit_per_minute: int = 30
    rate_limit_window_s: int = 60
    cors_origins: str = ""
    proxy_hops: int = 0

    def problems(self) -> list[str]:
        # PUBLIC_URL's https rule depends on the mode: config.Settings checks it.
        found: list[str] = []
        if self.public_url and not is_http_url(self.public_url):
            found.append("PUBLIC_URL must be an http(s) URL such as https://calls.example.com")
        if not 1 <= self.port <= 65535:
            found.append("PORT must be between 1 and 65535")
        if self.rate_limit_per_minute < 0:
            found.append("RATE_LIMIT_PER_MINUTE must be 0 (no limit) or more")
        if not 1 <= self.rate_limit_window_s <= 86400:
            found.append("RATE_LIMIT_WINDOW_S must be between 1 and 86400")
        if not 0 <= self.proxy_hops <= 5:
            found.append("PROXY_HOPS must be between 0 and 5")
        for origin in filter(None, (o.strip() for o in self.cors_origins.split(","))):
            if urlsplit(origin).scheme not in ("http", "https") or urlsplit(origin).path:
                found.append(f"CORS_ORIGINS: {origin!r} is not an origin such as "
                             "https://admin.example.com")
        return found
