"""Outbound's pure rules: windows in the contact's own time, the retry policy, the request's
checks, the contacts (JSON and CSV), and what an attempt's call came to."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from outbound import contacts, rules
from outbound.rules import CallFacts, Invalid

NY, TOKYO = ZoneInfo("America/New_York"), ZoneInfo("Asia/Tokyo")


def at(text: str, zone: ZoneInfo) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def local(ts: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, zone).strftime("%a %Y-%m-%d %H:%M")


def test_the_default_window_is_nine_to_eight_monday_to_saturday():
    window = rules.parse_window(None)
    assert window.as_json() == {"start": "09:00", "end": "20:00",
                                "days": ["mon", "tue", "wed", "thu", "fri", "sat"]}
    # Thursday 10:00 in New York: now.
    now = at("2026-12-03T10:00", NY)
    assert window.next_open(now, NY) == now
    # Thursday 21:00: Friday 09:00.
    assert local(window.next_open(at("2026-12-03T21:00", NY), NY), NY) == "Fri 2026-12-04 09:00"
    # Saturday 20:00 (the end is not inside): Monday 09:00, Sunday skipped.
    assert local(window.next_open(at("2026-12-05T20:00", NY), NY), NY) == "Mon 2026-12-07 09:00"
    # Early morning: the same day's opening.
    assert local(window.next_open(at("2026-12-03T06:30", NY), NY), NY) == "Thu 2026-12-03 09:00"


def test_the_window_is_the_contacts_own_time():
    window = rules.parse_window({"start": "09:00", "end": "17:00", "days": ["mon", "tue", "wed",
                                                                          "thu", "fri"]})
    now = at("2026-12-03T15:00", NY)  # 15:00 in New York is 05:00 Friday in Tokyo
    assert window.contains(now, NY)
    assert not window.contains(now, TOKYO)
    assert local(window.next_open(now, TOKYO), TOKYO) == "Fri 2026-12-04 09:00"


def test_the_window_opens_at_local_nine_across_a_clock_change():
    window = rules.parse_window(None)
    # The night US clocks go back (2026-11-01, a Sunday): Monday's 09:00 is EST.
    opens = window.next_open(at("2026-10-31T22:00", NY), NY)
    assert local(opens, NY) == "Mon 2026-11-02 09:00"
    assert datetime.fromtimestamp(opens, NY).utcoffset().total_seconds() == -5 * 3600


@pytest.mark.parametrize(("window", "message"), [
    ({"start": "9:00"}, "window.start must be a time like 09:00"),
    ({"start": "20:00", "end": "09:00"}, "window.start must be before window.end"),
    ({"days": []}, "window.days must be a list of days"),
    ({"days": ["funday"]}, "window.days must be a list of days"),
    ("always", "window must be an object"),
])
def test_a_wrong_window_says_what_is_wrong(window, message):
    with pytest.raises(Invalid, match=message):
        rules.parse_window(window)


@pytest.mark.parametrize(("body", "message"), [
    ({"pacing": {"max_concurrent": 0}}, "pacing.max_concurrent must be a whole number"),
    ({"pacing": {"per_minute": 1.5}}, "pacing.per_minute must be a whole number"),
    ({"retry": {"max_attempts": 11}}, "retry.max_attempts must be a whole number from 1 to 10"),
    ({"retry": {"delay_s": {"answered": 5}}}, "retry.delay_s takes busy, no_answer"),
    ({"retry": {"delay_s": {"busy": -1}}}, "retry.delay_s.busy must be seconds"),
    ({"timezone": "Mars/Olympus"}, "is not an IANA time zone name"),
    ({"timezone": "America"}, "is not an IANA time zone name"),  # a folder of zones
    ({"timezone": "x" * 300}, "is not an IANA time zone name"),
])
def test_a_wrong_policy_says_what_is_wrong(body, message):
    with pytest.raises(Invalid, match=message):
        rules.parse_policy(body)


def test_a_policy_round_trips_through_what_the_store_keeps():
    policy = rules.parse_policy({"pacing": {"max_concurrent": 3, "per_minute": 20},
                                 "retry": {"max_attempts": 4, "delay_s": {"busy": 60,
                                                                          "voicemail": None}},
                                 "timezone": "Europe/London"})
    assert rules.policy_from_json(policy.as_json()) == policy
    assert policy.retry.delay_s == {"busy": 60.0, "no_answer": 3600.0, "failed": 1800.0,
                                    "voicemail": None}


def test_next_step_retries_inside_the_window_until_the_attempts_run_out():
    policy = rules.parse_policy({"retry": {"max_attempts": 2, "delay_s": {"busy": 600,
                                                                          "voicemail": None}}})
    utc = ZoneInfo("UTC")
    now = at("2026-12-03T12:00", utc)
    assert rules.next_step("busy", 1, policy, utc, now) == ("pending", now + 600)
    assert rules.next_step("busy", 2, policy, utc, now) == ("exhausted", None)
    assert rules.next_step("voicemail", 1, policy, utc, now) == ("exhausted", None)
    assert rules.next_step("answered", 1, policy, utc, now) == ("completed", None)
    assert rules.next_step("opted_out", 1, policy, utc, now) == ("opted_out", None)
    # ConvoAI refusing the agent is tried again soon, while attempts remain.
    assert rules.next_step("refused", 1, policy, utc, now) == ("pending", now + 60)
    assert rules.next_step("refused", 2, policy, utc, now) == ("exhausted", None)
    # A retry that would fall after 20:00 waits for the next morning.
    late = at("2026-12-03T19:55", utc)
    assert local(rules.next_step("busy", 1, policy, utc, late)[1], utc) == "Fri 2026-12-04 09:00"


def facts(end_reason=None, joined=None, ended=None, timeline=(), opted_out=False):
    return CallFacts(end_reason=end_reason, caller_joined_at=joined, ended_at=ended,
                     timeline=list(timeline), opted_out=opted_out)


@pytest.mark.parametrize(("call", "expected"), [
    (facts("caller_left", joined=100.0, ended=142.5), ("answered", {"duration_s": 42.5})),
    (facts("gateway_normal_clearing", ended=160.0, timeline=[
        {"at": 100.0, "kind": "outbound_answered", "detail": {}}]),
     ("answered", {"duration_s": 60.0})),
    (facts("agent_ended", joined=100.0, ended=110.0, timeline=[
        {"kind": "agent_ended_call", "detail": {"reason": "reached voicemail"}}]),
     ("voicemail", {})),
    (facts("caller_left", joined=100.0, ended=110.0, opted_out=True), ("opted_out", {})),
    (facts("outbound_busy"), ("busy", {"cause": "Busy"})),
    (facts("gateway_user_busy", timeline=[
        {"kind": "call_hangup", "detail": {"hangup_cause": "USER_BUSY"}}]),
     ("busy", {"cause": "USER_BUSY"})),
    (facts("outbound_noanswer"), ("no_answer", {"cause": "NoAnswer"})),
    (facts("outbound_no_answer"), ("no_answer", {"cause": "NoAnswer"})),
    (facts("gateway_no_answer", timeline=[
        {"kind": "call_hangup", "detail": {"hangup_cause": "NO_ANSWER"}}]),
     ("no_answer", {"cause": "NO_ANSWER"})),
    (facts("outbound_invalid", timeline=[
        {"kind": "call_hangup", "detail": {"hangup_cause": "INVALID_NUMBER_FORMAT"}}]),
     ("failed", {"cause": "INVALID_NUMBER_FORMAT"})),
    (facts("outbound_failed"), ("failed", {"cause": "outbound_failed"})),
    # ConvoAI's dialer: a 202 HANGUP that never answered.
    (facts("outbound_failed", timeline=[
        {"source": "convoai", "kind": "call_hangup", "detail": {"reason": "busy"}}]),
     ("busy", {"cause": "USER_BUSY"})),
    (facts("convoai_hangup", ended=130.0, timeline=[
        {"at": 100.0, "source": "convoai", "kind": "call_answered", "detail": {}}]),
     ("answered", {"duration_s": 30.0})),
    (facts("refused_max_concurrent_calls"), ("refused", {"guard": "max_concurrent_calls"})),
])
def test_the_disposition_comes_from_the_call_and_its_timeline(call, expected):
    assert rules.disposition(call) == expected


def test_contacts_from_json_are_checked_and_deduplicated():
    found = contacts.from_json([
        {"number": "+1 (202) 555-0100", "variables": {"name": "Ada"}},
        {"number": "12025550100"},
        {"number": "+12025550101", "timezone": "America/Chicago"}])
    assert [c.number for c in found.contacts] == ["+12025550100", "+12025550101"]
    assert found.duplicates == 1
    assert found.contacts[0].variables == {"name": "Ada"}
    assert found.contacts[1].timezone == "America/Chicago"
    with pytest.raises(Invalid, match=r"contacts\[1\]: number"):
        contacts.from_json([{"number": "+12025550100"}, {"number": "call me"}])
    with pytest.raises(Invalid, match=r"contacts\[0\]: timezone 'Nowhere' is not"):
        contacts.from_json([{"number": "+12025550100", "timezone": "Nowhere"}])
    with pytest.raises(Invalid, match="at least one contact"):
        contacts.from_json([])


def test_contacts_from_csv_take_every_other_column_as_a_variable():
    found = contacts.from_csv("\ufeffnumber,timezone,name,appointment\n"
                              "+12025550100,America/New_York,Ada,Tuesday 10:00\n"
                              "+442079460000,,Bob,Wednesday 09:30\n")
    assert [(c.number, c.timezone, dict(c.variables)) for c in found.contacts] == [
        ("+12025550100", "America/New_York", {"name": "Ada", "appointment": "Tuesday 10:00"}),
        ("+442079460000", None, {"name": "Bob", "appointment": "Wednesday 09:30"})]
    with pytest.raises(Invalid, match="CSV line 3: number"):
        contacts.from_csv("number,name\n+12025550100,Ada\nnope,Bob\n")
    with pytest.raises(Invalid, match="needs a header row with a number column"):
        contacts.from_csv("phone,name\n+12025550100,Ada\n")


def test_a_csv_that_cannot_be_read_is_a_clear_error():
    with pytest.raises(Invalid, match="the CSV cannot be read"):
        contacts.from_csv("number,note\n+12025550100," + "x" * 200_000 + "\n")
    assert contacts.numbers_from_csv("number,name\n+1 202 555 0100,Ada\n") == ["+12025550100"]
    with pytest.raises(Invalid, match="CSV line 3: number"):
        contacts.numbers_from_csv("number\n+12025550100\nnope\n")
    with pytest.raises(Invalid, match="the CSV cannot be read"):
        contacts.numbers_from_csv("number\n\"" + "1" * 200_000 + "\"\n")
