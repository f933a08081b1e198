"""fewer pages in the commit of a caller's join

A join's commit writes every page it touched to the write-ahead log, and on the webhook's hot path
each page is time before ConvoAI hears of the call. This revision takes out the pages that carry
nothing the service needs:

- ``notices`` and ``participants`` are keyed tables (SQLite's WITHOUT ROWID): a row lives in its
  primary key's B-tree instead of a rowid table plus a separate index of its key.
- ``calls.agent_name`` loses its unique index. The name is the service's prefix and the call's
  id, so the primary key already makes it unique, and nothing looks calls up by name.
- ``calls.join_notice_id`` holds the notice of the join that began the call. The timeline's
  ``caller_joined`` entry is read from the call row (join_seq, join_notice_id) instead of being a
  row of its own in call_events. Calls recorded before this revision keep their stored entry.

PostgreSQL has no rowid tables; there only the unique constraint and the new column change.

On SQLite the three tables are rebuilt (create, copy, drop, rename), which holds the write lock
for as long as the copy takes: well under a second for the call records a retention period
keeps. Run it in a quiet hour on a much larger file.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

import re
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: PostgreSQL's name for the constraint that ``unique=True`` made in 0001.
PG_UNIQUE_NAME = "calls_agent_name_key"
_UNIQUE_CLAUSE = re.compile(r",\s*UNIQUE \(agent_name\)")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild("notices", _without_rowid)
        _rebuild("participants", _without_rowid)
        _rebuild("calls", _drop_unique_name)
    else:
        op.drop_constraint(PG_UNIQUE_NAME, "calls", type_="unique")
    op.add_column("calls", sa.Column("join_notice_id", sa.String(128)))


def downgrade() -> None:
    op.drop_column("calls", "join_notice_id")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild("calls", _add_unique_name)
        _rebuild("participants", _with_rowid)
        _rebuild("notices", _with_rowid)
    else:
        op.create_unique_constraint(PG_UNIQUE_NAME, "calls", ["agent_name"])


def _rebuild(table: str, edit: Callable[[str], str]) -> None:
    """Recreate a SQLite table from its own CREATE statement as ``edit`` changes it, keeping
    its rows and its indexes (partial ones included, as their stored SQL says)."""
    conn = op.get_bind()
    create = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).scalar_one()
    indexes = [row[0] for row in conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
        "AND sql IS NOT NULL", (table,))]
    edited = edit(create)
    if edited == create:
        raise RuntimeError(f"0006: the schema of {table} is not the one this revision expects")
    old = f"{table}_before_0006"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    op.execute(edited)
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")
    op.execute(f"DROP TABLE {old}")
    for index in indexes:
        op.execute(index)


def _without_rowid(create: str) -> str:
    return create if create.rstrip().endswith("WITHOUT ROWID") else f"{create} WITHOUT ROWID"


def _with_rowid(create: str) -> str:
    return re.sub(r"\s*WITHOUT ROWID\s*$", "", create)


def _drop_unique_name(create: str) -> str:
    return _UNIQUE_CLAUSE.sub("", create, count=1)


def _add_unique_name(create: str) -> str:
    if _UNIQUE_CLAUSE.search(create):
        return create
    body, close = create.rstrip().rsplit(")", 1)
    return f"{body}, \n\tUNIQUE (agent_name)\n){close}"
