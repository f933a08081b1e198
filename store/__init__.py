"""The store: calls, participants and notices, SIP lines and numbers, the outbox and leases, in
SQLite or PostgreSQL. It is the only memory shared between workers and machines.

One module per aggregate, each a part of :class:`Store`: ``calls`` (caller events and agent
outcomes, the webhook's path), ``call_records`` (reads, sweeping, retention), ``sip`` (lines and
reservations), ``outbox`` (operator events, leases, checkpoints), ``tools`` (the MCP endpoint's
tokens, the tool-call ledger, tarot draws), ``analyses`` (post-call analyses), ``knowledge``
(knowledge bases and their full-text search), ``bookings`` (the diary and its lock),
``campaigns`` (outbound campaigns and their contacts), ``outbound`` (dial attempts: their claims
and settling), ``suppressions`` (the do-not-call list), ``reminders`` (what the booking
reminders' planner reads); ``schema`` holds the tables and ``engine`` the engines and SQLite's
write gate; ``statements`` the statements on every call's path, built once per dialect. Every
statement is SQLAlchemy Core.
"""

from __future__ import annotations

from calls.plan import WORK_LEASE_S
from store.analyses import AnalysisRecords
from store.base import EVENT_TYPES, CallRecord, StoreUnavailable
from store.bookings import BookingRecords, Diary
from store.call_records import CallRecords
from store.calls import Applied, CallerEvents, Notice
from store.engine import DEFAULT_STORE_TIMEOUT_S, SQLITE_PAGE_SIZE, make_engine
from store.knowledge import KnowledgeRecords
from store.outbound import OutboundRecords
from store.outbox import Outbox
from store.rate_counters import RateCounters
from store.reminders import ReminderRecords
from store.schema import metadata
from store.sip import SipRecords
from store.suppressions import SuppressionRecords
from store.tools import ToolClaim, ToolRecords

__all__ = ["DEFAULT_STORE_TIMEOUT_S", "EVENT_TYPES", "SQLITE_PAGE_SIZE", "WORK_LEASE_S",
           "Applied", "CallRecord", "Diary", "Notice", "Store", "StoreUnavailable", "ToolClaim",
           "make_engine", "metadata"]


class Store(CallerEvents, CallRecords, SipRecords, Outbox, ToolRecords,
            AnalysisRecords, KnowledgeRecords, BookingRecords, OutboundRecords,
            SuppressionRecords, ReminderRecords, RateCounters):
    """Calls and notices in a SQL database (SQLite or PostgreSQL)."""
