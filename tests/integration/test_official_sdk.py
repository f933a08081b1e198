"""Issue 21, item 8: Agora's own Python SDK (PyPI agora-agents, module agora_agent, pinned in
requirements-dev.txt) drives ``python -m sandbox`` over loopback, unchanged.

The SDK is pointed at the sandbox the way it documents for another host,
``AGORA_AGENTS_API_BASE_URL``; the sandbox serves Agora's own path under it. Whatever the SDK
sends (paths, auth headers, bodies, nulls) and whatever it parses (answers, errors, pagination)
is the SDK's; if the sandbox drifts from either, these tests fail. They never reach Agora: with
the variable unset the SDK would name an agora.io host, and tests/conftest.py refuses to look
one up.
"""

from __future__ import annotations

import os
import re
import uuid
import warnings
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from sandbox.defaults import (
    SANDBOX_APP_CERTIFICATE,
    SANDBOX_APP_ID,
    SANDBOX_CUSTOMER_ID,
    SANDBOX_CUSTOMER_SECRET,
)
from tests.integration.harness import ROOT, Sandbox, free_port, wait_until

with warnings.catch_warnings():
    # pydantic warns, on import, about the v1-style config of the SDK's generated models.
    warnings.simplefilter("ignore", UserWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    from agora_agent import Agent, Agora, Area
    from agora_agent.agentkit.vendors import ElevenLabsTTS, OpenAI
    from agora_agent.core.api_error import ApiError
    from agora_agent.types.agent_error_response import AgentErrorResponse

pytestmark = pytest.mark.integration

AUTH_MODES = ("app-credentials", "basic")  # the SDK's default (a token per request) and Basic


def pinned_version() -> str:
    text = (ROOT / "requirements-dev.txt").read_text()
    return re.search(r"^agora-agents==(\S+)$", text, re.MULTILINE).group(1)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """``python -m sandbox`` with its default placeholders and no webhook."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGORA_", "SANDBOX_"))}
    env["PYTHONUNBUFFERED"] = "1"
    server = Sandbox(Path(tmp_path_factory.mktemp("sdk")), env, free_port())
    yield server
    server.process.stop()


@pytest.fixture
def connect(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``connect(auth_mode)`` -> an SDK client aimed at the sandbox."""
    monkeypatch.setenv("AGORA_AGENTS_API_BASE_URL", sandbox.url)

    def make(auth_mode: str = "app-credentials", **overrides: Any) -> Any:
        credentials: dict[str, Any] = {"app_id": SANDBOX_APP_ID,
                                       "app_certificate": SANDBOX_APP_CERTIFICATE}
        if auth_mode == "basic":
            credentials.update(customer_id=SANDBOX_CUSTOMER_ID,
                               customer_secret=SANDBOX_CUSTOMER_SECRET)
        credentials.update(overrides)
        client = Agora(area=Area.US, timeout=10, **credentials)
        assert client.auth_mode == auth_mode
        assert client.get_current_url().startswith(sandbox.url + "/")  # never agora.io
        return client

    return make


def voice_agent(client: Any) -> Any:
    """An agent as the SDK's README builds one: OpenAI LLM, ElevenLabs TTS (ARES ASR)."""
    return (
        Agent(client=client, instructions="You answer the phone.", greeting="Hello, caller!")
        .with_llm(OpenAI(api_key="sk-sdk-test", model="gpt-4o-mini",
                         base_url="https://api.openai.com/v1/chat/completions"))
        .with_tts(ElevenLabsTTS(key="el-sdk-test", model_id="eleven_flash_v2_5",
                                voice_id="voice-1", base_url="wss://api.elevenlabs.io/v1"))
    )


def new_channel() -> str:
    return f"sdk_{uuid.uuid4().hex[:10]}"


def new_name() -> str:
    return f"sdk-{uuid.uuid4().hex[:12]}"


def session(client: Any, channel: str, name: str | None = None) -> Any:
    return voice_agent(client).create_session(
        channel=channel, agent_uid="222", remote_uids=["111"], name=name or new_name())


def test_the_pinned_sdk_is_the_one_installed():
    assert metadata.version("agora-agents") == pinned_version()


@pytest.mark.parametrize("auth_mode", AUTH_MODES)
def test_agent_session_start_succeeds_unchanged(sandbox, connect, auth_mode):
    name = new_name()
    started = session(connect(auth_mode), new_channel(), name)
    agent_id = started.start()
    assert agent_id and started.status == "running"
    [join] = [r for r in sandbox.requests("join") if r["body"]["name"] == name]
    assert join["status"] == 200
    # What the SDK sends and the sandbox now accepts: null preset and pipeline_id.
    assert (join["body"]["preset"], join["body"]["pipeline_id"]) == (None, None)
    started.stop()


@pytest.mark.parametrize("auth_mode", AUTH_MODES)
def test_a_session_says_interrupts_updates_reads_history_and_stops(sandbox, connect, auth_mode):
    client = connect(auth_mode)
    name, channel = new_name(), new_channel()
    live = session(client, channel, name)
    agent_id = live.start()
    wait_until(lambda: live.get_info().status == "RUNNING", message="the agent to run")

    live.say("Please hold the line.", priority="APPEND", interruptable=False)
    live.interrupt()
    thought = live.think("The caller pressed 1.", on_listening_action="inject")
    assert (thought.agent_id, thought.channel) == (agent_id, channel)
    live.update({"llm": {"system_messages": [{"role": "system", "content": "Be brief."}],
                         "params": {"model": "gpt-4o-mini"}}})

    history = live.get_history()
    assert (history.agent_id, history.status) == (agent_id, "RUNNING")
    assert [(c.role, c.content) for c in history.contents] == [
        ("assistant", "Hello, caller!"), ("assistant", "Please hold the line."),
        ("user", "The caller pressed 1.")]
    info = live.get_info()
    assert (info.agent_id, info.status, info.stop_ts) == (agent_id, "RUNNING", 0)
    assert info.name == name

    turns = live.get_all_turns(page_size=2)  # three turns: the SDK follows two pages
    assert turns.total_turn_count == 3 and len(turns.turns) == 3
    assert [t.start.type for t in turns.turns] == ["greeting", "api_speak", "api_think"]
    assert turns.turns[1].end.type == "interrupted"
    assert turns.turns[2].metrics.e_2_e_latency_ms > 0

    live.stop()
    assert live.status == "stopped"
    wait_until(lambda: live.get_info().status == "STOPPED", message="the agent to stop")
    client.stop_agent(agent_id)  # already gone: the sandbox's 404 is the SDK's success
    assert [r["kind"] for r in sandbox.requests() if agent_id in r["path"]
            and r["status"] != 200] == ["leave"]


def test_the_raw_client_lists_agents_with_cursor_paging(connect):
    client = connect("basic")  # the raw client adds no token of its own
    channel = new_channel()
    ids = [session(client, channel).start() for _ in range(5)]
    pager = client.agents.list(SANDBOX_APP_ID, channel=channel, state="1,2", limit=2)
    pages = list(pager.iter_pages())
    assert [len(page.items) for page in pages] == [2, 2, 1]
    assert [item.agent_id for page in pages for item in page.items] == ids
    assert pages[0].response.meta.total == 5 and pages[-1].response.meta.cursor == ""
    assert {item.status for item in pager} <= {"STARTING", "RUNNING"}
    for agent_id in ids:
        client.stop_agent(agent_id)


@pytest.mark.parametrize("auth_mode", AUTH_MODES)
def test_a_duplicate_name_gives_the_sdks_conflict_error(connect, auth_mode):
    client = connect(auth_mode)
    name, channel = new_name(), new_channel()
    first = session(client, channel, name)
    first.start()
    second = session(client, channel, name)
    with pytest.raises(ApiError) as raised:
        second.start()
    assert raised.value.status_code == 409 and second.status == "error"
    error = AgentErrorResponse.model_validate(raised.value.body)
    assert error.reason == "TaskConflict" and error.detail
    first.stop()


def test_a_token_signed_with_another_certificate_is_refused(connect):
    client = connect("app-credentials", app_certificate="1" * 32)
    with pytest.raises(ApiError) as raised:
        session(client, new_channel()).start()
    assert raised.value.status_code == 401
    assert AgentErrorResponse.model_validate(raised.value.body).reason == "InvalidPermission"
