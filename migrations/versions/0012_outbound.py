"""outbound: campaigns, their contacts, dial attempts (campaigns' and scheduled calls') and the
do-not-call list

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200)),
        sa.Column("persona", sa.String(64), nullable=False),
        sa.Column("from_number", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "campaign_contacts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("timezone", sa.String(64)),
        sa.Column("variables", sa.Text),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_at", sa.Float),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("ix_campaign_contacts_due", "campaign_contacts",
                    ["campaign_id", "state", "next_at"])
    op.create_table(
        "dial_attempts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("campaign_id", sa.String(32), index=True),
        sa.Column("contact_id", sa.Integer, index=True),
        sa.Column("call_id", sa.String(32), index=True),
        sa.Column("key", sa.String(128), unique=True),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("claimed_at", sa.Float),
        sa.Column("holder", sa.String(128)),
        sa.Column("options", sa.Text),
        sa.Column("disposition", sa.String(16)),
        sa.Column("detail", sa.Text),
        sa.Column("settled_at", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "suppressions",
        sa.Column("number", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("call_id", sa.String(32)),
        sa.Column("note", sa.String(200)),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
    op.drop_table("dial_attempts")
    op.drop_index("ix_campaign_contacts_due", table_name="campaign_contacts")
    op.drop_table("campaign_contacts")
    op.drop_table("campaigns")
