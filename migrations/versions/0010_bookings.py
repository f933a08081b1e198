"""bookings: every appointment agents booked, and one lock row per persona's diary

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bookings",
        sa.Column("reference", sa.String(16), primary_key=True),
        sa.Column("persona", sa.String(64), nullable=False),
        sa.Column("service", sa.String(48), nullable=False),
        sa.Column("start_at", sa.Float, nullable=False),
        sa.Column("end_at", sa.Float, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(40)),
        sa.Column("call_id", sa.String(32)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_bookings_persona_start", "bookings", ["persona", "start_at"])
    op.create_index("ix_bookings_start_at", "bookings", ["start_at"])
    op.create_index("ix_bookings_phone", "bookings", ["phone"])
    op.create_table(
        "booking_locks",
        sa.Column("persona", sa.String(64), primary_key=True),
        sa.Column("taken_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("booking_locks")
    op.drop_index("ix_bookings_phone", table_name="bookings")
    op.drop_index("ix_bookings_start_at", table_name="bookings")
    op.drop_index("ix_bookings_persona_start", table_name="bookings")
    op.drop_table("bookings")
