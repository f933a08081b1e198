"""Issue 21, item 7: the sandbox accepts what Agora accepts (token auth, joins that lean on a
preset, a pipeline or an MLLM, /think, paginated /turns) and answers in Agora's shapes.

In-process, like test_sandbox_convoai.py: Flask test client, fake clock, recording transport.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from convoai.tokens import build_rtc_token
from sandbox.testing import Harness, make_harness
from sandbox.turns import CASCADE_SEGMENTS


@pytest.fixture
def sb() -> Harness:
    return make_harness()


def token_auth(sb: Harness, *, app_id: str | None = None, certificate: str | None = None,
               channel: str = "room-1", uid: str = "222", lifetime_s: int = 3600
               ) -> dict[str, str]:
    """``Authorization: agora token=...`` with a 007 token, minted as Agora's SDK mints it."""
    token = build_rtc_token(app_id or sb.config.app_id,
                            certificate or sb.config.app_certificate, channel, uid,
                            lifetime_s=lifetime_s, with_rtm=True)
    return {"Authorization": f"agora token={token}"}


def started(sb: Harness, body: dict[str, Any] | None = None, **overrides: Any) -> str:
    response = sb.join(body, **overrides)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["agent_id"]


# -- authentication ------------------------------------------------------------------------------

@pytest.mark.parametrize(("channel", "uid"), [("room-1", "222"), ("stop", "0")])
def test_an_agora_token_for_the_app_id_is_accepted_whatever_its_channel(sb, channel, uid):
    # Agora's SDK mints per session, and for channel "stop", uid 0 in Agora.stop_agent.
    response = sb.client.post(sb.url("/join"), json=sb.body(),
                              headers=token_auth(sb, channel=channel, uid=uid))
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("case", ["another app id", "another certificate", "expired",
                                  "not a 007 token", "not the literal prefix"])
def test_an_agora_token_that_is_not_for_this_project_is_401(sb, case):
    if case == "another app id":
        headers = token_auth(sb, app_id="0" * 32)
    elif case == "another certificate":
        headers = token_auth(sb, certificate="1" * 32)
    elif case == "expired":
        headers = token_auth(sb, lifetime_s=10)
        sb.clock.advance(13)
    elif case == "not a 007 token":
        headers = {"Authorization": "agora token=006abc"}
    else:
        headers = {"Authorization": token_auth(sb)["Authorization"].replace("agora", "Agora")}
    response = sb.client.post(sb.url("/join"), json=sb.body(), headers=headers)
    assert response.status_code == 401
    assert response.get_json()["reason"] == "InvalidPermission"
    assert sb.sandbox.agents.summaries() == []


def test_without_a_certificate_an_agora_token_still_has_to_name_the_app_id():
    sb = make_harness(app_certificate="")
    assert sb.client.get(sb.url("/agents"), headers=token_auth(
        sb, certificate="2" * 32)).status_code == 200
    assert sb.client.get(sb.url("/agents"), headers=token_auth(
        sb, app_id="0" * 32, certificate="2" * 32)).status_code == 401


def test_the_api_is_also_served_at_agoras_own_path(sb):
    path = f"/api/conversational-ai-agent/v2/projects/{sb.config.app_id}"
    response = sb.client.post(f"{path}/join", json=sb.body(), headers=sb.headers)
    assert response.status_code == 200
    agent_id = response.get_json()["agent_id"]
    assert sb.client.get(f"{path}/agents/{agent_id}", headers=sb.headers).status_code == 200
    missing = sb.client.get(f"{path}/agents/{agent_id}/nothing", headers=sb.headers)
    assert set(missing.get_json()) == {"detail", "reason"}  # Agora's error body there too
    assert [r["kind"] for r in sb.sandbox.requests()] == ["join", "query"]


# -- joins -----------------------------------------------------------------------------------

def body_with(sb: Harness, *, drop: tuple[str, ...] = (), **top: Any) -> dict[str, Any]:
    body = sb.body()
    body.update(top)
    for name in drop:
        del body["properties"][name]
    return body


def test_null_preset_and_pipeline_id_are_taken_as_absent(sb):
    started(sb, body_with(sb, preset=None, pipeline_id=None))


def test_a_pipeline_needs_no_llm_tts_or_asr_and_the_agent_still_greets_nobody(sb):
    agent_id = started(sb, body_with(sb, pipeline_id="pl_1", drop=("llm", "tts", "asr")))
    sb.advance(0.3)
    history = sb.client.get(sb.url(f"/agents/{agent_id}/history"), headers=sb.headers)
    assert history.get_json()["contents"] == []  # the greeting lives in the pipeline


def test_a_preset_replaces_the_url_key_and_model_of_its_providers(sb):
    body = body_with(sb, preset="deepgram_nova_3,openai_gpt_5_mini,minimax_speech_2_6_turbo")
    props = body["properties"]
    props["llm"] = {key: value for key, value in props["llm"].items()
                    if key not in ("url", "api_key", "params")}
    props["tts"] = {"vendor": "minimax", "params": {"voice_setting": {"voice_id": "v1"}}}
    props["asr"] = {"vendor": "deepgram", "params": {"language": "en"}}
    started(sb, body)
    props["tts"] = copy.deepcopy(sb.body()["properties"]["tts"])
    body.update(name="another", preset="minimax_speech_2_6_turbo")  # no LLM preset any more
    assert sb.join(body).get_json() == {"detail": "properties.llm.url: Field required",
                                        "reason": "MissingRequiredField"}


def test_an_mllm_agent_needs_no_llm_or_tts_and_greets_with_the_mllm_greeting(sb):
    body = body_with(sb, drop=("llm", "tts", "asr"))
    body["properties"]["mllm"] = {"url": "wss://api.openai.com/v1/realtime", "api_key": "sk-1",
                                  "vendor": "openai", "greeting_message": "Hi, {{who}}!"}
    agent_id = started(sb, body)
    sb.advance(0.3)
    history = sb.client.get(sb.url(f"/agents/{agent_id}/history"), headers=sb.headers)
    assert history.get_json()["contents"] == [{"role": "assistant", "content": "Hi, {{who}}!"}]


def test_without_pipeline_or_mllm_the_llm_is_still_required(sb):
    response = sb.join(body_with(sb, drop=("llm",)))
    assert response.get_json() == {"detail": "properties.llm: Field required",
                                   "reason": "MissingRequiredField"}


# -- /think and /turns -------------------------------------------------------------------------

def think(sb: Harness, agent_id: str, body: Any) -> Any:
    return sb.client.post(sb.url(f"/agents/{agent_id}/think"), json=body, headers=sb.headers)


def turns(sb: Harness, agent_id: str, **params: Any) -> dict[str, Any]:
    response = sb.client.get(sb.url(f"/agents/{agent_id}/turns"), query_string=params,
                             headers=sb.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_think_is_taken_as_the_callers_input(sb):
    agent_id = started(sb)
    sb.advance(0.3)
    answer = think(sb, agent_id, {"text": "The caller pressed 1.", "on_listening_action":
                                  "inject", "interruptable": False, "metadata": {"k": "v"}})
    assert answer.status_code == 200
    assert answer.get_json() == {"agent_id": agent_id, "channel": "room-1",
                                 "start_ts": int(sb.clock.now())}
    history = sb.client.get(sb.url(f"/agents/{agent_id}/history"), headers=sb.headers)
    assert history.get_json()["contents"][-1] == {"role": "user",
                                                  "content": "The caller pressed 1."}


@pytest.mark.parametrize(("body", "status", "reason"), [
    ({}, 400, "MissingRequiredField"),
    ({"text": 5}, 400, "InvalidFieldValue"),
    ({"text": "x", "on_listening_action": "append"}, 400, "InvalidFieldValue"),
    ({"text": "x", "on_speaking_action": "inject"}, 400, "InvalidFieldValue"),
    ({"text": "x", "interruptable": "no"}, 400, "InvalidFieldValue"),
    ({"text": "x", "metadata": ["a"]}, 400, "InvalidFieldValue"),
])
def test_think_refuses_what_agoras_spec_does_not_allow(sb, body, status, reason):
    agent_id = started(sb)
    response = think(sb, agent_id, body)
    assert (response.status_code, response.get_json()["reason"]) == (status, reason)


def test_think_for_an_unknown_or_stopped_agent_is_404(sb):
    agent_id = started(sb)
    sb.leave(agent_id)
    sb.advance(1)
    for target in (agent_id, "NOSUCHAGENT"):
        assert think(sb, target, {"text": "x"}).status_code == 404


def test_turns_list_each_exchange_with_its_latencies_and_page():
    sb = make_harness(max_turns=3)
    sb.client.post("/_sandbox/calls", json={"channel": "room-1", "duration_s": None})
    agent_id = started(sb)
    sb.advance(0.3)                       # RUNNING: the greeting is turn 1
    sb.advance(7)                         # the 3 scripted exchanges, 1 s apart, then quiet
    sb.client.post(sb.url(f"/agents/{agent_id}/speak"), json={"text": "Hold on."},
                   headers=sb.headers)
    sb.advance(0.5)
    sb.client.post(sb.url(f"/agents/{agent_id}/interrupt"), json={}, headers=sb.headers)
    think(sb, agent_id, {"text": "Check the order."})
    sb.advance(3)
    sb.leave(agent_id)
    sb.advance(1)                         # /turns outlives the agent

    everything = turns(sb, agent_id)
    assert everything["total_turn_count"] == 6
    assert everything["pagination"] == {"page_index": 1, "total_pages": 1, "is_last_page": True}
    assert (everything["agent_id"], everything["channel"]) == (agent_id, "room-1")
    assert everything["name"] == "phoneagent-1a2b3c4d5e6f7a8b"
    kinds = [(t["turn_id"], t["start"]["type"], t["end"]["type"]) for t in everything["turns"]]
    assert kinds == [(1, "greeting", "ok"), (2, "voice_input", "ok"), (3, "voice_input", "ok"),
                     (4, "voice_input", "ok"), (5, "api_speak", "interrupted"),
                     (6, "api_think", "ok")]
    speak = everything["turns"][4]
    assert speak["end"]["metadata"] == {"caused_by": "api_interrupt", "transport": "http"}
    voice = everything["turns"][1]
    assert voice["metrics"]["e2e_latency_ms"] == sum(ms for _, ms in CASCADE_SEGMENTS)
    assert [s["name"] for s in voice["metrics"]["segmented_latency_ms"]] == [
        "algorithm_processing", "asr_ttlw", "llm_ttft", "llm_ftfs", "tts_ttfb", "transport"]
    assert voice["start"]["start_at"] < voice["end"]["end_at"]  # milliseconds
    assert voice["start"]["start_at"] > 10**12

    pages = [turns(sb, agent_id, page_index=i, page_size=4) for i in (1, 2, 3)]
    assert [len(p["turns"]) for p in pages] == [4, 2, 0]
    assert [p["pagination"]["is_last_page"] for p in pages] == [False, True, True]
    assert {p["pagination"]["total_pages"] for p in pages} == {2}
    assert [t["turn_id"] for t in pages[1]["turns"]] == [5, 6]


def test_a_leave_cuts_the_turn_still_playing(sb):
    agent_id = started(sb)
    sb.advance(0.3)
    sb.client.post(sb.url(f"/agents/{agent_id}/speak"), json={"text": "Bye."},
                   headers=sb.headers)
    sb.leave(agent_id)
    *_, last = turns(sb, agent_id)["turns"]
    assert (last["start"]["type"], last["end"]["type"]) == ("api_speak", "interrupted")
    assert last["end"]["metadata"]["caused_by"] == "api_leave"


@pytest.mark.parametrize("params", [{"page_index": 0}, {"page_size": 0},
                                    {"page_index": "one"}])
def test_turns_refuse_a_page_that_cannot_be(sb, params):
    agent_id = started(sb)
    response = sb.client.get(sb.url(f"/agents/{agent_id}/turns"), query_string=params,
                             headers=sb.headers)
    assert (response.status_code, response.get_json()["reason"]) == (400, "InvalidFieldValue")


def test_turns_of_an_unknown_agent_are_404(sb):
    response = sb.client.get(sb.url("/agents/NOSUCHAGENT/turns"), headers=sb.headers)
    assert (response.status_code, response.get_json()["reason"]) == (404, "TaskNotFound")
