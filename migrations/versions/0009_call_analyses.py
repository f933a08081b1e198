"""post-call analyses: one row per ended call (summary, structured data, success, model, tokens)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_analyses",
        sa.Column("call_id", sa.String(32), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, index=True),
        sa.Column("summary", sa.Text),
        sa.Column("data", sa.Text),
        sa.Column("success", sa.Boolean),
        sa.Column("model", sa.String(128)),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("last_error", sa.String(300)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("call_analyses")
