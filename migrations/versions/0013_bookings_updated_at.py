"""bookings: an index on updated_at, so the reminder planner's "did any booking change?" (the
latest updated_at, asked every dialer round on every worker) is one index read

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_bookings_updated_at", "bookings", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_bookings_updated_at", table_name="bookings")
