"""calls, participants, processed notices and the call timeline

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("caller_uid", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("agent_name", sa.String(64), nullable=False, unique=True),
        sa.Column("agent_id", sa.String(64)),
        sa.Column("persona", sa.String(64)),
        sa.Column("join_seq", sa.BigInteger),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("agent_started_at", sa.Float),
        sa.Column("ended_at", sa.Float),
        sa.Column("end_reason", sa.String(64)),
        sa.Column("last_error", sa.String(500)),
        sa.Column("grace_until", sa.Float),
        sa.Column("retry_at", sa.Float),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_calls_channel", "calls", ["channel"])
    op.create_index("ix_calls_state", "calls", ["state"])
    op.create_index("ix_calls_agent_id", "calls", ["agent_id"])
    op.create_index("ix_calls_created_at", "calls", ["created_at"])
    op.create_table(
        "participants",
        sa.Column("channel", sa.String(128), primary_key=True),
        sa.Column("uid", sa.BigInteger, primary_key=True),
        sa.Column("last_seq", sa.BigInteger),
        sa.Column("present", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "notices",
        sa.Column("notice_id", sa.String(128), primary_key=True),
        sa.Column("product_id", sa.Integer, nullable=False),
        sa.Column("event_type", sa.Integer, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
    )
    op.create_index("ix_notices_received_at", "notices", ["received_at"])
    op.create_table(
        "call_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(32), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_call_events_call_id", "call_events", ["call_id"])


def downgrade() -> None:
    op.drop_table("call_events")
    op.drop_table("notices")
    op.drop_table("participants")
    op.drop_table("calls")
