"""knowledge base: a persona's folder (its fingerprint) and its passages, full-text indexed

SQLite gets an FTS5 table with porter stemming over the passages (external content: the text
is stored once, in knowledge_chunks); PostgreSQL a GIN index on their English tsvector.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
# The bookings migration (0010) is written at the same time on another branch; the merge
# chains 0011 after it.
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "knowledge_sources",
        sa.Column("persona", sa.String(64), primary_key=True),
        sa.Column("folder", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("indexed_at", sa.Float, nullable=False),
    )
    op.create_table(
        "knowledge_chunks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("persona", sa.String(64), nullable=False, index=True),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("heading", sa.String(500), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE knowledge_fts USING fts5(heading, body, "
                   "content='knowledge_chunks', content_rowid='id', "
                   "tokenize='porter unicode61 remove_diacritics 2')")
    else:
        op.execute("CREATE INDEX ix_knowledge_fts ON knowledge_chunks USING gin "
                   "(to_tsvector('english', heading || ' ' || body))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE knowledge_fts")
    op.drop_table("knowledge_chunks")
    op.drop_table("knowledge_sources")
