"""partial indexes on calls.agent_id and calls.gateway_callid

A new call has neither id yet (and a call placed through NCS never gets a gateway id), so their
indexes held an entry for NULL that every new call's commit had to write: one page each on the
webhook's hot path. Lookups are always by equality, which a partial index on the non-NULL rows
still serves.

On PostgreSQL each index is rebuilt under a lock that holds back writes to calls while it builds
(a plain CREATE INDEX; CONCURRENTLY cannot run in the migration's transaction). That takes well
under STORE_TIMEOUT_S for the call records a retention period keeps; on a much larger table,
run `flask db upgrade` in a quiet hour.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = ("agent_id", "gateway_callid")


def upgrade() -> None:
    for column in COLUMNS:
        op.drop_index(f"ix_calls_{column}", table_name="calls")
        condition = sa.text(f"{column} IS NOT NULL")
        op.create_index(f"ix_calls_{column}", "calls", [column],
                        sqlite_where=condition, postgresql_where=condition)


def downgrade() -> None:
    for column in COLUMNS:
        op.drop_index(f"ix_calls_{column}", table_name="calls")
        op.create_index(f"ix_calls_{column}", "calls", [column])
