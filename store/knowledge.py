"""The store's part for knowledge bases: each persona's passages, replaced whole when its folder
changes, and searched with the database's own full-text search (SQLite FTS5 with porter
stemming; PostgreSQL's English ``tsvector`` behind a GIN index, ranked with ``ts_rank``).

Search takes terms, never query syntax: each term is quoted for FTS5 or passed through
``plainto_tsquery``, and the terms are OR-ed, so the passages matching most of them rank first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.base import StoreBase
from store.schema import KNOWLEDGE_TSVECTOR, knowledge_chunks, knowledge_sources
from store.statements import dialect_insert

#: At most this many terms of a question are searched for (the rest are ignored).
MAX_TERMS = 16


class KnowledgeRecords(StoreBase):
    def knowledge_source(self, persona: str) -> dict[str, Any] | None:
        """The persona's folder as last indexed (``folder``, ``fingerprint``, ``chunks``,
        ``indexed_at``), or None if it never was."""
        with self._read() as conn:
            row = conn.execute(sa.select(knowledge_sources).where(
                knowledge_sources.c.persona == persona)).first()
        return None if row is None else dict(row._mapping)

    def replace_knowledge(self, persona: str, *, folder: str, fingerprint: str,
                          chunks: Sequence[Mapping[str, Any]], force: bool = False) -> bool:
        """Make ``chunks`` (``source``, ``heading``, ``body``) the persona's passages, unless
        they are already those of ``fingerprint`` (and not ``force``). The persona's source row
        is locked first, so workers starting together index a folder once, never twice over.
        Whether anything was written."""
        sqlite = self.dialect == "sqlite"
        with self._write() as conn:
            conn.execute(dialect_insert(self.dialect, knowledge_sources).values(
                persona=persona, folder=folder, fingerprint="", chunks=0,
                indexed_at=0.0).on_conflict_do_nothing())
            current = conn.execute(sa.select(knowledge_sources.c.fingerprint).where(
                knowledge_sources.c.persona == persona).with_for_update()).scalar_one()
            if current == fingerprint and not force:
                return False
            self._forget_chunks(conn, persona)
            for position, chunk in enumerate(chunks):
                row = {"persona": persona, "source": chunk["source"][:500],
                       "heading": chunk["heading"][:500], "body": chunk["body"],
                       "position": position}
                chunk_id = conn.execute(knowledge_chunks.insert().values(**row)
                                        .returning(knowledge_chunks.c.id)).scalar_one()
                if sqlite:
                    conn.execute(sa.text(
                        "INSERT INTO knowledge_fts (rowid, heading, body) "
                        "VALUES (:id, :heading, :body)"), {"id": chunk_id, **row})
            conn.execute(knowledge_sources.update().where(
                knowledge_sources.c.persona == persona).values(
                folder=folder, fingerprint=fingerprint, chunks=len(chunks),
                indexed_at=self.clock()))
        return True

    def search_knowledge(self, persona: str, terms: Sequence[str],
                         limit: int = 3) -> list[dict[str, Any]]:
        """The persona's passages matching any of ``terms`` (plain words), best first:
        ``{"text", "source", "heading"}``."""
        terms = [t for t in terms if t][:MAX_TERMS]
        if not terms:
            return []
        query, params = self.knowledge_query(persona, terms, limit)
        with self._read() as conn:
            rows = conn.execute(query, params).all()
        return [{"text": r.body, "source": r.source, "heading": r.heading} for r in rows]

    def knowledge_query(self, persona: str, terms: Sequence[str],
                        limit: int) -> tuple[sa.TextClause, dict[str, Any]]:
        """The search's statement for this database, and its parameters."""
        params: dict[str, Any] = {"persona": persona, "limit": limit}
        if self.dialect == "sqlite":
            # Each term a quoted FTS5 string ("" inside it is a literal quote), so nothing the
            # caller said is read as an operator, a column filter or a prefix.
            params["match"] = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
            return sa.text(
                "SELECT c.body, c.source, c.heading FROM knowledge_fts "
                "JOIN knowledge_chunks AS c ON c.id = knowledge_fts.rowid "
                "WHERE knowledge_fts MATCH :match AND c.persona = :persona "
                "ORDER BY bm25(knowledge_fts, 2.0, 1.0), c.position LIMIT :limit"), params
        # plainto_tsquery reads its text as plain words, whatever it holds; || ORs them.
        params.update({f"t{n}": term for n, term in enumerate(terms)})
        tsquery = " || ".join(f"plainto_tsquery('english', :t{n})" for n in range(len(terms)))
        return sa.text(
            f"SELECT body, source, heading FROM knowledge_chunks, "
            f"(SELECT {tsquery} AS query) AS q "
            f"WHERE persona = :persona AND {KNOWLEDGE_TSVECTOR} @@ q.query "
            f"ORDER BY ts_rank({KNOWLEDGE_TSVECTOR}, q.query) DESC, position "
            "LIMIT :limit"), params

    def knowledge_personas(self) -> dict[str, int]:
        """Every persona with indexed knowledge, and its number of passages."""
        with self._read() as conn:
            rows = conn.execute(sa.select(knowledge_sources.c.persona,
                                          knowledge_sources.c.chunks)).all()
        return {r.persona: r.chunks for r in rows}

    def drop_knowledge(self, persona: str) -> None:
        """Forget a persona's knowledge (its ``[knowledge]`` is gone)."""
        with self._write() as conn:
            self._forget_chunks(conn, persona)
            conn.execute(knowledge_sources.delete().where(
                knowledge_sources.c.persona == persona))

    def _forget_chunks(self, conn: Connection, persona: str) -> None:
        if self.dialect == "sqlite":
            # An external-content FTS5 table forgets a row only when told its old values.
            conn.execute(sa.text(
                "INSERT INTO knowledge_fts (knowledge_fts, rowid, heading, body) "
                "SELECT 'delete', id, heading, body FROM knowledge_chunks "
                "WHERE persona = :persona"), {"persona": persona})
        conn.execute(knowledge_chunks.delete().where(knowledge_chunks.c.persona == persona))
