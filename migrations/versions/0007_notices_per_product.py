"""processed notices keyed by (product_id, notice_id)

Agora documents a noticeId as unique for its delivery, not across products, and its examples
show the same shape (``"2000001428:4330:107"``) for RTC and ConvoAI events. Keyed by notice_id
alone, a ConvoAI event could be dropped as a copy of an RTC event that happened to share its id,
or the reverse. The key becomes (product_id, notice_id).

On SQLite, which cannot change a primary key in place, the table is rebuilt (create, copy,
drop, rename) under the write lock; the notices of one retention period (NOTICE_RETENTION_HOURS)
copy in well under a second. PostgreSQL swaps the constraint, which holds back writes to
notices while the new key's index builds, as briefly.

Downgrading keeps one row per notice_id (the one received first): the old key cannot hold two,
and one is all the old code needs to treat that id as seen.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: PostgreSQL's name for the primary key that 0001 made.
PG_PRIMARY_KEY = "notices_pkey"
NEW_KEY = ("product_id", "notice_id")
OLD_KEY = ("notice_id",)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(NEW_KEY)
    else:
        op.drop_constraint(PG_PRIMARY_KEY, "notices", type_="primary")
        op.create_primary_key(PG_PRIMARY_KEY, "notices", list(NEW_KEY))


def downgrade() -> None:
    _keep_first_of_each_notice_id()
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(OLD_KEY)
    else:
        op.drop_constraint(PG_PRIMARY_KEY, "notices", type_="primary")
        op.create_primary_key(PG_PRIMARY_KEY, "notices", list(OLD_KEY))


def _keep_first_of_each_notice_id() -> None:
    op.execute("""
        DELETE FROM notices WHERE EXISTS (
            SELECT 1 FROM notices AS earlier
            WHERE earlier.notice_id = notices.notice_id
              AND (earlier.received_at < notices.received_at
                   OR (earlier.received_at = notices.received_at
                       AND earlier.product_id < notices.product_id)))""")


def _rebuild(key: tuple[str, ...]) -> None:
    """Recreate the SQLite table with ``key`` as its primary key (still WITHOUT ROWID, as 0006
    made it), keeping its rows and its index."""
    op.execute("ALTER TABLE notices RENAME TO notices_before_0007")
    op.execute(f"""
        CREATE TABLE notices (
            notice_id VARCHAR(128) NOT NULL,
            product_id INTEGER NOT NULL,
            event_type INTEGER NOT NULL,
            received_at FLOAT NOT NULL,
            PRIMARY KEY ({", ".join(key)})
        ) WITHOUT ROWID""")
    op.execute("""
        INSERT INTO notices (notice_id, product_id, event_type, received_at)
        SELECT notice_id, product_id, event_type, received_at FROM notices_before_0007""")
    # The index went with the old table under its name; it is made again once that is gone.
    op.execute("DROP TABLE notices_before_0007")
    op.create_index("ix_notices_received_at", "notices", ["received_at"])
