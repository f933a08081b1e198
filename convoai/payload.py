"""The ConvoAI join body: built in one place, from the settings, the call's persona and the call.

The persona (personas/) says who the agent is and which vendors it uses; the settings say where
it runs (uids, token, RTM); the call adds its id, channel and template variables. The body is
checked against convoai/join_schema.json when a persona loads and again by the tests.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from convoai.tokens import build_rtc_token

if TYPE_CHECKING:
    from config import Settings
    from personas.model import Persona

REDACTED = "***"

#: Template variables the service sets on every call; a persona cannot define them itself.
CALL_VARIABLES = ("persona", "local_date", "local_time", "timezone")
#: Set per call when known; a persona may give a default ("not known") to use them in its text.
OPTIONAL_CALL_VARIABLES = ("caller_number", "called_number")

#: Field names whose values are credentials, whatever the vendor calls them. Matched
#: case-insensitively, plus any name ending in one of SECRET_SUFFIXES.
SECRET_FIELDS = frozenset({
    "token", "key", "api_key", "apikey", "secret", "password", "credentials",
    "authorization", "api-key", "x-api-key", "adc_credentials_string",
    "api_subscription_key", "aws_access_key_id", "aws_secret_access_key", "access_key_id",
    "secret_access_key", "access_key_secret", "secret_key", "secret_id",
})
SECRET_SUFFIXES = ("_key", "_secret", "_token", "_password", "_credentials")


def is_secret_field(name: str) -> bool:
    """Whether a field of this name holds a credential (and so must never be printed)."""
    lowered = name.lower()
    return lowered in SECRET_FIELDS or lowered.endswith(SECRET_SUFFIXES)


def is_our_agent(prefix: str, labels: Mapping[str, Any], name: str | None) -> bool:
    """Whether an agent ConvoAI tells us about is this service's: by the ``service`` label the
    join gives it, or by its name (see :func:`agent_name`)."""
    return labels.get("service") == prefix or (name or "").startswith(f"{prefix}-")


def agent_name(prefix: str, call_id: str) -> str:
    """The agent's ConvoAI name: deterministic per call, so a retried join hits 409 instead of
    starting a second agent, and prefixed so the service can recognise its own agents."""
    return f"{prefix}-{call_id}"


def build_join_properties(
    settings: Settings,
    persona: Persona,
    *,
    call_id: str,
    channel: str,
    variables: Mapping[str, str] | None = None,
    now: datetime | None = None,
    mcp_server: Mapping[str, Any] | None = None,
    direction: str | None = "inbound",
) -> dict[str, Any]:
    """The ``properties`` of the join request for the agent of one call.

    ``variables`` are the call's template variables (``caller_number``, ``called_number`` and the
    number's own variables); ``now`` (default: the current time) gives ``local_date`` and
    ``local_time`` in TIMEZONE; ``mcp_server`` (:func:`mcp_server_entry`) gives the agent the
    persona's tools; ``direction`` (the call's) picks the greeting: an outbound call gets the
    persona's ``[outbound]`` greeting, which says it is an AI calling on someone's behalf.
    """
    token = agent_token(settings, channel)
    template = template_variables(persona, variables, now=now, timezone=settings.timezone)
    properties = {
        "channel": channel,
        "token": token,
        "agent_rtc_uid": str(settings.agent_uid),
        "remote_rtc_uids": [str(settings.pstn_uid)],
        "enable_string_uid": False,
        # The agent must outlive a caller's short network drop: the service's rejoin grace window
        # keeps the call open that long, so the agent's own idle exit must not come first.
        "idle_timeout": max(persona.idle_timeout, settings.rejoin_grace_s),
        "labels": {**persona.labels, "call_id": call_id, "service": settings.agent_name_prefix,
                   "persona": persona.name},
        "advanced_features": {"enable_rtm": settings.enable_rtm},
        **persona_properties(persona, template),
    }
    properties["llm"]["greeting_message"] = persona.greeting_for(direction)
    if mcp_server is not None:
        properties["advanced_features"]["enable_tools"] = True
        properties["llm"]["mcp_servers"] = [dict(mcp_server)]
    return properties


#: The tools server's name in the join: at most 48 letters and digits (ConvoAI's rule).
MCP_SERVER_NAME = "phoneagent"


def mcp_server_entry(endpoint: str, token: str, tool_names: Iterable[str],
                     timeout_s: float) -> dict[str, Any]:
    """The ``llm.mcp_servers`` entry of a call whose persona has tools: this service's MCP
    endpoint, the call's bearer token, exactly the persona's tools, and how long a call to one
    may take (its slowest tool's timeout, plus a margin for the network)."""
    return {
        "name": MCP_SERVER_NAME,
        "endpoint": endpoint,
        "transport": "streamable_http",
        "headers": {"Authorization": f"Bearer {token}"},
        "allowed_tools": list(tool_names),
        "timeout_ms": int((timeout_s + 2) * 1000),
    }


def agent_token(settings: Settings, channel: str) -> str:
    """A fresh 007 token for the agent's uid in ``channel``: the join's, and the one a renewal
    (ConvoAI's event 104, ``/update``) sends."""
    return build_rtc_token(
        settings.agora_app_id, settings.agora_app_certificate, channel, settings.agent_uid,
        with_rtm=settings.enable_rtm,
    )


def persona_properties(persona: Persona, template: Mapping[str, str]) -> dict[str, Any]:
    """The persona's part of the body: llm, tts, asr, turn taking and session parameters."""
    llm: dict[str, Any] = {"url": persona.llm["url"]}
    if persona.llm.get("api_key") is not None:
        llm["api_key"] = persona.llm["api_key"]
    llm["style"] = persona.llm["style"]
    if persona.llm.get("vendor"):
        llm["vendor"] = persona.llm["vendor"]
    llm.update({
        "system_messages": [{"role": "system", "content": persona.prompt}],
        "greeting_message": persona.greeting,
        "failure_message": persona.failure_message,
        "max_history": persona.llm["max_history"],
        "params": {**({"model": persona.llm["model"]} if persona.llm.get("model") else {}),
                   **copy.deepcopy(persona.llm.get("params", {}))},
        "template_variables": dict(template),
    })
    if persona.llm.get("headers"):
        llm["headers"] = dict(persona.llm["headers"])

    parameters: dict[str, Any] = {"opt_out": persona.opt_out}
    if persona.silence_reminder:
        parameters["silence_config"] = {"timeout_ms": persona.silence_timeout_s * 1000,
                                        "action": "speak", "content": persona.silence_reminder}
    # On a stop, let the agent finish what it is saying: a goodbye is not cut off mid-word.
    parameters["farewell_config"] = {"graceful_enabled": True}

    out: dict[str, Any] = {"llm": llm, "tts": copy.deepcopy(dict(persona.tts)),
                           "asr": copy.deepcopy(dict(persona.asr))}
    if persona.turn_detection:
        out["turn_detection"] = copy.deepcopy(dict(persona.turn_detection))
    if persona.interruption:
        out["interruption"] = copy.deepcopy(dict(persona.interruption))
    out["parameters"] = parameters
    return out


def template_variables(
    persona: Persona,
    variables: Mapping[str, str] | None = None,
    *,
    now: datetime | None = None,
    timezone: str = "UTC",
) -> dict[str, str]:
    """The call's ``llm.template_variables``: the persona's defaults, then the call's own
    variables (empty values are left out, so a default stays), then what the service knows.
    A persona with a diary is told the date and time in the diary's zone, not TIMEZONE."""
    if persona.booking is not None:
        timezone = persona.booking.timezone
    zone = ZoneInfo(timezone)
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone)
    out = dict(persona.variables)
    out.update({k: str(v) for k, v in (variables or {}).items() if v is not None and str(v)})
    out.update({
        "persona": persona.name,
        # Spelled out for the model, which says it aloud in the caller's words.
        "local_date": f"{local:%A} {local.day} {local:%B %Y}",
        "local_time": f"{local:%H:%M}",
        "timezone": timezone,
    })
    return out


def redact_properties(properties: Mapping[str, Any],
                      secrets: Iterable[str] = ()) -> dict[str, Any]:
    """A copy of ``properties`` with every secret replaced by ``***``: the token, every field
    named like a credential (key, api_key, ...), and any string equal to or containing one of
    ``secrets`` (the values a persona read from the environment)."""
    values = sorted({s for s in secrets if s}, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(s) for s in values if len(s) >= 4)) if any(
        len(s) >= 4 for s in values) else None
    exact = set(values)

    def scrub(node: Any, name: str = "") -> Any:
        if isinstance(node, Mapping):
            return {k: scrub(v, str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [scrub(item, name) for item in node]
        if isinstance(node, str):
            if (name and is_secret_field(name)) or node in exact:
                return REDACTED
            return pattern.sub(REDACTED, node) if pattern else node
        return node

    return scrub(properties)
