"""The admin API of outbound (the issue's contract): campaigns from JSON or a CSV upload, their
status, controls and results; the do-not-call list; scheduled calls and their cancelling."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from sandbox.phone_network import example

TOKEN = {"Authorization": "Bearer sandbox-admin-token"}
CONTACT_STATES = ["pending", "dialling", "completed", "exhausted", "opted_out", "suppressed",
                  "cancelled"]


def campaign(**extra):
    return {"persona": "appointments", "from": "+15555550100",
            "contacts": [{"number": example("answered", 0), "variables": {"name": "Ada"}},
                         {"number": example("busy", 0), "timezone": "Europe/London"}],
            "window": {"start": "09:00", "end": "20:00",
                       "days": ["mon", "tue", "wed", "thu", "fri", "sat"]},
            "pacing": {"max_concurrent": 2, "per_minute": 10},
            "retry": {"max_attempts": 3, "delay_s": {"busy": 600, "no_answer": 1800,
                                                     "failed": 3600, "voicemail": 3600}},
            **extra}


def test_a_campaign_is_created_and_read_back_in_the_contract_shape(client):
    created = client.post("/api/campaigns", json=campaign(name="December reminders"),
                          headers=TOKEN)
    assert created.status_code == 201
    body = created.get_json()
    assert body["id"].startswith("cmp_") and body["state"] == "active"
    assert list(body["counts"]) == CONTACT_STATES
    assert body["counts"]["pending"] == 2
    status = client.get(f"/api/campaigns/{body['id']}", headers=TOKEN).get_json()
    assert {"id", "state", "counts", "contacts"} <= set(status)
    first = status["contacts"][0]
    assert first == {"number": example("answered", 0), "state": "pending", "timezone": None,
                     "variables": {"name": "Ada"}, "next_at": first["next_at"],
                     "attempts": []}
    assert status["window"]["days"] == ["mon", "tue", "wed", "thu", "fri", "sat"]
    listed = client.get("/api/campaigns", headers=TOKEN).get_json()["campaigns"]
    assert [c["id"] for c in listed] == [body["id"]]


def test_a_campaign_from_an_uploaded_csv(client):
    rows = ("number,timezone,name,appointment\n"
            f"{example('answered', 1)},America/New_York,Ada,Tuesday 10:00\n"
            f"{example('answered', 2)},,Bob,Wednesday 09:30\n"
            f"{example('answered', 1)},,Ada again,Friday\n")
    response = client.post("/api/campaigns", headers=TOKEN, data={
        "campaign": '{"persona": "appointments", "from": "+15555550100"}',
        "contacts": (io.BytesIO(rows.encode()), "contacts.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["duplicates_skipped"] == 1
    assert [(c["number"], c["timezone"], c["variables"]) for c in body["contacts"]] == [
        (example("answered", 1), "America/New_York",
         {"name": "Ada", "appointment": "Tuesday 10:00"}),
        (example("answered", 2), None, {"name": "Bob", "appointment": "Wednesday 09:30"})]


@pytest.mark.parametrize(("change", "message"), [
    ({"persona": "support"}, "persona must be one with an [outbound] section"),
    ({"from": "not a number"}, "from is required"),
    ({"contacts": []}, "at least one contact"),
    ({"contacts": [{"number": "+1202"}]}, "contacts[0]: number"),
    ({"window": {"start": "21:00", "end": "08:00"}}, "window.start must be before window.end"),
    ({"pacing": {"max_concurrent": 0}}, "pacing.max_concurrent"),
    ({"retry": {"delay_s": {"answered": 1}}}, "retry.delay_s takes"),
    ({"timezone": "America"}, "is not an IANA time zone name"),
    ({"contacts": [{"number": "+12025550100", "timezone": "Europe"}]},
     "contacts[0]: timezone 'Europe' is not"),
    ({"contacts": None, "contacts_csv": "number,note\n+12025550100," + "x" * 140_000},
     "the CSV cannot be read"),
    ({"region": "XX"}, "unknown region"),
    ({"prompt": "loud"}, "prompt must be one of"),
])
def test_a_wrong_campaign_is_a_400_that_says_why(client, change, message):
    response = client.post("/api/campaigns", json=campaign(**change), headers=TOKEN)
    assert response.status_code == 400
    assert message in response.get_json()["message"]


def test_controls_and_their_conflicts(client):
    cid = client.post("/api/campaigns", json=campaign(), headers=TOKEN).get_json()["id"]
    assert client.post(f"/api/campaigns/{cid}/pause", headers=TOKEN).get_json()["state"] \
        == "paused"
    again = client.post(f"/api/campaigns/{cid}/pause", headers=TOKEN)
    assert again.status_code == 409 and "cannot pause" in again.get_json()["message"]
    assert client.post(f"/api/campaigns/{cid}/resume", headers=TOKEN).get_json()["state"] \
        == "active"
    cancelled = client.post(f"/api/campaigns/{cid}/cancel", headers=TOKEN).get_json()
    assert cancelled["state"] == "cancelled" and cancelled["counts"]["cancelled"] == 2
    assert client.post("/api/campaigns/cmp_nope/pause", headers=TOKEN).status_code == 404
    assert client.post(f"/api/campaigns/{cid}/explode", headers=TOKEN).status_code == 404


def test_results_export_has_a_row_per_contact(client):
    cid = client.post("/api/campaigns", json=campaign(), headers=TOKEN).get_json()["id"]
    response = client.get(f"/api/campaigns/{cid}/results.csv", headers=TOKEN)
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].endswith(f'campaign-{cid}.csv"')
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["number"], r["state"], r["disposition"]) for r in rows] == [
        (example("answered", 0), "pending", ""), (example("busy", 0), "pending", "")]


def test_the_api_wants_the_admin_token(client):
    for method, path in (("post", "/api/campaigns"), ("get", "/api/campaigns"),
                         ("get", "/api/suppressions"), ("post", "/api/suppressions"),
                         ("delete", "/api/suppressions/+12025550100")):
        assert getattr(client, method)(path, json={}).status_code == 401


def test_suppressions_add_list_import_and_remove(client):
    added = client.post("/api/suppressions", json={"number": "+1 202 555 0123"},
                        headers=TOKEN)
    assert added.status_code == 201 and added.get_json() == {"number": "+12025550123",
                                                              "added": True}
    assert client.post("/api/suppressions", json={"number": "12025550123"},
                       headers=TOKEN).status_code == 200
    imported = client.post("/api/suppressions", headers={**TOKEN, "Content-Type": "text/csv"},
                           data="number\n+12025550124\n+12025550123\n")
    assert imported.get_json() == {"imported": 2, "added": 1}
    listed = client.get("/api/suppressions", headers=TOKEN).get_json()["suppressions"]
    assert sorted((s["number"], s["source"]) for s in listed) == [
        ("+12025550123", "api"), ("+12025550124", "csv")]
    assert client.delete("/api/suppressions/+12025550123", headers=TOKEN).status_code == 204
    assert client.delete("/api/suppressions/+12025550123", headers=TOKEN).status_code == 404
    unreadable = client.post("/api/suppressions", headers={**TOKEN, "Content-Type": "text/csv"},
                             data="number\n\"" + "1" * 140_000 + "\"\n")
    assert unreadable.status_code == 400
    assert "the CSV cannot be read" in unreadable.get_json()["message"]
    bad = client.post("/api/suppressions", json={"number": "hello"}, headers=TOKEN)
    assert bad.status_code == 400 and bad.get_json()["message"].startswith("number:")


def test_a_suppressed_number_starts_suppressed_in_a_new_campaign(client):
    client.post("/api/suppressions", json={"number": example("busy", 0)}, headers=TOKEN)
    body = client.post("/api/campaigns", json=campaign(), headers=TOKEN).get_json()
    assert body["counts"]["suppressed"] == 1


def test_a_call_with_at_is_scheduled_and_cancelled_by_delete(client, app):
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    response = client.post("/api/calls", headers=TOKEN, json={
        "to": example("answered", 3), "persona": "appointments", "at": at.isoformat()})
    assert response.status_code == 202
    call = response.get_json()
    assert call["state"] == "scheduled" and call["at"] == at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    listed = client.get("/api/calls?state=scheduled", headers=TOKEN).get_json()["calls"]
    assert [c["id"] for c in listed] == [call["id"]]
    detail = client.get(f"/api/calls/{call['id']}", headers=TOKEN).get_json()
    assert detail["dial"] == {"due_at": call["at"], "state": "queued", "disposition": None,
                              "campaign_id": None, "detail": {}}
    cancelled = client.delete(f"/api/calls/{call['id']}", headers=TOKEN)
    assert cancelled.status_code == 200
    assert cancelled.get_json()["call"]["end_reason"] == "cancelled"
    # Now an ended call: a second DELETE erases its record, as for any ended call.
    assert client.delete(f"/api/calls/{call['id']}", headers=TOKEN).status_code == 204


@pytest.mark.parametrize(("at", "message"), [
    ("tomorrow", "is not an ISO 8601 time"),
    ("2030-01-01T09:00:00", "needs its UTC offset"),
    ("2001-01-01T09:00:00Z", "at is in the past"),
    (1700000000, "ISO 8601 time with its offset"),
])
def test_a_wrong_at_is_a_400(client, at, message):
    response = client.post("/api/calls", headers=TOKEN,
                           json={"to": example("answered", 3), "at": at})
    assert response.status_code == 400
    assert message in response.get_json()["message"]


@pytest.mark.parametrize("scheduled", [False, True])
@pytest.mark.parametrize(("option", "message"), [
    ({"region": "XX"}, "unknown region"), ({"prompt": "loud"}, "prompt must be one of")])
def test_a_call_with_a_wrong_region_or_prompt_is_a_400_and_nothing_is_recorded(
        client, scheduled, option, message):
    at = {"at": (datetime.now(UTC) + timedelta(hours=2)).isoformat()} if scheduled else {}
    response = client.post("/api/calls", headers=TOKEN, json={
        "to": example("answered", 3), "from": "+15555550100", **option, **at})
    assert response.status_code == 400
    assert message in response.get_json()["message"]
    assert client.get("/api/calls", headers=TOKEN).get_json()["calls"] == []
