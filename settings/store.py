"""The store: which database, how long an operation may wait, migrations and retention."""

from __future__ import annotations

from dataclasses import dataclass

from settings.common import ROOT

DEFAULT_DATABASE_URL = f"sqlite:///{ROOT / 'instance' / 'phone_agent.db'}"
#: The URL schemes the store runs on: its call path talks to the driver connection itself
#: (store/statements.py), which it knows for Python's sqlite3 and psycopg 3.
DATABASE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg")


@dataclass(frozen=True)
class StoreSettings:
    """DATABASE_URL, STORE_TIMEOUT_S, MIGRATE_ON_START and how long records are kept."""

    database_url: str = DEFAULT_DATABASE_URL
    #: The longest one store operation waits for a lock (or for PostgreSQL to answer) before the
    #: request fails with 503; an NCS delivery is answered inside NCS's 10 s either way.
    store_timeout_s: float = 5.0
    migrate_on_start: bool = True
    notice_retention_hours: int = 48
    retention_days: int = 30

    def problems(self) -> list[str]:
        found: list[str] = []
        if "://" not in self.database_url:
            found.append("DATABASE_URL must be a database URL such as sqlite:///path or "
                         "postgresql://user@host/db")
        elif (scheme := self.database_url.split("://", 1)[0]) not in DATABASE_SCHEMES:
            found.append("DATABASE_URL must be a SQLite (sqlite:///path) or PostgreSQL "
                         f"(postgresql://user@host/db, through psycopg 3) URL, not {scheme}://")
        if not 1 <= self.store_timeout_s <= 8:
            found.append("STORE_TIMEOUT_S must be between 1 and 8 (NCS waits 10 s for an answer)")
        if self.notice_retention_hours < 1:
            found.append("NOTICE_RETENTION_HOURS must be at least 1")
        if self.retention_days < 0:
            found.append("RETENTION_DAYS must be 0 (keep records) or more")
        return found
