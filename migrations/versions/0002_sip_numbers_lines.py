"""SIP: reservations (numbers), lines, and the phone side of a call

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("direction", sa.String(16)))
        batch.add_column(sa.Column("caller_number", sa.String(64)))
        batch.add_column(sa.Column("called_number", sa.String(64)))
        batch.add_column(sa.Column("gateway_callid", sa.String(128)))
        batch.add_column(sa.Column("variables", sa.Text))
        batch.add_column(sa.Column("caller_joined_at", sa.Float))
    op.create_index("ix_calls_gateway_callid", "calls", ["gateway_callid"])
    op.create_table(
        "numbers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("did", sa.String(32), nullable=False),
        sa.Column("display", sa.String(64)),
        sa.Column("pin", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("region", sa.String(16), nullable=False),
        sa.Column("persona", sa.String(64)),
        sa.Column("label", sa.String(200)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("released_at", sa.Float),
    )
    op.create_index("ix_numbers_channel", "numbers", ["channel"])
    op.create_table(
        "lines",
        sa.Column("number", sa.String(32), primary_key=True),
        sa.Column("persona", sa.String(64)),
        sa.Column("label", sa.String(200)),
        sa.Column("variables", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lines")
    op.drop_table("numbers")
    op.drop_index("ix_calls_gateway_callid", "calls")
    with op.batch_alter_table("calls") as batch:
        for column in ("caller_joined_at", "variables", "gateway_callid", "called_number",
                       "caller_number", "direction"):
            batch.drop_column(column)
