"""The ConvoAI join body: built in one place, from the settings and the call.

Until personas arrive, the agent is "Jack", the friendly support agent of Agora's sample, on an
OpenAI-compatible LLM and ElevenLabs TTS. Every body is checked against convoai/join_schema.json
(written from Agora's current join schema) by the tests.
"""

from __future__ import annotations

from typing import Any

from config import Settings
from convoai.tokens import build_rtc_token

SYSTEM_PROMPT = (
    "You are Jack, a friendly and patient customer support agent answering a phone line. "
    "You are an AI assistant and say so if asked. Speak in short, natural sentences, one idea "
    "at a time, because the caller hears you rather than reads you: no lists, no markdown, no "
    "emoji. Find out what the caller needs, gather what a support ticket would need (their name, "
    "the product or account, and what went wrong), repeat the important details back, and tell "
    "them what happens next. If you do not know something, say so instead of guessing."
)
GREETING = "Hi, this is Jack, an AI assistant for customer support. How can I help you today?"
FAILURE_MESSAGE = "Sorry, I'm having trouble right now. Please hold on a moment."


def agent_name(prefix: str, call_id: str) -> str:
    """The agent's ConvoAI name: deterministic per call, so a retried join hits 409 instead of
    starting a second agent, and prefixed so the service can recognise its own agents."""
    return f"{prefix}-{call_id}"


def build_join_properties(settings: Settings, *, call_id: str, channel: str) -> dict[str, Any]:
    """The ``properties`` of the join request for the agent of one call."""
    token = build_rtc_token(
        settings.agora_app_id, settings.agora_app_certificate, channel, settings.agent_uid,
        with_rtm=settings.enable_rtm,
    )
    return {
        "channel": channel,
        "token": token,
        "agent_rtc_uid": str(settings.agent_uid),
        "remote_rtc_uids": [str(settings.pstn_uid)],
        "enable_string_uid": False,
        # The agent must outlive a caller's short network drop: the service's rejoin grace window
        # keeps the call open that long, so the agent's own idle exit must not come first.
        "idle_timeout": max(settings.agent_idle_timeout_s, settings.rejoin_grace_s),
        "labels": {"call_id": call_id, "service": settings.agent_name_prefix},
        "advanced_features": {"enable_rtm": settings.enable_rtm},
        "llm": {
            "url": settings.llm_url,
            "api_key": settings.openai_api_key,
            "style": "openai",
            "system_messages": [{"role": "system", "content": SYSTEM_PROMPT}],
            "greeting_message": GREETING,
            "failure_message": FAILURE_MESSAGE,
            "max_history": 32,
            "params": {"model": settings.llm_model},
        },
        "tts": {
            "vendor": "elevenlabs",
            "params": {
                "key": settings.elevenlabs_api_key,
                "model_id": settings.elevenlabs_model_id,
                "voice_id": settings.elevenlabs_voice_id,
                "base_url": settings.elevenlabs_base_url,
            },
        },
        "asr": {"vendor": "ares", "language": settings.asr_language},
    }
