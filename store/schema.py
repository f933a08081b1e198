"""The tables, as SQLAlchemy Core metadata (migrations/ creates them; a test checks they match)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

calls = sa.Table(
    "calls",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("channel", sa.String(128), nullable=False, index=True),
    sa.Column("caller_uid", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    # Unique by construction (the prefix and the call's id), so no index of its own (0006).
    sa.Column("agent_name", sa.String(64), nullable=False),
    sa.Column("agent_id", sa.String(64)),
    sa.Column("persona", sa.String(64)),
    sa.Column("join_seq", sa.BigInteger),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("agent_started_at", sa.Float),
    sa.Column("ended_at", sa.Float),
    sa.Column("end_reason", sa.String(64)),
    sa.Column("last_error", sa.String(500)),
    sa.Column("grace_until", sa.Float),
    # When the sweeper may take over the call's pending work (a start or stop whose worker may
    # have died). Set whenever a worker takes the work on.
    sa.Column("retry_at", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
    # The phone side (migration 0002): inbound or outbound, the two numbers when the gateway
    # told us, its call id (for endcall/transfer), the persona's template variables of this
    # call (JSON), and when the caller was first seen in the channel.
    sa.Column("direction", sa.String(16)),
    sa.Column("caller_number", sa.String(64)),
    sa.Column("called_number", sa.String(64)),
    sa.Column("gateway_callid", sa.String(128)),
    sa.Column("variables", sa.Text),
    sa.Column("caller_joined_at", sa.Float),
    # When the reconciler had the agent say goodbye at the persona's max_call_s (0004).
    sa.Column("goodbye_at", sa.Float),
    # The notice of the join that began the call (0006): with join_seq and created_at it is the
    # timeline's caller_joined entry, which therefore costs the join's commit no row of its own.
    sa.Column("join_notice_id", sa.String(128)),
    # Only rows that have the id (0005): a new call has neither, and an index entry for NULL
    # would be one more page for its commit to write.
    *(sa.Index(f"ix_calls_{column}", column,
               sqlite_where=sa.text(f"{column} IS NOT NULL"),
               postgresql_where=sa.text(f"{column} IS NOT NULL"))
      for column in ("agent_id", "gateway_callid")),
)

numbers = sa.Table(
    "numbers",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("did", sa.String(32), nullable=False),
    sa.Column("display", sa.String(64)),
    sa.Column("pin", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(128), nullable=False, index=True),
    sa.Column("region", sa.String(16), nullable=False),
    sa.Column("persona", sa.String(64)),
    sa.Column("label", sa.String(200)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("released_at", sa.Float),
)

lines = sa.Table(
    "lines",
    metadata,
    sa.Column("number", sa.String(32), primary_key=True),
    sa.Column("persona", sa.String(64)),
    sa.Column("label", sa.String(200)),
    sa.Column("variables", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    # JSON {pin: persona}: a line whose callers enter a PIN can reach several personas.
    sa.Column("pins", sa.Text),
)

participants = sa.Table(
    "participants",
    metadata,
    sa.Column("channel", sa.String(128), primary_key=True),
    sa.Column("uid", sa.BigInteger, primary_key=True),
    sa.Column("last_seq", sa.BigInteger),
    sa.Column("present", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # Keyed by its primary key alone (SQLite): one B-tree to write instead of two (0006).
    sqlite_with_rowid=False,
)

notices = sa.Table(
    "notices",
    metadata,
    sa.Column("notice_id", sa.String(128), nullable=False),
    sa.Column("product_id", sa.Integer, nullable=False),
    sa.Column("event_type", sa.Integer, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False, index=True),
    # A noticeId is unique within its product only, as far as Agora documents (0007): a
    # ConvoAI notice must never pass for a copy of an RTC one with the same id.
    sa.PrimaryKeyConstraint("product_id", "notice_id"),
    sqlite_with_rowid=False,
)

call_events = sa.Table(
    "call_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("call_id", sa.String(32), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(48), nullable=False),
    sa.Column("detail", sa.Text),
)


#: Events for the operator's EVENTS_WEBHOOK_URL, written in the transaction of the change they
#: report and delivered later by the periodic runner (calls/outbox.py).
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("call_id", sa.String(32), index=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, index=True),
    sa.Column("delivered_at", sa.Float),
    sa.Column("last_error", sa.String(300)),
)

#: Named leases: a job that must run in one worker at a time (the reconciler) holds one.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

#: Fixed-window counters shared by every worker (web/security.py's rate limits).
rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("window_start", sa.Float, nullable=False),
    sa.Column("hits", sa.Integer, nullable=False),
)

#: Bearer tokens of the service's MCP endpoint (0008): one per join of a call whose persona has
#: tools, kept as SHA-256 hex (the token itself is only ever in the join). Every token of a call
#: is valid while the call is open, so an agent adopted after a retried join keeps working.
call_tokens = sa.Table(
    "call_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("call_id", sa.String(32), nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

#: Every tool call an agent made (0008), and the ledger that makes a side effect happen once.
#: A side-effecting call's id is made from the call, the tool and its canonical arguments, so a
#: repeat collides with the first on the primary key and gets its result; other calls get a
#: random id. The id is also the ``Idempotency-Key`` sent to an operator's endpoint.
tool_calls = sa.Table(
    "tool_calls",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("call_id", sa.String(32), nullable=False, index=True),
    sa.Column("tool", sa.String(64), nullable=False),
    sa.Column("once", sa.Boolean, nullable=False),
    # JSON, with the values of fields named like secrets masked.
    sa.Column("arguments", sa.Text, nullable=False),
    # running, then done (or failed: a later repeat runs again); a run whose worker died is
    # taken over when its lease runs out.
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("holder", sa.String(64)),
    sa.Column("lease_until", sa.Float),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    # JSON: the MCP result ({"content", "structuredContent"?, "isError"}).
    sa.Column("result", sa.Text),
    sa.Column("outcome", sa.String(32)),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
)

#: The tarot cards drawn in a call (0008): the key keeps any card from being drawn twice in one
#: call, even by two draws at once on two workers.
tarot_draws = sa.Table(
    "tarot_draws",
    metadata,
    sa.Column("call_id", sa.String(32), primary_key=True),
    sa.Column("card", sa.String(64), primary_key=True),
    sa.Column("reversed", sa.Boolean, nullable=False),
    sa.Column("drawn_at", sa.Float, nullable=False),
)

#: Each ended call's post-call analysis (0009): queued once the call has ended and its transcript
#: has had time to arrive, run by the periodic runner, retried with growing delays. ``state`` is
#: pending, done, failed (gave up: ``analysis_failed``) or empty (no transcript, nothing sent).
call_analyses = sa.Table(
    "call_analyses",
    metadata,
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

#: Every appointment agents booked (0010), on either backend (bookings/): times are UTC epoch
#: seconds, ``timezone`` the business's zone they are shown in. ``revision`` counts changes, so
#: each change is its own operator event. A cancelled booking stays, as ``cancelled``.
bookings = sa.Table(
    "bookings",
    metadata,
    sa.Column("reference", sa.String(16), primary_key=True),
    sa.Column("persona", sa.String(64), nullable=False),
    sa.Column("service", sa.String(48), nullable=False),
    sa.Column("start_at", sa.Float, nullable=False),
    sa.Column("end_at", sa.Float, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("phone", sa.String(40), index=True),
    sa.Column("call_id", sa.String(32)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_bookings_persona_start", "persona", "start_at"),
    sa.Index("ix_bookings_start_at", "start_at"),
    # 0013: the reminder planner's "latest change" read (outbound/reminders.py).
    sa.Index("ix_bookings_updated_at", "updated_at"),
)

#: One row per persona's diary (0010): a booking, a move or a cancel first updates it, which
#: locks it (PostgreSQL's row lock; SQLite's write lock is already the whole database), so two
#: requests on one diary never check the same free time at once.
booking_locks = sa.Table(
    "booking_locks",
    metadata,
    sa.Column("persona", sa.String(64), primary_key=True),
    sa.Column("taken_at", sa.Float, nullable=False),
)

#: A persona's knowledge folder as last indexed (0011): the fingerprint of its files says
#: whether the chunks below are stale (tools/knowledge_index.py).
knowledge_sources = sa.Table(
    "knowledge_sources",
    metadata,
    sa.Column("persona", sa.String(64), primary_key=True),
    sa.Column("folder", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("chunks", sa.Integer, nullable=False),
    sa.Column("indexed_at", sa.Float, nullable=False),
)

#: The passages of a persona's knowledge folder (0011): a Markdown section (or a part of a long
#: one) with its heading path ("Billing > Refunds") and its file, relative to the folder. The
#: full-text index over heading and body is each database's own, made by the migration: a
#: SQLite FTS5 table ``knowledge_fts`` (external content, porter stemming) and a PostgreSQL GIN
#: index ``ix_knowledge_fts`` on ``to_tsvector('english', heading || ' ' || body)``.
knowledge_chunks = sa.Table(
    "knowledge_chunks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("persona", sa.String(64), nullable=False, index=True),
    sa.Column("source", sa.String(500), nullable=False),
    sa.Column("heading", sa.String(500), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
)

#: Outbound campaigns (0012, outbound/): the persona and caller id they dial with, and their
#: calling window, pacing and retry policy as one JSON document (outbound/rules.py reads it).
#: ``state`` is active, paused, cancelled or completed.
campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200)),
    sa.Column("persona", sa.String(64), nullable=False),
    sa.Column("from_number", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("policy", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

#: The people a campaign calls (0012): one row each, in the order given. ``next_at`` is when a
#: pending contact may be dialled next (its window and retry delay already applied); a contact
#: is ``dialling`` while one of its attempts is open.
campaign_contacts = sa.Table(
    "campaign_contacts",
    metadata,
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
    sa.Index("ix_campaign_contacts_due", "campaign_id", "state", "next_at"),
)

#: Every dial attempt (0012): a campaign contact's, or a scheduled call's (no campaign; its call
#: row waits as ``scheduled``). ``state`` is queued (a scheduled call not yet due), dialling
#: (claimed: it is dialled at most once), done (``disposition`` says how it went) or
#: cancelled. ``key`` makes a scheduled call that must exist once (a booking's reminder)
#: unique; ``options`` holds what the dial needs (region, gateway prompt).
dial_attempts = sa.Table(
    "dial_attempts",
    metadata,
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

#: The do-not-call list (0012): numbers (E.164) never dialled, from the API, a CSV import or
#: the ``opt_out`` tool (then with the call it was asked on).
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("number", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("call_id", sa.String(32)),
    sa.Column("note", sa.String(200)),
    sa.Column("created_at", sa.Float, nullable=False),
)

#: The PostgreSQL expression the GIN index is built on; a query must use it as it is.
KNOWLEDGE_TSVECTOR = "to_tsvector('english', heading || ' ' || body)"


def declared(obj: object, name: str | None, type_: str, reflected: bool,
             compare_to: object) -> bool:
    """Alembic's ``include_object``: leave out of comparisons the full-text objects that the
    metadata cannot declare (the FTS5 table and its shadow tables, the GIN expression index);
    migration 0011 makes them and tests/unit/test_knowledge.py checks they work."""
    return not (name or "").startswith(("knowledge_fts", "ix_knowledge_fts"))
