"""Outbound events for the operator: ``call.started``, ``call.ended``, ``transcript.ready`` and
``call.escalated`` (an agent flagged the call urgent), ``call.analyzed`` (its post-call
analysis is done), and ``booking.created``, ``booking.changed`` and ``booking.cancelled``,
POSTed to EVENTS_WEBHOOK_URL and signed by the Standard Webhooks convention.

The store writes each event into the ``outbox`` table in the same transaction as the change it
reports, under an id made from the call and the event (so a change recorded twice is one event).
This module delivers them later, from the periodic runner, never inside an NCS answer: a slow or
broken receiver must not delay the caller's agent. Each delivery is leased in the store first, so
two workers never send the same event at once; a failure is retried with growing delays.

The body is ``{"type", "timestamp", "data"}``: ``timestamp`` is when the change happened, and
``data`` the call as it is at delivery (``transcript.ready`` adds the transcript); a booking
event's ``data`` is the booking as that change left it (its id is per booking, revision and kind).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from calls.records import analysis_json, call_json, iso, transcript
from store import Store
from upstream.signing import signed_headers

logger = logging.getLogger(__name__)

CALL_STARTED = "call.started"
CALL_ENDED = "call.ended"
TRANSCRIPT_READY = "transcript.ready"
CALL_ESCALATED = "call.escalated"
CALL_ANALYZED = "call.analyzed"
#: booking.created, booking.changed, booking.cancelled (store/bookings.py).
BOOKING_PREFIX = "booking."
#: Delays before each retry; after the last one the event is given up (about a day in all).
RETRY_DELAYS_S = (5, 30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600)
#: How long a worker owns an event it is sending before another may try.
SEND_LEASE_S = 60.0
TIMEOUT_S = (3.05, 10.0)


class EventSender:
    """Delivers due outbox events to the operator's URL."""

    def __init__(self, url: str, secret: str, store: Store, *,
                 session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self.secret = secret
        self.store = store
        self.clock = clock
        self.session = session or requests.Session()
        # Environment proxies are for people, not for this service's own webhooks.
        self.session.trust_env = False

    def deliver_due(self, limit: int = 20) -> int:
        """Send the events that are due; returns how many were delivered."""
        delivered = 0
        for event in self.store.claim_outbox(limit=limit, lease_s=SEND_LEASE_S):
            body = self._body(event)
            if body is None:
                # The call was erased meanwhile: nothing left to tell.
                self.store.outbox_done(event["id"])
                continue
            error = self._send(event["id"], body)
            if error is None:
                self.store.outbox_done(event["id"])
                delivered += 1
                continue
            attempts = event["attempts"] + 1
            retry_in = RETRY_DELAYS_S[attempts - 1] if attempts <= len(RETRY_DELAYS_S) else None
            self.store.outbox_failed(event["id"], error, retry_in=retry_in)
            logger.warning("events.delivery_failed", extra={
                "event_id": event["id"], "type": event["type"], "attempts": attempts,
                "error": error, "gave_up": retry_in is None})
        return delivered

    def _body(self, event: dict[str, Any]) -> bytes | None:
        if event["type"].startswith(BOOKING_PREFIX):
            return _encode(event, json.loads(event["payload"]))
        record = self.store.get_call(event["call_id"])
        if record is None:
            return None
        data = call_json(record)
        if event["type"] == TRANSCRIPT_READY:
            data["transcript"] = transcript(self.store.timeline(record.id))
        elif event["type"] == CALL_ANALYZED:
            data["analysis"] = analysis_json(self.store.analysis_of(record.id), record)
        elif event["type"] == CALL_ESCALATED:
            flags = [e for e in self.store.timeline(record.id) if e["kind"] == "flagged_urgent"]
            data["escalation"] = {"summary": flags[0]["detail"]["summary"] if flags else None,
                                  "flagged_at": iso(flags[0]["at"]) if flags else None}
        return _encode(event, data)

    def _send(self, event_id: str, body: bytes) -> str | None:
        """POST one event; None when the receiver took it (any 2xx), else why not."""
        timestamp = int(self.clock())
        headers = {"Content-Type": "application/json",
                   **signed_headers(self.secret, event_id, timestamp, body)}
        try:
            response = self.session.post(self.url, data=body, headers=headers,
                                         timeout=TIMEOUT_S, allow_redirects=False)
        except requests.RequestException as exc:
            return type(exc).__name__
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"


def _encode(event: dict[str, Any], data: dict[str, Any]) -> bytes:
    payload = {"type": event["type"], "timestamp": iso(event["created_at"]), "data": data}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
