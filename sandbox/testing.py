"""Helpers for tests that drive the sandbox in-process (Flask test client, fake clock).

Integration tests run the real server instead (``python -m sandbox``); these are for unit tests
and for the service's tests that want a ConvoAI stand-in without sockets.
"""

from __future__ import annotations

import base64
import dataclasses
import random
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from sandbox.app import create_sandbox_app
from sandbox.clock import FakeClock
from sandbox.config import SandboxConfig
from sandbox.ncs_sender import RecordingTransport
from sandbox.runtime import Sandbox

WEBHOOK_URL = "http://127.0.0.1:1/webhook"  # never contacted: the transport only records


def basic_auth(customer_id: str, customer_secret: str) -> dict[str, str]:
    """The Authorization header ConvoAI expects."""
    token = base64.b64encode(f"{customer_id}:{customer_secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def join_body(token: str, *, name: str = "phoneagent-1a2b3c4d5e6f7a8b", channel: str = "room-1",
              agent_uid: str = "222", caller_uid: str = "111") -> dict[str, Any]:
    """A join body shaped like the one the service sends (ElevenLabs TTS, OpenAI LLM)."""
    return {
        "name": name,
        "properties": {
            "channel": channel, "token": token, "agent_rtc_uid": agent_uid,
            "remote_rtc_uids": [caller_uid], "enable_string_uid": False, "idle_timeout": 60,
            "labels": {"call_id": "1a2b3c4d5e6f7a8b", "service": "phoneagent"},
            "llm": {
                "url": "https://api.openai.com/v1/chat/completions", "api_key": "sk-test-llm",
                "style": "openai",
                "system_messages": [{"role": "system", "content": "You answer the phone."}],
                "greeting_message": "Hello, how can I help?",
                "failure_message": "Sorry, something went wrong.", "max_history": 32,
                "params": {"model": "gpt-4o-mini"},
            },
            "tts": {"vendor": "elevenlabs", "params": {
                "key": "el-test-key", "model_id": "eleven_flash_v2_5", "voice_id": "voice-1",
                "base_url": "wss://api.elevenlabs.io/v1"}},
            "asr": {"vendor": "ares", "language": "en-US"},
            "parameters": {"opt_out": False},
        },
    }


@dataclass
class Harness:
    """An in-process sandbox with a fake clock and a recording NCS transport."""

    app: Flask
    client: FlaskClient
    clock: FakeClock
    transport: RecordingTransport
    sandbox: Sandbox

    @property
    def config(self) -> SandboxConfig:
        return self.sandbox.config

    @property
    def headers(self) -> dict[str, str]:
        return basic_auth(self.config.customer_id, self.config.customer_secret)

    def url(self, path: str = "") -> str:
        return f"/convoai/v2/projects/{self.config.app_id}{path}"

    def advance(self, seconds: float) -> None:
        """Move time on and run the ticker once."""
        self.clock.advance(seconds)
        self.sandbox.tick()

    def token(self, channel: str = "room-1", uid: str = "222", lifetime_s: int = 3600) -> str:
        from convoai.tokens import build_rtc_token

        return build_rtc_token(self.config.app_id, self.config.app_certificate, channel, uid,
                               lifetime_s=lifetime_s, with_rtm=True)

    def body(self, **overrides: Any) -> dict[str, Any]:
        """A valid join body; ``channel``/``agent_uid`` also decide the token's identity."""
        channel = overrides.get("channel", "room-1")
        uid = overrides.get("agent_uid", "222")
        return join_body(self.token(channel, uid), **overrides)

    def join(self, body: dict[str, Any] | None = None, **overrides: Any) -> Any:
        return self.client.post(self.url("/join"), json=body or self.body(**overrides),
                                headers=self.headers)

    def leave(self, agent_id: str) -> Any:
        return self.client.post(self.url(f"/agents/{agent_id}/leave"), headers=self.headers)

    def query(self, agent_id: str) -> Any:
        return self.client.get(self.url(f"/agents/{agent_id}"), headers=self.headers)

    def events(self, product_id: int | None = None) -> list[dict[str, Any]]:
        return self.transport.bodies(product_id)


def make_harness(seed: int = 7, **config: Any) -> Harness:
    """A sandbox for one test; keyword arguments override SandboxConfig fields."""
    clock = FakeClock()
    transport = RecordingTransport(clock)
    settings = dataclasses.replace(SandboxConfig(webhook_url=WEBHOOK_URL), **config)
    # MCP connections run inline, inside the tick that makes an agent RUNNING.
    app = create_sandbox_app(settings, clock=clock, transport=transport,
                             rng=random.Random(seed), start_background=False,
                             spawn=lambda work: work())
    return Harness(app, app.test_client(), clock, transport, app.extensions["sandbox"])
