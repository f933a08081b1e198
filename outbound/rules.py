"""Outbound's rules, pure: a campaign's calling window, pacing and retry policy as they are
written in a request, when a contact may be dialled next, and what an attempt's call came to
(its disposition). No I/O, no Flask; outbound/dialer.py applies them through the store."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Dispositions (the issue's contract).
ANSWERED, NO_ANSWER, BUSY, FAILED = "answered", "no_answer", "busy", "failed"
VOICEMAIL, REFUSED, OPTED_OUT, SUPPRESSED = "voicemail", "refused", "opted_out", "suppressed"
DISPOSITIONS = (ANSWERED, NO_ANSWER, BUSY, FAILED, VOICEMAIL, REFUSED, OPTED_OUT, SUPPRESSED)
#: The dispositions a retry policy gives a delay to.
RETRYABLE = (BUSY, NO_ANSWER, FAILED, VOICEMAIL)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: A cost guard's refusal is not the contact's doing: tried again this much later, and it does
#: not use up an attempt.
REFUSED_RETRY_S = 60.0
MAX_ATTEMPTS_CAP = 10
#: Delays the policy uses when a request leaves them out (seconds). Calling back a busy line
#: after ten minutes and an unanswered one after an hour is what a person would do.
DEFAULT_DELAYS: dict[str, float | None] = {BUSY: 600.0, NO_ANSWER: 3600.0, FAILED: 1800.0,
                                           VOICEMAIL: 3600.0}

#: FreeSWITCH hang-up causes (the gateway's ``hangup_cause``) that mean nobody picked up.
NO_ANSWER_CAUSES = frozenset({"NO_ANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT",
                              "ORIGINATOR_CANCEL", "RECOVERY_ON_TIMER_EXPIRE"})
BUSY_CAUSES = frozenset({"USER_BUSY", "NORMAL_CIRCUIT_CONGESTION"})
#: What an agent's end_call reason says when a machine answered.
_VOICEMAIL_WORDS = re.compile(r"voice\s*mail|answering machine", re.IGNORECASE)
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class Invalid(ValueError):
    """A campaign's request breaks a rule; the message says which, for the caller to fix."""


@dataclass(frozen=True)
class Window:
    """When a contact may be called, in the contact's own time: from ``start`` to ``end`` (the
    same day) on ``days`` (0 Monday .. 6 Sunday)."""

    start: time = time(9, 0)
    end: time = time(20, 0)
    days: frozenset[int] = frozenset(range(6))

    def as_json(self) -> dict[str, Any]:
        end = "24:00" if self.end == time.max else self.end.strftime("%H:%M")
        return {"start": self.start.strftime("%H:%M"), "end": end,
                "days": [DAYS[d] for d in sorted(self.days)]}

    def next_open(self, at: float, zone: ZoneInfo) -> float:
        """``at`` if it is inside the window in ``zone``, else when the window next opens."""
        local = datetime.fromtimestamp(at, zone)
        for offset in range(8):
            day = (local + timedelta(days=offset)).date()
            if day.weekday() not in self.days:
                continue
            opens = datetime.combine(day, self.start, zone).timestamp()
            closes = datetime.combine(day, self.end, zone).timestamp()
            if at < closes:
                return max(at, opens)
        raise AssertionError("a window has at least one day")  # parse_window ensures it

    def contains(self, at: float, zone: ZoneInfo) -> bool:
        return self.next_open(at, zone) == at


@dataclass(frozen=True)
class Pacing:
    """At most ``max_concurrent`` calls of the campaign at once, ``per_minute`` dials a minute."""

    max_concurrent: int = 1
    per_minute: int = 10

    def as_json(self) -> dict[str, int]:
        return {"max_concurrent": self.max_concurrent, "per_minute": self.per_minute}


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_attempts`` dials per contact; after a disposition in ``delay_s``, the next
    one that much later (None: that disposition is not retried)."""

    max_attempts: int = 3
    delay_s: Mapping[str, float | None] = field(default_factory=lambda: dict(DEFAULT_DELAYS))

    def as_json(self) -> dict[str, Any]:
        return {"max_attempts": self.max_attempts, "delay_s": dict(self.delay_s)}


@dataclass(frozen=True)
class Policy:
    window: Window
    pacing: Pacing
    retry: RetryPolicy
    timezone: str = "UTC"

    def as_json(self) -> dict[str, Any]:
        return {"window": self.window.as_json(), "pacing": self.pacing.as_json(),
                "retry": self.retry.as_json(), "timezone": self.timezone}


# -- reading a request ---------------------------------------------------------------------------

def zone(name: Any, what: str = "timezone") -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        raise Invalid(f"{what} must be an IANA time zone name such as Europe/London")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder of zones
        raise Invalid(f"{what} {name!r} is not an IANA time zone name") from None


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Invalid(f"{what} must be an object")
    return value


def _count(value: Any, what: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid(f"{what} must be a whole number from {low} to {high}")
    return value


def parse_window(value: Any) -> Window:
    body = _object(value, "window")

    def hhmm(key: str, default: time) -> time:
        text = body.get(key)
        if text is None:
            return default
        if key == "end" and text == "24:00":
            return time.max  # to the end of the day
        found = _HHMM.match(text) if isinstance(text, str) else None
        if not found:
            raise Invalid(f"window.{key} must be a time like 09:00")
        return time(int(found.group(1)), int(found.group(2)))

    start, end = hhmm("start", Window.start), hhmm("end", Window.end)
    if start >= end:
        raise Invalid("window.start must be before window.end (a window within one day)")
    days = body.get("days")
    if days is None:
        return Window(start, end)
    if (not isinstance(days, list) or not days
            or not all(isinstance(d, str) and d.lower()[:3] in DAYS for d in days)):
        raise Invalid(f"window.days must be a list of days: {', '.join(DAYS)}")
    return Window(start, end, frozenset(DAYS.index(d.lower()[:3]) for d in days))


def parse_pacing(value: Any) -> Pacing:
    body = _object(value, "pacing")
    return Pacing(_count(body.get("max_concurrent"), "pacing.max_concurrent", 1, 1, 100),
                  _count(body.get("per_minute"), "pacing.per_minute", 10, 1, 600))


def parse_retry(value: Any) -> RetryPolicy:
    body = _object(value, "retry")
    attempts = _count(body.get("max_attempts"), "retry.max_attempts", 3, 1, MAX_ATTEMPTS_CAP)
    given = _object(body.get("delay_s"), "retry.delay_s")
    unknown = set(given) - set(RETRYABLE)
    if unknown:
        raise Invalid(f"retry.delay_s takes {', '.join(RETRYABLE)}; not {sorted(unknown)[0]}")
    delays = dict(DEFAULT_DELAYS)
    for key, delay in given.items():
        if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int | float)
                                  or not 0 <= delay <= 30 * 86400):
            raise Invalid(f"retry.delay_s.{key} must be seconds from 0 to 2592000, or null "
                          "(not retried)")
        delays[key] = None if delay is None else float(delay)
    return RetryPolicy(attempts, delays)


def parse_policy(body: Mapping[str, Any]) -> Policy:
    timezone = body.get("timezone", "UTC")
    zone(timezone)
    return Policy(parse_window(body.get("window")), parse_pacing(body.get("pacing")),
                  parse_retry(body.get("retry")), timezone.strip())


def policy_from_json(stored: Mapping[str, Any]) -> Policy:
    """A policy as :meth:`Policy.as_json` stored it."""
    return parse_policy(stored)


# -- when next, and what happened ------------------------------------------------------------------

def next_step(disposition: str, attempts: int, policy: Policy, contact_zone: ZoneInfo,
              now: float) -> tuple[str, float | None]:
    """A contact's state after an attempt came to ``disposition`` (``attempts`` made so far;
    a cost guard's refusal before the dial is not one), and when it may be dialled next."""
    if disposition == ANSWERED:
        return "completed", None
    if disposition in (OPTED_OUT, SUPPRESSED):
        return disposition, None
    if attempts >= policy.retry.max_attempts:
        return "exhausted", None
    if disposition == REFUSED:  # ConvoAI refused the agent (a quota): soon, not never
        return "pending", policy.window.next_open(now + REFUSED_RETRY_S, contact_zone)
    delay = policy.retry.delay_s.get(disposition)
    if delay is None:
        return "exhausted", None
    return "pending", policy.window.next_open(now + delay, contact_zone)


@dataclass(frozen=True)
class CallFacts:
    """What the store knows of an attempt's call when it is over."""

    end_reason: str | None
    caller_joined_at: float | None
    ended_at: float | None
    timeline: list[Mapping[str, Any]]
    opted_out: bool = False


def _answered_at(facts: CallFacts) -> float | None:
    if facts.caller_joined_at is not None:
        return facts.caller_joined_at
    for entry in facts.timeline:
        if entry.get("kind") in ("outbound_answered", "call_answered"):
            return float(entry.get("at") or 0) or None
    return None


#: A ConvoAI 202 HANGUP's ``reason`` (not documented by Agora, sent by the sandbox; assumed to
#: be what Agora would say) as the gateway's cause.
_HANGUP_REASONS = {"busy": "USER_BUSY", "no_answer": "NO_ANSWER"}


def _hangup_cause(timeline: Iterable[Mapping[str, Any]]) -> str | None:
    """The gateway's ``call_hangup`` cause, or what a ConvoAI HANGUP's reason stands for."""
    for entry in timeline:
        detail = entry.get("detail") or {}
        if entry.get("kind") != "call_hangup":
            continue
        if detail.get("hangup_cause"):
            return str(detail["hangup_cause"]).upper()
        if str(detail.get("reason") or "").lower() in _HANGUP_REASONS:
            return _HANGUP_REASONS[str(detail["reason"]).lower()]
    return None


def disposition(facts: CallFacts) -> tuple[str, dict[str, Any]]:
    """The disposition of an attempt whose call is over, and its detail (how long an answered
    call lasted; the SIP cause of a failure)."""
    reason = (facts.end_reason or "").lower()
    answered_at = _answered_at(facts)
    if answered_at is not None:
        if facts.opted_out:
            return OPTED_OUT, {}
        if any(e.get("kind") == "agent_ended_call"
               and _VOICEMAIL_WORDS.search(str((e.get("detail") or {}).get("reason") or ""))
               for e in facts.timeline):
            return VOICEMAIL, {}
        lasted = None if facts.ended_at is None else round(facts.ended_at - answered_at, 1)
        return ANSWERED, {"duration_s": max(0.0, lasted) if lasted is not None else None}
    if reason.startswith("refused"):
        return REFUSED, {"guard": reason.removeprefix("refused_") or None}
    cause = _hangup_cause(facts.timeline)
    if cause in BUSY_CAUSES or reason == "outbound_busy":
        return BUSY, {"cause": cause or "Busy"}
    if cause in NO_ANSWER_CAUSES or reason in ("outbound_noanswer", "outbound_no_answer"):
        return NO_ANSWER, {"cause": cause or "NoAnswer"}
    return FAILED, {"cause": cause or reason or "unknown"}
