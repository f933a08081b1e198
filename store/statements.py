"""The statements on every call's path: written in SQLAlchemy Core like the rest of the store,
compiled once per dialect, and run on the transaction's own driver connection (store/base.py
``run``).

Why compiled once: a webhook runs about ten of these in its transaction, on the path between
NCS's delivery and the agent's join. ``Connection.execute`` spends about 20 us per statement on
bookkeeping (cache key, parameter processing, result set-up) around the driver's 2 us
(measured on this project's 2-core machine; docs/performance.md); compiled here, with the
values a statement holds (its ``IN`` lists, its constants) bound in, a statement costs the
driver's call alone. SQLAlchemy still writes every statement, manages every transaction and
maps every driver error (``run``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from calls import lifecycle
from calls.plan import NewCall
from store.schema import call_events, call_tokens, calls, notices, outbox, participants

bp = sa.bindparam


def dialect_insert(dialect: str, table: sa.Table) -> Any:
    """INSERT for the dialect, with its ``ON CONFLICT`` clauses (SQLite 3.35+ and PostgreSQL
    alike; the RETURNING row, not rowcount, says whether a row went in)."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


class Prepared(NamedTuple):
    """A statement compiled for one dialect: its SQL, and every parameter it takes with the value
    compiled into it (None for the ones each execution gives, which ``required`` names)."""

    sql: str
    values: dict[str, Any]
    required: frozenset[str]


#: The dialects the path's statements compile for, with the parameter style whose parameters
#: are a mapping (SQLite's driver takes ``:name``, psycopg ``%(name)s``).
_COMPILE_DIALECTS: dict[str, Dialect] = {"sqlite": sqlite.dialect(paramstyle="named"),
                                         "postgresql": postgresql.psycopg.dialect()}


def prepare(statement: Any, dialect: str) -> Prepared:
    """``statement`` compiled for ``dialect``, its ``IN`` lists expanded."""
    compiled = statement.compile(dialect=_COMPILE_DIALECTS[dialect])
    given = {bind.key: None for bind in compiled.binds.values() if bind.required}
    expanded = compiled.construct_expanded_state(given)
    return Prepared(expanded.statement, dict(expanded.parameters), frozenset(given))


class Statements:
    """The path's statements for one dialect (see :func:`statements`), each :class:`Prepared`.
    An INSERT names its columns, so a column it does not name keeps its default."""

    def __init__(self, dialect: str) -> None:
        def insert(table: sa.Table) -> Any:
            return dialect_insert(dialect, table)

        self.notice_seen = sa.select(sa.literal(1)).where(
            notices.c.product_id == bp("product_id"), notices.c.notice_id == bp("notice_id"))
        notice = {name: bp(name) for name in ("notice_id", "product_id", "event_type",
                                              "received_at")}
        self.remember_notice = insert(notices).values(notice).on_conflict_do_nothing()
        self.insert_notice = insert(notices).values(notice).on_conflict_do_nothing().returning(
            notices.c.notice_id)
        seen = (participants.c.last_seq, participants.c.present, participants.c.updated_at)
        key = [participants.c.channel, participants.c.uid]
        if dialect == "postgresql":
            # Creating or touching the row locks it until commit.
            touch = insert(participants).values(
                channel=bp("channel"), uid=bp("uid"), last_seq=None, present=False,
                updated_at=bp("now"))
            self.read_participant = touch.on_conflict_do_update(
                index_elements=key, set_={"channel": touch.excluded.channel}).returning(*seen)
        else:
            self.read_participant = sa.select(*seen).where(
                participants.c.channel == bp("channel"), participants.c.uid == bp("uid"))
        save = insert(participants).values(
            {name: bp(name) for name in ("channel", "uid", "last_seq", "present", "updated_at")})
        self.save_participant = save.on_conflict_do_update(
            index_elements=key, set_={"last_seq": save.excluded.last_seq,
                                      "present": save.excluded.present,
                                      "updated_at": save.excluded.updated_at})
        self.live_call = (
            sa.select(calls.c.id, calls.c.state, calls.c.agent_id, calls.c.grace_until)
            .where(calls.c.channel == bp("channel"), calls.c.state.in_(lifecycle.LIVE_STATES))
            .order_by(calls.c.created_at.desc()).limit(1).with_for_update())
        self.call_exists = sa.select(calls.c.id).where(calls.c.id == bp("call_id"))
        self.call_by_id = sa.select(calls).where(calls.c.id == bp("call_id"))
        self.insert_call = calls.insert().values(
            {field.name: bp(field.name) for field in dataclasses.fields(NewCall)})
        #: The hash of a token that opens the MCP endpoint for a call.
        self.insert_call_token = call_tokens.insert().values(
            {name: bp(name) for name in ("token_hash", "call_id", "created_at")})
        self.caller_seen = calls.update().where(calls.c.id == bp("call_id")).values(
            caller_joined_at=sa.func.coalesce(calls.c.caller_joined_at, bp("now")))
        self.update_state = calls.update().where(calls.c.id == bp("call_id")).values(
            state=bp("state"), grace_until=bp("grace_until"), updated_at=bp("now"))
        self.end_call = calls.update().where(calls.c.id == bp("call_id")).values(
            state=bp("state"), grace_until=bp("grace_until"), updated_at=bp("now"),
            end_reason=bp("end_reason"), ended_at=bp("now"), retry_at=bp("retry_at"))
        self.agent_started = calls.update().where(
            calls.c.id == bp("call_id"),
            calls.c.state.in_((lifecycle.STARTING, lifecycle.GRACE))).values(
            agent_id=bp("agent_id"), agent_started_at=bp("now"), retry_at=None,
            updated_at=bp("now"),
            state=sa.case((calls.c.state == lifecycle.STARTING, lifecycle.ACTIVE),
                          else_=calls.c.state)).returning(calls.c.id)
        self.agent_started_late = calls.update().where(calls.c.id == bp("call_id")).values(
            agent_id=bp("agent_id"), agent_started_at=bp("now"), updated_at=bp("now"),
            retry_at=bp("retry_at"))
        self.agent_stopped = calls.update().where(calls.c.id == bp("call_id")).values(
            state=lifecycle.ENDED, retry_at=None, grace_until=None, updated_at=bp("now"),
            ended_at=sa.func.coalesce(calls.c.ended_at, bp("now")))
        self.insert_event = call_events.insert().values(
            {name: bp(name) for name in ("call_id", "at", "source", "kind", "detail")})
        self.insert_outbox = insert(outbox).values(
            {name: bp(name) for name in ("id", "type", "call_id", "payload", "created_at",
                                         "attempts", "next_attempt_at")}).on_conflict_do_nothing()
        self.count_open = sa.select(sa.func.count()).select_from(calls).where(
            calls.c.state.in_(lifecycle.OPEN_STATES))
        # Agent seconds since midnight UTC (``day``): calls whose agent started, ended after
        # midnight or still running, each counted from the later of its start and midnight.
        # Only calls made since ``made_after`` (an agent's lifetime before midnight) can count,
        # which created_at's index finds; an index on ended_at would cost every call's commit
        # a page for a query few deployments run.
        since = sa.case((calls.c.agent_started_at > bp("day"), calls.c.agent_started_at),
                        else_=bp("day"))
        today = (calls.c.created_at > bp("made_after"), calls.c.agent_started_at.is_not(None),
                 sa.or_(calls.c.ended_at.is_(None), calls.c.ended_at > bp("day")))
        seconds = sa.func.sum(sa.func.coalesce(calls.c.ended_at, bp("now")) - since)
        self.agent_seconds = sa.select(sa.func.coalesce(seconds, 0)).where(*today)
        # The same seconds by what prices them (DAILY_BUDGET, calls/costs.py): the persona and
        # whether the SIP gateway carried the call.
        no_gateway = calls.c.gateway_callid.is_(None)
        self.agent_seconds_priced = sa.select(
            calls.c.persona, calls.c.direction, no_gateway.label("no_gateway"),
            seconds.label("seconds")).where(*today).group_by(
            calls.c.persona, calls.c.direction, no_gateway)
        for name, statement in vars(self).items():
            setattr(self, name, prepare(statement, dialect))


@functools.cache
def statements(dialect: str) -> Statements:
    """The statements for ``dialect``, built on first use."""
    return Statements(dialect)
