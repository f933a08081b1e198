"""The built-in call-control tools: end the call, transfer it, flag it urgent, draw tarot cards,
note that the other party opts out of calls.

Each returns a :class:`Done` (the text the agent reads, what to record, whether it is an
error). Their arguments have been checked against their schemas (tools/catalog.py) already.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from calls import lifecycle
from personas.model import Persona
from sip.errors import GatewayError
from sip.numbers import e164
from sip.payload import mask_number
from sip.service import NoPhoneLeg, SipService
from store import CallRecord
from tools.spec import Done
from tools.tarot import DECK, positions

logger = logging.getLogger(__name__)

#: The system's CSPRNG: the cards a caller is read must not be predictable.
CARD_RNG = secrets.SystemRandom()


class BuiltinTools:
    def __init__(self, sip: SipService) -> None:
        self.sip = sip
        self.calls = sip.calls
        self.store = sip.store

    def run(self, name: str, call: CallRecord, persona: Persona,
            arguments: Mapping[str, Any]) -> Done:
        if call.state == lifecycle.STOPPING:
            return Done("call_ending", "The call is already ending.")
        return getattr(self, name)(call, persona, arguments)

    def end_call(self, call: CallRecord, persona: Persona,
                 arguments: Mapping[str, Any]) -> Done:
        ended, agent_id = self.store.end_call(call.id, "agent_ended")
        if not ended:
            return Done("call_ending", "The call is already ending.")
        reason = str(arguments.get("reason") or "")[:200]
        self.store.record_event(call.id, "agent", "agent_ended_call",
                                {"reason": reason} if reason else None)
        # After the answer: the agent finishes its sentence (a graceful stop), then the phone
        # leg is hung up so the caller is not left in silence.
        self.calls.run_in_background(self._stop_then_hang_up, call, agent_id)
        return Done("ok", "The call is ending. Do not say anything more.",
                    {"ended": True})

    def _stop_then_hang_up(self, call: CallRecord, agent_id: str | None) -> None:
        if agent_id:
            self.calls.stop_agent(call.id, agent_id)
        try:
            self.sip.hang_up_leg(call, source="service", agent_id=agent_id)
        except GatewayError as exc:  # on the timeline; the agent has gone either way
            logger.warning("tools.hangup_failed", extra={"call_id": call.id,
                                                         "reason": exc.kind})

    def transfer_call(self, call: CallRecord, persona: Persona,
                      arguments: Mapping[str, Any]) -> Done:
        name = arguments["destination"]
        number = persona.transfer_destinations.get(name)
        if number is None:  # the schema's enum already refuses it; the persona may have changed
            return Done("unknown_destination", f"There is no destination called {name}.")
        try:
            self.sip.transfer(call, number)
        except NoPhoneLeg:
            return Done("no_phone_leg", "I can't transfer this call: it is not connected "
                                        "through the phone network.")
        except GatewayError as exc:
            logger.warning("tools.transfer_failed", extra={
                "call_id": call.id, "destination": name, "to": mask_number(number),
                "reason": exc.kind})
            return Done("transfer_failed", "The transfer did not go through. Apologise, and "
                                           "offer to take a message instead.")
        return Done("ok", f"Transferring the caller to {name} now.",
                    {"transferred_to": name})

    def flag_urgent(self, call: CallRecord, persona: Persona,
                    arguments: Mapping[str, Any]) -> Done:
        summary, found = persona.redaction.text(" ".join(str(arguments["summary"]).split()))
        self.store.flag_urgent(call.id, summary[:500], redacted=found)
        return Done("ok", "The call is flagged as urgent; a person will follow it up.",
                    {"flagged": True})

    def opt_out(self, call: CallRecord, persona: Persona,
                arguments: Mapping[str, Any]) -> Done:
        """Put the other party's number on the do-not-call list: the number dialled on an
        outbound call, the caller's on an inbound one. The call goes on: the agent confirms and
        says goodbye itself."""
        try:
            number = e164(call.their_number)
        except ValueError:  # unknown, withheld, an extension or a SIP user: nothing to list
            return Done("no_number", "I could not note the number, because this call did not "
                                     "come with a phone number. Apologise, and say a person "
                                     "will make sure they are not called again.")
        added = self.store.add_suppression(number, source="opt_out", call_id=call.id)
        reason = " ".join(str(arguments.get("reason") or "").split())[:200]
        detail: dict[str, Any] = {"number": mask_number(number), "already_listed": not added}
        if reason:
            detail["reason"] = persona.redaction.text(reason)[0]
        self.store.record_event(call.id, "agent", "opted_out", detail)
        logger.info("tools.opted_out", extra={"call_id": call.id, "to": mask_number(number),
                                              "already_listed": not added})
        return Done("ok", "The number is on the do-not-call list. Tell the person they will not "
                          "be called again, then say goodbye.",
                    {"opted_out": True})

    def draw_tarot_cards(self, call: CallRecord, persona: Persona,
                         arguments: Mapping[str, Any]) -> Done:
        count = int(arguments["count"])
        spread = arguments.get("spread")
        cards = self.store.draw_tarot_cards(call.id, DECK, count, CARD_RNG)
        if cards is None:
            return Done("deck_empty", "There are not enough cards left in the deck for that.")
        drawn = [{"card": card, "reversed": rev, "position": where}
                 for (card, rev), where in zip(cards, positions(spread, count), strict=True)]
        said = "; ".join(
            (f"{d['position']}: " if d["position"] else "")
            + d["card"] + (" (reversed)" if d["reversed"] else "") for d in drawn)
        return Done("ok", f"Drew {count} card{'s' if count != 1 else ''}: {said}.",
                    {"cards": drawn, "spread": spread})
