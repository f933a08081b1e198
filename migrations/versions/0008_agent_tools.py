"""agent tools: the MCP endpoint's per-call tokens, the tool-call ledger, tarot draws

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("call_id", sa.String(32), nullable=False, index=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "tool_calls",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("call_id", sa.String(32), nullable=False, index=True),
        sa.Column("tool", sa.String(64), nullable=False),
        sa.Column("once", sa.Boolean, nullable=False),
        sa.Column("arguments", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("holder", sa.String(64)),
        sa.Column("lease_until", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("result", sa.Text),
        sa.Column("outcome", sa.String(32)),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
    )
    op.create_table(
        "tarot_draws",
        sa.Column("call_id", sa.String(32), primary_key=True),
        sa.Column("card", sa.String(64), primary_key=True),
        sa.Column("reversed", sa.Boolean, nullable=False),
        sa.Column("drawn_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tarot_draws")
    op.drop_table("tool_calls")
    op.drop_table("call_tokens")
