"""What a call cost: the pure estimate, its settings and persona rates, the API and exports that
show it, DAILY_BUDGET's refusal, the dashboard's daily totals and the scraped metric."""

from __future__ import annotations

import csv
import io
import itertools
import time
from pathlib import Path

import pytest
from flask import Flask

from calls import costs, guards
from calls import lifecycle as lc
from calls.lifecycle import CallerJoined, CallerLeft
from calls.service import CallService
from config import ConfigError, Settings
from factory.app import create_app
from observability import metrics
from pages import views as dashboard_views
from personas.cost_shape import read_cost
from personas.model import CostRates
from personas.shape import Reader
from personas.startup import load_settings
from store import Store
from tests.fakes import FakeClock, FakeConvoAI
from tests.unit.test_dashboard import sign_in

TOKEN = {"Authorization": "Bearer sandbox-admin-token"}
RATES = costs.Rates(convoai_per_minute=0.1, sip_per_minute=0.01, currency="EUR",
                    personas={"support": costs.PersonaRates(0.002, 0.015, 0.006)})
RATE_SETTINGS = {"convoai_per_minute": 0.1, "sip_per_minute": 0.01, "cost_currency": "EUR"}


class Call:
    """The fields a cost reads, as a record has them."""

    def __init__(self, *, persona="support", direction="inbound", gateway_callid=None,
                 agent_started_at=100.0, ended_at=190.0, caller_number=None,
                 called_number=None, created_at=99.0):
        self.persona, self.direction, self.gateway_callid = persona, direction, gateway_callid
        self.agent_started_at, self.ended_at = agent_started_at, ended_at
        self.caller_number, self.called_number = caller_number, called_number
        self.created_at = created_at


# -- the estimate ----------------------------------------------------------------------------

def test_a_phone_call_costs_each_rate_times_its_agent_minutes():
    cost = costs.call_cost(Call(gateway_callid="gw-1"), RATES, now=10_000)  # 90 s = 1.5 min
    assert cost == {"estimated": 0.1995, "currency": "EUR", "parts": {
        "convoai": 0.15, "sip": 0.015, "llm": 0.003, "tts": 0.0225, "asr": 0.009}}


def test_a_call_without_a_gateway_leg_pays_no_sip_and_outbound_always_does():
    assert costs.call_cost(Call(), RATES, now=0)["parts"]["sip"] == 0
    assert costs.call_cost(Call(direction="outbound"), RATES, now=0)["parts"]["sip"] == 0.015


def test_a_running_call_counts_to_now_and_one_without_an_agent_costs_nothing():
    running = costs.call_cost(Call(ended_at=None), RATES, now=160.0)
    assert running["parts"]["convoai"] == pytest.approx(0.1)  # one minute so far
    assert costs.call_cost(Call(agent_started_at=None), RATES, now=1e9)["estimated"] == 0
    # A persona without a [cost] table pays the settings' rates only.
    other = costs.call_cost(Call(persona="tarot"), RATES, now=0)["parts"]
    assert (other["llm"], other["tts"], other["asr"]) == (0, 0, 0)


def test_spend_prices_rows_as_call_cost_prices_calls():
    calls = [Call(), Call(persona="tarot", gateway_callid="g", agent_started_at=0.0)]
    rows = [(c.persona, costs.has_phone_leg(c.direction, c.gateway_callid),
             costs.agent_seconds(c, 0)) for c in calls]
    assert costs.spend(rows, RATES) == pytest.approx(
        sum(costs.call_cost(c, RATES, 0)["estimated"] for c in calls))


def test_daily_totals_per_persona_and_number_are_the_sum_of_the_calls():
    calls = [Call(called_number="+15550001", created_at=86_400 * 2 + 5),
             Call(persona="tarot", called_number="+15550002", created_at=86_400 * 2 + 9),
             Call(direction="outbound", caller_number="+15550001", created_at=86_400 * 2 + 7,
                  agent_started_at=86_400 * 2 + 8, ended_at=86_400 * 2 + 400),
             Call(called_number="+15550001", created_at=86_400 + 1)]
    days = costs.daily_totals(calls, RATES, 0, day_of=lambda c: str(int(c.created_at // 86_400)))
    assert [d["day"] for d in days] == ["2", "1"]
    today = [c for c in calls if c.created_at >= 86_400 * 2]
    each = [costs.call_cost(c, RATES, 0)["estimated"] for c in today]
    assert days[0]["total"] == pytest.approx(sum(each)) and days[0]["calls"] == 3
    assert sum(days[0]["personas"].values()) == pytest.approx(sum(each))
    assert days[0]["numbers"]["+15550001"] == pytest.approx(each[0] + each[2])
    assert days[0]["numbers"]["+15550002"] == pytest.approx(each[1])


# -- settings and persona rates --------------------------------------------------------------

def test_settings_list_every_cost_problem_at_once():
    with pytest.raises(ConfigError) as caught:
        Settings.for_tests(convoai_per_minute=-1.0, sip_per_minute=float("inf"),
                           cost_currency="dollars", daily_budget=-5.0)
    assert set(caught.value.problems) >= {
        "CONVOAI_PER_MINUTE must be a number, 0 or more",
        "SIP_PER_MINUTE must be a number, 0 or more",
        "DAILY_BUDGET must be 0 (no budget) or more",
        "COST_CURRENCY must be a three-letter ISO 4217 code such as USD"}


def test_settings_read_the_rates_from_the_environment():
    settings = load_settings({"CONVOAI_PER_MINUTE": "0.099", "DAILY_BUDGET": "25",
                                  "COST_CURRENCY": "EUR"}, dotenv=False)
    assert (settings.convoai_per_minute, settings.daily_budget, settings.cost_currency) == (
        0.099, 25.0, "EUR")


@pytest.mark.parametrize(("table", "field"), [
    ({"llm_per_minute": -0.1}, "cost.llm_per_minute"),
    ({"tts_per_minute": "cheap"}, "cost.tts_per_minute"),
    ({"asr_per_minute": True}, "cost.asr_per_minute"),
    ({"per_token": 0.1}, "cost.per_token"),
    ("0.1", "cost"),
])
def test_a_persona_cost_table_that_is_wrong_is_a_problem(table, field):
    reader = Reader("x.toml")
    assert read_cost(reader, {"cost": table}) == CostRates()
    assert [p.field for p in reader.problems] == [field]


def test_a_persona_cost_table_is_read():
    reader = Reader("x.toml")
    rates = read_cost(reader, {"cost": {"llm_per_minute": 0.002, "tts_per_minute": 1}})
    assert (rates, reader.problems) == (CostRates(0.002, 1.0, 0.0), [])


# -- the API, the exports, the metric ----------------------------------------------------------

@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app(Settings.for_tests(database_url=f"sqlite:///{tmp_path / 'c.db'}",
                                         log_level="WARNING", **RATE_SETTINGS))


@pytest.fixture
def page_clock() -> FakeClock:
    return FakeClock(time.time() - 2 * 3600)


@pytest.fixture
def calls(app: Flask, page_clock: FakeClock) -> Store:
    store = Store(app.extensions["store"].engine, clock=page_clock)
    app.extensions["store"] = store
    return store


def make_call(store: Store, clock: FakeClock, call_id: str, *, persona: str = "support",
              number: str = "+15557654321", length: float = 90.0,
              gateway: str | None = None) -> str:
    store.create_call(channel=f"ch_{call_id}", direction="inbound", state="starting",
                      persona=persona, agent_name_prefix="t", new_id=lambda: call_id,
                      caller_uid=111, caller_number="+15551230001", called_number=number,
                      gateway_callid=gateway)
    clock.advance(1)
    store.agent_started(call_id, f"agent-{call_id}")
    clock.advance(length)
    store.end_call(call_id, "caller_hung_up")
    store.agent_stopped(call_id)
    clock.advance(1)
    return call_id


def test_the_call_api_shows_the_cost_in_its_contract_shape(app, calls, page_clock):
    rates = app.extensions["calls"].rates
    make_call(calls, page_clock, "c1", gateway="gw-1")
    body = app.test_client().get("/api/calls/c1", headers=TOKEN).get_json()
    assert set(body["cost"]) == {"estimated", "currency", "parts"}
    assert set(body["cost"]["parts"]) == {"convoai", "sip", "llm", "tts", "asr"}
    assert body["cost"] == costs.call_cost(calls.get_call("c1"), rates, page_clock())
    assert body["cost"]["currency"] == "EUR"
    assert body["cost"]["parts"]["convoai"] == pytest.approx(0.15)
    assert body["cost"]["parts"]["sip"] == pytest.approx(0.015)
    listed = app.test_client().get("/api/calls", headers=TOKEN).get_json()["calls"]
    assert listed[0]["cost"] == body["cost"]


def test_the_exports_carry_the_estimated_cost(app, calls, page_clock):
    make_call(calls, page_clock, "c1", length=120)
    web = app.test_client()
    rows = list(csv.DictReader(io.StringIO(
        web.get("/api/calls.csv", headers=TOKEN).get_data(as_text=True))))
    expected = costs.call_cost(calls.get_call("c1"), app.extensions["calls"].rates, 0)
    assert (float(rows[0]["estimated_cost"]), rows[0]["currency"]) == (
        expected["estimated"], "EUR")
    assert expected["estimated"] > 0
    line = web.get("/api/calls.jsonl", headers=TOKEN).get_data(as_text=True).splitlines()[0]
    assert f'"estimated":{expected["estimated"]}' in line


def test_the_dashboard_daily_totals_equal_the_sum_of_the_calls(app, calls, page_clock):
    make_call(calls, page_clock, "a1", length=61)
    make_call(calls, page_clock, "a2", persona="tarot", length=125, gateway="gw")
    make_call(calls, page_clock, "a3", number="+15550009999", length=33)
    now = time.time()
    rates = app.extensions["calls"].rates
    listed = app.test_client().get("/api/calls", headers=TOKEN).get_json()["calls"]
    figures = dashboard_views.daily_costs(calls, rates, now)
    by_day: dict[str, float] = {}
    for call in listed:
        day = call["started_at"][:10]
        by_day[day] = by_day.get(day, 0.0) + call["cost"]["estimated"]
    assert {d["day"]: d["total"] for d in figures["days"]} == pytest.approx(by_day)
    for day in figures["days"]:
        assert sum(day["personas"].values()) == pytest.approx(day["total"])
        assert sum(day["numbers"].values()) == pytest.approx(day["total"])
    assert sum(d["numbers"].get("+15550009999", 0) for d in figures["days"]) == \
        pytest.approx(next(c["cost"]["estimated"] for c in listed if c["id"] == "a3"))


def test_the_charts_page_shows_the_daily_totals(app, calls, page_clock):
    make_call(calls, page_clock, "a1", length=61)
    web = app.test_client()
    assert sign_in(web, "sandbox-admin-token").status_code == 302
    html = web.get("/dashboard/charts").get_data(as_text=True)
    total = costs.call_cost(calls.get_call("a1"), app.extensions["calls"].rates, 0)
    assert 'id="costs"' in html
    assert f'data-total="{total["estimated"]}"' in html


def test_the_metric_is_the_cost_of_the_ended_calls_by_persona(app, calls, page_clock):
    make_call(calls, page_clock, "a1", length=61)
    make_call(calls, page_clock, "a2", length=30, gateway="gw")
    make_call(calls, page_clock, "b1", persona="tarot", length=90)
    rates = app.extensions["calls"].rates
    body = app.test_client().get("/metrics").get_data(as_text=True)
    support = sum(costs.call_cost(calls.get_call(c), rates, 0)["estimated"]
                  for c in ("a1", "a2"))
    line = next(x for x in body.splitlines()
                if x.startswith('phone_agent_cost_estimated_total{persona="support"}'))
    assert float(line.split()[-1]) == pytest.approx(support)
    assert 'phone_agent_cost_estimated_total{persona="tarot"}' in body


# -- DAILY_BUDGET --------------------------------------------------------------------------------

def test_refusal_reason_names_the_daily_budget():
    limits = guards.Limits(daily_budget=2.0)
    assert limits.active
    assert guards.refusal_reason(guards.Usage(0, 0, spent_today=1.99), limits) is None
    assert guards.refusal_reason(guards.Usage(0, 0, spent_today=2.0), limits) == \
        guards.DAILY_BUDGET


def _join(channel):
    return CallerJoined(channel=channel, uid=111, seq=1, notice_id=f"{channel}-j1")


def _leave(channel):
    return CallerLeft(channel=channel, uid=111, seq=2, notice_id=f"{channel}-l2", reason=1)


def test_a_call_is_refused_once_todays_estimate_reaches_the_budget(settings, store, clock):
    ids = (f"call{n:04d}" for n in itertools.count(1))
    service = CallService(settings.replace(max_concurrent_calls=0, daily_budget=0.5,
                                           convoai_per_minute=0.25),
                          store, FakeConvoAI(), new_id=lambda: next(ids))

    def refused_count():
        return metrics.REGISTRY.get_sample_value("phone_agent_calls_refused_total",
                                                 {"reason": "daily_budget"}) or 0

    def send(event):
        return service.handle_caller_event(
            event, event_type=103 if isinstance(event, CallerJoined) else 104)

    before = refused_count()
    send(_join("a"))
    clock.advance(60)   # 0.25 spent
    send(_leave("a"))
    clock.advance(600)  # an ended call stops costing
    assert store.usage(service.limits).spent_today == pytest.approx(0.25)
    send(_join("b"))
    clock.advance(59)   # 0.4958: still under
    assert send(_join("c"))["outcome"] == "call_started"
    clock.advance(1)    # a, b and c: 0.25 + 0.25 + 0.0042 >= 0.5
    answer = send(_join("d"))
    assert (answer["outcome"], answer["reason"]) == ("call_refused", "daily_budget")
    refused = store.get_call(answer["call_id"])
    assert (refused.state, refused.end_reason, refused.agent_id) == (
        lc.REFUSED, "daily_budget", None)
    assert refused_count() == before + 1
    assert service.admission() == "daily_budget"  # the SIP lookup and outbound calls too
