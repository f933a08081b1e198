"""Answering machines on the sandbox's phone network (sandbox/phone_network.py ``voicemail``).

An outbound call to a voicemail number is answered and bridged like a person's (sip_outbound.py),
but the callee is a machine. Once the channel's agent is running (and done connecting to its
MCP servers), the machine's greeting reaches it as the user's first utterance, so it is in the
agent's history and in the 103 the service stores as the transcript. An LLM that hears a
voicemail greeting and was given ``end_call`` hangs up: the sandbox's agent, which has no LLM,
does the same through the join's MCP server, with ``{"reason": "voicemail"}``. Without
``end_call`` nothing more happens, and the machine hangs up after the sandbox's call duration
like any callee.

Whichever comes first works: the agent joining before the call is bridged, or after.
"""

from __future__ import annotations

import logging

from sandbox.agent_tools import AgentTools, Spawn
from sandbox.conversation import CONNECTING
from sandbox.errors import AgoraError
from sandbox.sip_models import GatewayCall, e164
from sandbox.state import World

logger = logging.getLogger("sandbox")
WAITING, PLAYED, MISSED = "waiting", "played", "missed"
#: The tool a real LLM would call on hearing a machine, and what it would say why.
END_CALL = "end_call"
END_ARGUMENTS = {"reason": "voicemail"}


def greeting(call: GatewayCall) -> str:
    """What the machine says when it picks up."""
    return (f"Hi, you've reached {e164(call.to)}. I can't take your call right now, so please "
            "leave a message after the tone.")


class Voicemail:
    """Plays each waiting machine's greeting to its channel's agent (driven by the ticker)."""

    def __init__(self, world: World, tools: AgentTools, *, spawn: Spawn) -> None:
        self.world, self.tools, self.spawn = world, tools, spawn

    def tick(self) -> None:
        due: list[tuple[str, str, bool]] = []
        with self.world.lock:
            for call in self.world.sip_calls.values():
                if call.voicemail != WAITING:
                    continue
                if not call.live:
                    call.voicemail = MISSED
                    continue
                agent = next((a for a in self.world.agents.values()
                              if a.channel == call.channel and a.remote_uid == call.uid
                              and a.status == "RUNNING" and a.tools_state not in CONNECTING),
                             None)
                if agent is None or call.state != "bridged":
                    continue
                call.voicemail = PLAYED
                ends = any(tool["name"] == END_CALL for tool in agent.tools)
                due.append((agent.agent_id, greeting(call), ends))
        for agent_id, said, ends in due:
            # Off the ticker: calling a tool is a request to the service's MCP endpoint.
            self.spawn(lambda a=agent_id, s=said, e=ends: self._play(a, s, e))

    def _play(self, agent_id: str, said: str, ends: bool) -> None:
        try:
            if ends:
                self.tools.say(agent_id, said, END_CALL, END_ARGUMENTS)
            else:
                self.tools.say(agent_id, said)
        except AgoraError:  # the agent stopped in the meantime: nobody is left to hear it
            logger.info("sandbox.voicemail_unheard", extra={"agent_id": agent_id})
