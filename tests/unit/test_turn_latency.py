"""Per-turn latency from ConvoAI's events 111 and 112 (calls/turns.py): checked, bounded, merged."""

from __future__ import annotations

import pytest

from calls.turns import LATENCY_FIELDS, MAX_TURNS, finished_turns, turn_latency

SEGMENTS = {"algorithm_processing": 20, "asr_ttlw": 150, "llm_ttft": 400, "llm_ftfs": 120,
            "tts_ttfb": 200, "transport": 60}


def turn(turn_id, e2e, **segments):
    return {"turn_id": turn_id, "start": {"start_at": 1_000 * turn_id, "type": "voice_input"},
            "end": {"end_at": 1_000 * turn_id + 900, "type": "ok"},
            "metrics": {"e2e_latency_ms": e2e,
                        "segmented_latency_ms": {**SEGMENTS, **segments}}}


def event(kind, detail):
    return {"at": 0.0, "source": "convoai", "kind": kind, "detail": detail}


def test_each_finished_turn_shows_its_latency_segments_and_the_medians():
    stored = finished_turns({"agent_id": "A1", "total_turn_count": 3, "is_truncated": False,
                             "turns": [turn(1, 900), turn(2, 1100, llm_ttft=600),
                                       turn(3, 1000)]})
    figures = turn_latency([event("turns_finished", stored)])
    first = figures["turns"][0]
    assert first == {"turn_id": 1, "start_type": "voice_input", "start_at": 1000,
                     "end_type": "ok", "end_at": 1900, "e2e_latency_ms": 900, **SEGMENTS,
                     "llm_ttfb": None, "llm_ttfs": None}
    assert figures["median_ms"]["e2e_latency_ms"] == 1000
    assert figures["median_ms"]["llm_ttft"] == 400
    assert figures["median_ms"]["llm_ttfb"] is None
    assert (figures["truncated"], figures["total_turn_count"], figures["sources"]) == (
        False, 3, ["turns_finished"])


def test_event_111_figures_sit_beside_112s_on_the_same_turn():
    metrics = event("agent_metrics", {"agent_id": "A1", "metrics": [
        {"turn_id": 1, "asr_ttlw": 999, "llm_ttfb": 310, "llm_ttfs": 350, "tts_ttfb": 999},
        {"turn_id": 7, "asr_ttlw": 100, "llm_ttfb": 300, "llm_ttfs": 330, "tts_ttfb": 210}]})
    finished = event("turns_finished", finished_turns(
        {"agent_id": "A1", "is_truncated": True, "total_turn_count": 250,
         "turns": [turn(1, 900)]}))
    figures = turn_latency([metrics, finished])
    one, seven = figures["turns"]
    # 112 (the later, fuller report) wins where both give a figure; 111 adds its own.
    assert (one["asr_ttlw"], one["tts_ttfb"], one["llm_ttfb"], one["e2e_latency_ms"]) == (
        150, 200, 310, 900)
    assert (seven["turn_id"], seven["llm_ttfb"], seven["e2e_latency_ms"]) == (7, 300, None)
    assert figures["truncated"] is True and figures["total_turn_count"] == 250
    assert figures["sources"] == ["agent_metrics", "turns_finished"]


def test_event_111_alone_still_gives_its_figures():
    figures = turn_latency([event("agent_metrics", {"metrics": [
        {"turn_id": 1, "asr_ttlw": 100, "llm_ttfb": 300, "llm_ttfs": 320, "tts_ttfb": 200},
        {"turn_id": 2, "asr_ttlw": 140, "llm_ttfb": 500, "llm_ttfs": 520, "tts_ttfb": 260}]})])
    assert [t["turn_id"] for t in figures["turns"]] == [1, 2]
    assert figures["median_ms"]["llm_ttfb"] == 400 and figures["median_ms"]["asr_ttlw"] == 120
    assert (figures["truncated"], figures["total_turn_count"], figures["sources"]) == (
        False, None, ["agent_metrics"])


def test_no_metrics_gives_empty_figures():
    figures = turn_latency([event("agent_joined", {"start_ts": 1})])
    assert figures == {"turns": [], "median_ms": dict.fromkeys(LATENCY_FIELDS),
                       "truncated": False, "total_turn_count": None, "sources": []}


@pytest.mark.parametrize(("payload", "kept"), [
    ({"turns": "not a list"}, 0),
    ({"turns": [1, None, "x", [], {"turn_id": True}, {"turn_id": {"a": 1}}]}, 0),
    ({"turns": [{"turn_id": 1, "start": "x", "end": 5, "metrics": []}]}, 1),
    ({"turns": [{"turn_id": 1, "metrics": {"segmented_latency_ms": "x"}}]}, 1),
    ({"turns": [{"turn_id": "t-1\x00"}]}, 0),
    ({"turns": [{"turn_id": "\ud800"}]}, 0),
])
def test_malformed_pieces_of_a_112_are_left_out(payload, kept):
    assert len(finished_turns(payload)["turns"]) == kept
    turn_latency([event("turns_finished", finished_turns(payload))])  # and it reads back


@pytest.mark.parametrize("value", [-1, True, "900", float("nan"), float("inf"), 10**12, None])
def test_a_latency_that_is_not_a_duration_is_none(value):
    stored = finished_turns({"turns": [turn(1, value, tts_ttfb=value)]})
    figures = turn_latency([event("turns_finished", stored)])
    assert figures["turns"][0]["e2e_latency_ms"] is None
    assert figures["median_ms"]["tts_ttfb"] is None


def test_header_fields_of_the_wrong_type_are_dropped():
    stored = finished_turns({"agent_id": 5, "start_ts": "1", "stop_ts": -3,
                             "total_turn_count": True, "is_truncated": "yes", "turns": []})
    assert stored == {"is_truncated": False, "turns": []}


def test_more_turns_than_convoai_sends_are_cut_and_marked_truncated():
    stored = finished_turns({"is_truncated": False,
                             "turns": [turn(n, 800) for n in range(1, MAX_TURNS + 50)]})
    assert len(stored["turns"]) == MAX_TURNS and stored["is_truncated"] is True


def test_a_timeline_detail_of_the_wrong_shape_is_skipped():
    figures = turn_latency([event("agent_metrics", {"metrics": 5}),
                            event("agent_metrics", "text"),
                            event("turns_finished", {"turns": {"turn_id": 1}}),
                            event("agent_metrics", {"metrics": [{"turn_id": [1], "llm_ttfb": 7}]})])
    assert figures["turns"] == [{**figures["turns"][0], "llm_ttfb": 7, "turn_id": None}]
