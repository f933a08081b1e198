"""The SIP gateway side of calls: ring-time lookup, the gateway's own events, outbound calls and
call control. No Flask here; sip/views.py adapts it to HTTP and sip/cli.py to the shell."""

from __future__ import annotations

import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from calls import lifecycle
from calls.service import CallService
from config import Settings
from convoai.tokens import build_rtc_token
from ncs.events import CallStateEvent
from observability import metrics
from personas import Registry
from sip.client import GatewayClient
from sip.convoai_dialer import ConvoAIDialer
from sip.errors import CallNotFound, GatewayError, GatewayRejected
from sip.inputs import dial_options, text_variables
from sip.lines import Lines
from sip.numbers import e164, number_key
from sip.payload import mask_number
from sip.reservations import Reservations
from store import CallRecord, Store, StoreUnavailable
from upstream.errors import UpstreamFailure

logger = logging.getLogger(__name__)

#: Gateway events that end the phone leg. call_hangup is documented as always sent, but the
#: gateway never retries, so NCS's leave remains the other signal.
HANGUP_EVENTS = frozenset({"call_hangup"})


def count_gateway_failure(error: UpstreamFailure) -> None:
    """The gateway client's failure hook: an action that failed for good, counted once."""
    metrics.upstream_error("sip_gateway", error.kind)


class Refusal(Exception):
    """The call is refused (the gateway is answered 404): the number is unknown, or the line is
    at its concurrency cap and no agent could come."""


class NoPhoneLeg(Exception):
    """The call has no leg at the SIP gateway (yet): it cannot be transferred or sent DTMF."""


class GuardRefused(Exception):
    """An outbound call would break a cost guard (calls/guards.py); nothing was dialled."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the {reason} cost guard is reached; no call was placed")
        self.reason = reason


@dataclass(frozen=True)
class Placed:
    """An outbound call that has been accepted (the dialling happens after the answer)."""

    call: CallRecord


class SipService:
    """Lookups, gateway events, outbound calls and call control, on top of CallService; the
    dial-in reservations are ``reservations`` (sip/reservations.py), the lookup's numbers
    ``lines`` (sip/lines.py)."""

    def __init__(self, settings: Settings, store: Store, calls: CallService,
                 personas: Registry, gateway: GatewayClient, *,
                 run_async: bool = True) -> None:
        self.settings = settings
        self.store = store
        self.calls = calls
        self.personas = personas
        self.gateway = gateway
        #: OUTBOUND_BACKEND=convoai's dialer; it also hangs up and follows the calls it placed.
        self.convoai_dialer = ConvoAIDialer(settings, store, calls)
        self.reservations = Reservations(settings, store, personas, gateway)
        self.lines = Lines(store, personas)
        # Outbound dialling waits for the callee to answer; it runs off the request unless the
        # platform allows no work after the response (then the request waits: see docs/sip.md).
        self.pool = ThreadPoolExecutor(32, thread_name_prefix="outbound") if run_async else None

    def events_url(self, base: str | None) -> str | None:
        """Where the gateway sends a call's lifecycle events: PUBLIC_URL (else ``base``, the
        address a request came in on) and SIP_EVENTS_TOKEN; None when they are off."""
        token = self.settings.sip_events_token
        base = self.settings.public_url or base
        if not token or not base:
            return None
        return f"{base.rstrip('/')}/sip/events/{token}"

    # -- ring-time lookup ----------------------------------------------------------------------

    def lookup(self, *, did: str, pin: str, callerid: str, callid: str,
               events_url: str | None) -> dict[str, str]:
        """Route an incoming call: a fresh channel and token for the caller's leg, the call
        recorded with its numbers and persona, and (START_AGENT_ON_LOOKUP) its agent started."""
        try:
            called = number_key(did)
        except ValueError:
            # Not a number a line can have: the gateway is told no as for an unknown one (404
            # is the only refusal it knows).
            raise Refusal("the called number is not one a line can have") from None
        line = self.store.get_line(called)
        if line is None:
            raise Refusal(f"no line is registered for {mask_number(called)}")
        refused = self.calls.admission()
        if refused:
            # Refused at ring time: the gateway turns the caller away, so no silent channel.
            self.calls.refused(None, refused, called_number=mask_number(called))
            raise Refusal(f"the {refused} cost guard is reached")
        try:
            caller = number_key(callerid)
        except ValueError:
            caller = None  # withheld or unreadable: the call still goes ahead
        channel = f"line_{secrets.token_hex(8)}"
        # A PIN the caller entered may choose the persona (several services on one number).
        persona = self.personas.route(channel, persona=line["pins"].get(pin) or line["persona"])
        variables = {**line["variables"], "called_number": called}
        if caller:
            variables["caller_number"] = caller
        early = self.settings.start_agent_on_lookup
        call = self.store.create_call(
            channel=channel, direction="inbound",
            state=lifecycle.STARTING if early else lifecycle.PENDING, persona=persona.name,
            agent_name_prefix=self.settings.agent_name_prefix, new_id=self.calls.new_id,
            caller_uid=self.settings.pstn_uid, caller_number=caller, called_number=called,
            gateway_callid=callid or None, variables=variables)
        logger.info("sip.lookup", extra={"call_id": call.id, "channel": channel,
                                         "persona": persona.name, "early_agent": early})
        if early:
            self.calls.start_in_background_or_inline(call)
        answer = {
            "token": build_rtc_token(self.settings.agora_app_id,
                                     self.settings.agora_app_certificate, channel,
                                     self.settings.pstn_uid),
            "uid": str(self.settings.pstn_uid), "channel": channel, "audio_scenario": "10",
        }
        if events_url:
            answer["webhook_url"] = events_url
        return answer

    # -- the gateway's lifecycle events --------------------------------------------------------

    def gateway_event(self, event: dict[str, Any]) -> str:
        """Put a gateway event on its call's timeline; a hang-up ends the call (a second signal
        beside NCS's leave). Returns the outcome."""
        kind = str(event.get("event") or "")
        callid = event.get("callid") if isinstance(event.get("callid"), str) else None
        channel = event.get("channel") if isinstance(event.get("channel"), str) else None
        call = self.store.find_gateway_call(callid, channel)
        if call is None:
            return "unknown_call"
        detail = {k: event[k] for k in ("callid", "hangup_cause", "duration", "billsec",
                                        "sip_disposition", "digits", "direction", "reason")
                  if isinstance(event.get(k), str | int | bool)}
        self.store.record_event(call.id, "gateway", kind or "unknown", detail)
        if callid and not call.gateway_callid:
            self.store.set_gateway_callid(call.id, callid)
        if kind in HANGUP_EVENTS:
            cause = str(event.get("hangup_cause") or "hangup").lower()
            return self._end(call, f"gateway_{cause}"[:64])
        return "recorded"

    # -- outbound ------------------------------------------------------------------------------

    def place_outbound(self, *, to: str, caller_id: str | None, persona: str | None,
                       variables: dict[str, str], region: str, prompt: str,
                       events_url: str | None) -> Placed:
        """Record the call and start dialling (after the answer when run_async)."""
        region, prompt = dial_options(region, prompt)
        call = self.outbound_call(to=to, caller_id=caller_id, persona=persona,
                                  variables=variables)
        self.dial(call, region=region, prompt=prompt, events_url=events_url)
        return Placed(call)

    def outbound_call(self, *, to: str, caller_id: str | None, persona: str | None,
                      variables: dict[str, str] | None, state: str = lifecycle.STARTING,
                      guard: bool = True) -> CallRecord:
        """Check an outbound call's numbers, persona and variables (ValueError) and, with
        ``guard``, the cost guards (GuardRefused), and record it in ``state``: ``starting`` to
        dial now, or ``scheduled`` for a dial later (outbound/)."""
        persona = self.personas.known(persona)
        variables = text_variables(variables) or {}
        callee = e164(to)
        if not caller_id:
            raise ValueError("from is required (or set OUTBOUND_CALLER_ID): the number the "
                             "callee sees")
        caller = e164(caller_id)
        if guard:
            self.check_guards()
        channel = f"out_{secrets.token_hex(8)}"
        chosen = self.personas.route(channel, persona=persona)
        return self.store.create_call(
            channel=channel, direction="outbound", state=state,
            persona=chosen.name, agent_name_prefix=self.settings.agent_name_prefix,
            new_id=self.calls.new_id, caller_uid=self.settings.pstn_uid, caller_number=caller,
            called_number=callee,
            variables={**variables, "called_number": callee, "caller_number": caller})

    def check_guards(self, call_id: str | None = None) -> None:
        """GuardRefused (and the refusal recorded) when a cost guard keeps a call from being
        dialled now."""
        refused = self.calls.admission()
        if refused:
            self.calls.refused(call_id, refused, direction="outbound")
            raise GuardRefused(refused)

    def dial(self, call: CallRecord, *, region: str, prompt: str,
             events_url: str | None) -> None:
        """Dial a recorded outbound call (``starting``): off the request when run_async."""
        job = (call, region, prompt, events_url)
        if self.pool is None:
            self._dial(*job)
        else:
            self.pool.submit(self._dial_logged, *job)

    def _dial_logged(self, *job: Any) -> None:
        try:
            self._dial(*job)
        except Exception:
            logger.exception("sip.outbound_failed", extra={"call_id": job[0].id})

    def _dial(self, call: CallRecord, region: str, prompt: str, events_url: str | None) -> None:
        try:
            if self.settings.outbound_backend == "convoai":
                # One /call starts the agent and dials; region, prompt and the gateway's events
                # URL are the gateway's alone. (Stopping its agent ends its leg too.)
                self.convoai_dialer.dial(call)
                return
            callid = self._ring(call, region, prompt, events_url)
        except Exception:
            # The refusals and failures the dialling expects end the call where they happen;
            # any other, before the callee answered, ends it here, so no agent waits in a
            # channel that no phone leg will join.
            self._end(call, "outbound_failed")
            raise
        if callid is not None:
            self._answered(call, callid)

    def _answered(self, call: CallRecord, callid: str) -> None:
        """Note the answered leg; hang it up if the call ended while the gateway rang."""
        try:
            self.store.set_gateway_callid(call.id, callid)
            self.store.record_event(call.id, "gateway", "outbound_answered", {"callid": callid})
            current = self.store.get_call(call.id)
        except StoreUnavailable as exc:
            # The callee answered and the call goes on (an error here would make a caller of
            # the API dial again); the gateway's events find it by its channel and note the leg.
            logger.warning("sip.outbound_not_noted", extra={"call_id": call.id,
                                                            "error": str(exc)})
            return
        if current is not None and current.state not in lifecycle.LIVE_STATES:
            # Ended while the gateway rang (an operator's hang-up, say), when there was no leg
            # to hang up yet: the answered callee must not be left in an empty channel.
            try:
                self.hang_up_leg(current, source="service")
            except GatewayError as exc:
                logger.warning("sip.hangup_failed", extra={"call_id": call.id,
                                                           "reason": exc.kind})

    def _ring(self, call: CallRecord, region: str, prompt: str,
              events_url: str | None) -> str | None:
        """Start the agent, then have the gateway ring the callee: the leg's gateway call id
        once answered, or None with the call ended (a start or a dial that failed)."""
        # The agent first, so it is in the channel when the callee picks up.
        self.calls.start_agent(call.id, call)
        current = self.store.get_call(call.id)
        if current is None or current.state not in lifecycle.LIVE_STATES:
            return None  # the start failed or was refused; the call is already closed
        token = build_rtc_token(self.settings.agora_app_id, self.settings.agora_app_certificate,
                                call.channel, self.settings.pstn_uid)
        try:
            result = self.gateway.outbound(
                channel=call.channel, region=region, to=call.called_number,
                caller_id=call.caller_number, prompt=prompt, token=token,
                uid=self.settings.pstn_uid, webhook_url=events_url, audio_scenario="10")
        except GatewayRejected as exc:
            self.store.record_event(call.id, "gateway", "outbound_rejected",
                                    {"reason": exc.reason})
            self._end(call, f"outbound_{(exc.reason or 'rejected').lower()}"[:64])
            return None
        except GatewayError as exc:
            self.store.record_event(call.id, "gateway", "outbound_failed",
                                    {"error": type(exc).__name__, "status": exc.status})
            self._end(call, "outbound_failed")
            return None
        return result.callid

    # -- call control --------------------------------------------------------------------------

    def hangup(self, call: CallRecord) -> str:
        """The operator's hang-up: end the call, hang up its phone leg, stop its agent.

        The call is ended as the operator's first: the hang-up's echo (NCS's caller leave, the
        gateway's ``call_hangup``, ConvoAI's ``HANGUP``) can reach another worker before this
        request is done, and a call keeps its first end reason. A gateway that fails raises
        (502) with the call ended and its agent stopped; the gateway is asked again whenever
        the operator hangs up again, even once the call has ended."""
        ended, agent_id = self.store.end_call(call.id, "operator_hangup")
        try:
            # The gateway is asked on every hang-up, so a failed one is retried by hanging up
            # again; ConvoAI's leg only with the agent this hang-up ends (stopping it ends the
            # leg as well).
            if call.gateway_callid or (ended and agent_id):
                self.hang_up_leg(call, source="service", agent_id=agent_id)
        finally:
            if ended and agent_id:
                self.calls.stop_agent(call.id, agent_id)
        return "call_ending" if ended else "already_ended"

    def hang_up_leg(self, call: CallRecord, *, source: str, agent_id: str | None = None) -> None:
        """Hang up the call's phone leg; its timeline says so as ``source`` (who asked).

        At the SIP gateway: ``gateway_hung_up`` (a leg gone already too), or
        ``gateway_hangup_failed`` and the GatewayError raised. At ConvoAI's telephony, for a
        call it dialled (``agent_id``, else the call's agent): ``convoai_hung_up``, or
        ``convoai_hangup_failed``, not raised (stopping the agent ends that leg too). Any other
        call has no leg of ours to hang up."""
        if call.gateway_callid:
            try:
                self.gateway.end_call(call.gateway_callid)
            except CallNotFound:
                pass  # gone already: hung up
            except GatewayError as exc:
                self.store.record_event(call.id, source, "gateway_hangup_failed",
                                        {"error": exc.kind, "status": exc.status})
                raise
            self.store.record_event(call.id, source, "gateway_hung_up", None)
            return
        if not self.convoai_dialer.placed(call):
            return
        # The record the caller holds may predate the agent's start.
        agent_id = agent_id or call.agent_id or (self.store.get_call(call.id) or call).agent_id
        if not agent_id:
            return
        self.convoai_dialer.hang_up(call, agent_id, source=source)

    def convoai_call_state(self, event: CallStateEvent, *, notice_id: str) -> dict[str, Any]:
        """NCS 201/202: ConvoAI's telephony reports a phone leg's state (convoai_dialer.py)."""
        return self.convoai_dialer.call_state(event, notice_id=notice_id)

    def transfer(self, call: CallRecord, destination: str, leg: str | None = None) -> str:
        """Transfer the phone leg; ``destination`` and ``leg`` as :func:`transfer_target`
        returned them."""
        if not call.gateway_callid:
            raise NoPhoneLeg(f"call {call.id} has no gateway call id: it is not a phone call yet")
        self.gateway.transfer(call.gateway_callid, destination, leg=leg)
        self.store.record_event(call.id, "service", "transferred",
                                {"destination": mask_number(destination)})
        # The gateway's REFER takes the caller elsewhere; the agent's part is over.
        return self._end(call, "transferred")

    def send_dtmf(self, call: CallRecord, digits: str) -> None:
        """Play ``digits`` (as :func:`dtmf_digits` returned them) on the phone leg."""
        if not call.gateway_callid:
            raise NoPhoneLeg(f"call {call.id} has no gateway call id: it is not a phone call yet")
        self.gateway.send_dtmf(call.gateway_callid, digits)
        self.store.record_event(call.id, "service", "dtmf_sent", {"count": len(digits)})

    def end(self, call: CallRecord, reason: str) -> str:
        """End a call that has no phone leg to hang up (its dial was lost)."""
        return self._end(call, reason)

    def _end(self, call: CallRecord, reason: str) -> str:
        ended, agent_id = self.store.end_call(call.id, reason)
        if not ended:
            return "already_ended"
        if agent_id:
            self.calls.stop_agent(call.id, agent_id)
        return "call_ending"
