"""The second outbound dialer: ConvoAI's own telephony (OUTBOUND_BACKEND=convoai).

One request, ``POST /v2/projects/{appid}/call``, starts the agent and dials the callee, for
operators whose numbers are imported into Agora rather than provisioned on the SIP gateway.
The call's record, state machine and leases are the gateway dialer's: the agent the call
answers with is recorded through the same ``agent_started`` path as a join's, under the same
deterministic agent name. The phone leg is hung up with ``POST /calls/{agent_id}/hangup``, and
ConvoAI reports the leg's progress as NCS events 201/202 (:meth:`ConvoAIDialer.call_state`).
No Flask here.
"""

from __future__ import annotations

import logging
from typing import Any

from calls import lifecycle
from calls.service import CallService
from config import Settings
from convoai.errors import ConvoAIError
from convoai.payload import is_our_agent
from convoai.tokens import build_rtc_token
from ncs.events import CallStateEvent
from observability import metrics
from store import CallRecord, Store

logger = logging.getLogger(__name__)

#: The timeline source of everything ConvoAI's telephony reports or is asked to do.
SOURCE = "convoai"
#: The timeline kind that marks a call as dialled by ConvoAI (so its hang-up goes there too).
PLACED = "outbound_call_placed"


def hangup_end_reason(direction: str, seen: set[str]) -> str:
    """Why a call ended whose phone leg ConvoAI reports hung up, from the call states seen
    before: answered, it was a conversation; rang but never answered, no answer; neither, the
    call failed (busy or an invalid number look alike here: Agora documents no reason).
    These names are a contract: outbound dispositions read them."""
    if "call_answered" in seen or direction == "inbound":
        return "convoai_hangup"
    return "outbound_no_answer" if "call_ringing" in seen else "outbound_failed"


class ConvoAIDialer:
    """Dial, hang up and follow the calls ConvoAI's telephony places for this service."""

    def __init__(self, settings: Settings, store: Store, calls: CallService) -> None:
        self.settings = settings
        self.store = store
        self.calls = calls
        self.convoai = calls.convoai

    # -- dialling ------------------------------------------------------------------------------

    def dial(self, call: CallRecord) -> None:
        """Start the call's agent and dial its callee in one ``/call``; record the agent like a
        join's. A refusal or failure ends the call as ``outbound_failed``."""
        current = self.store.get_call(call.id)
        if current is None or current.state != lifecycle.STARTING or current.agent_id:
            return  # ended, or dialled already (by a worker that came first)
        persona, properties = self.calls.join_properties(call)
        # The phone leg joins as PSTN_UID, the uid the agent listens to (remote_rtc_uids).
        token = build_rtc_token(self.settings.agora_app_id, self.settings.agora_app_certificate,
                                call.channel, self.settings.pstn_uid)
        extra = {"call_id": call.id, "channel": call.channel, "agent_name": call.agent_name,
                 "persona": persona.name}
        try:
            agent_id = self.convoai.place_call(
                call.agent_name, to_number=call.called_number or "",
                from_number=call.caller_number or "", rtc_uid=str(self.settings.pstn_uid),
                rtc_token=token, properties=properties)
        except ConvoAIError as exc:
            self._failed(call, exc, extra)
            return
        self.store.record_event(call.id, SOURCE, PLACED, {"agent_id": agent_id})
        outcome = self.store.agent_started(call.id, agent_id)
        if outcome == "active":
            metrics.agent_start(self.store.clock() - call.created_at)
        logger.info("outbound.placed", extra={**extra, "agent_id": agent_id, "then": outcome})
        if outcome == "stop":
            # Ended while /call was in flight (an operator's hang-up, say): end the leg too.
            self.hang_up(call, agent_id, source="service")
            self.calls.stop_agent(call.id, agent_id)

    def _failed(self, call: CallRecord, exc: ConvoAIError, extra: dict[str, Any]) -> None:
        # The error's kind and status only: its detail may quote the numbers dialled.
        self.store.record_event(call.id, SOURCE, "outbound_failed",
                                {"error": exc.kind, "status": exc.status})
        logger.warning("outbound.failed", extra={**extra, "error": exc.kind,
                                                 "status": exc.status})
        ended, _ = self.store.end_call(call.id, "outbound_failed")
        if ended and exc.status is not None and exc.status < 500:
            # Refused: no agent was started. After a 5xx or no answer at all one may have
            # been, so the sweeper looks for it by name once the call's lease runs out.
            self.store.agent_stopped(call.id, already_gone=True)

    # -- hanging up ----------------------------------------------------------------------------

    def placed(self, call: CallRecord) -> bool:
        """Whether ConvoAI's telephony dialled this call (its phone leg is hung up there)."""
        return call.direction == "outbound" and not call.gateway_callid and \
            PLACED in self.store.event_kinds(call.id, SOURCE)

    def hang_up(self, call: CallRecord, agent_id: str, *, source: str) -> None:
        """Hang up the phone leg of a call it placed, whose agent is ``agent_id``. Its timeline
        says so as ``source`` (who asked): ``convoai_hung_up``, or ``convoai_hangup_failed``,
        which is not raised: stopping the agent ends that leg too."""
        try:
            hung_up = self.convoai.hang_up_call(agent_id)
        except ConvoAIError as exc:
            self.store.record_event(call.id, source, "convoai_hangup_failed",
                                    {"error": exc.kind, "status": exc.status})
            return
        self.store.record_event(call.id, source, "convoai_hung_up",
                                {"agent_id": agent_id, "already_gone": not hung_up})

    # -- NCS 201/202 ---------------------------------------------------------------------------

    def call_state(self, event: CallStateEvent, *, notice_id: str) -> dict[str, Any]:
        """Put a call state on its call's timeline; a HANGUP ends the call. A repeated
        delivery is recorded once (the notices ledger) and ends nothing twice."""
        if not is_our_agent(self.settings.agent_name_prefix, event.labels, event.name):
            return {"status": "ignored", "reason": "not an agent of this service"}
        call = self._find(event)
        if call is None:
            return {"status": "ignored", "outcome": "unknown_call",
                    "reason": "no call of this service has this agent or channel"}
        detail: dict[str, Any] = {"agent_id": event.agent_id, "report_ms": event.report_ms}
        if event.reason:
            detail["reason"] = event.reason
        outcome = self.store.apply_agent_event(
            notice_id=notice_id, event_type=event.event_type, kind=event.kind, call_id=call.id,
            agent_id=event.agent_id, detail=detail, agent_left=False)
        logger.info("outbound.call_state", extra={"call_id": call.id, "state": event.state,
                                                  "agent_id": event.agent_id,
                                                  "outcome": outcome})
        if outcome == "recorded" and event.state == "HANGUP":
            seen = self.store.event_kinds(call.id, SOURCE)
            outcome = self._end(call, hangup_end_reason(event.direction, seen))
        return {"status": "ignored" if outcome == "duplicate_notice" else "ok",
                "outcome": outcome, "call_id": call.id}

    def _find(self, event: CallStateEvent) -> CallRecord | None:
        """By our label, else the agent, else the channel: a 202 START may come before the
        /call's answer has given the call its agent id."""
        call_id = event.labels.get("call_id")
        call = self.store.get_call(call_id) if call_id else None
        if call is None and event.agent_id:
            call = self.store.call_by_agent_id(event.agent_id)
        if call is None and event.channel:
            found = self.store.calls_in_channel(event.channel)
            call = found[-1] if found else None
        return call

    def _end(self, call: CallRecord, reason: str) -> str:
        ended, agent_id = self.store.end_call(call.id, reason)
        if not ended:
            return "already_ended"
        if agent_id:
            # Off the webhook's request: the leave (ConvoAI's agent goes with the leg anyway,
            # so usually a 404) must not hold NCS's answer.
            self.calls.run_in_background(self.calls.stop_agent, call.id, agent_id)
        return "call_ended"
