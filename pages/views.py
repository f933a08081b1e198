"""The dashboard's pages: overview (live and recent calls), one call, and charts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from flask import current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue

from calls import costs, guards, lifecycle
from calls.records import call_detail, call_json
from calls.views import _cursor, _encode_cursor  # the API's cursors: one format for both
from pages import bp, display, stats
from pages.charts import Bar, bar_chart
from store import CallRecord, Store
from web.errors import BadRequest

PAGE_SIZE = 25
LIVE_LIMIT = 100
#: How often the overview's script reloads the live calls (the page works without it).
REFRESH_MS = 5000
STATES = (*lifecycle.OPEN_STATES, *lifecycle.FINAL_STATES)
#: Bins of the two distributions: time to agent in milliseconds, call length in seconds.
TIME_TO_AGENT_EDGES_MS = (0, 250, 500, 1000, 1500, 2000, 3000, 5000)
CALL_LENGTH_EDGES_S = (0, 10, 30, 60, 120, 300, 600)


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {"fmt": display}


@bp.get("/")
def overview() -> ResponseReturnValue:
    store, args, notices = _store(), request.args, []
    state = args.get("state") or None
    if state not in (None, *STATES):
        notices.append(f"There is no state {state!r}; showing every state.")
        state = None
    persona = (args.get("persona") or "")[:64] or None
    try:
        after = _cursor(args.get("cursor"))
    except BadRequest:
        notices.append("That page link is out of date; showing the newest calls.")
        after = None
    records = store.list_calls(states=[state] if state else None, persona=persona,
                               limit=PAGE_SIZE + 1, after=after)
    page, more = records[:PAGE_SIZE], len(records) > PAGE_SIZE
    older = url_for(".overview", state=state, persona=persona,
                    cursor=_encode_cursor(page[-1])) if more and page else None
    newest = url_for(".overview", state=state, persona=persona) if after else None
    return render_template(
        "pages/overview.html", live=_live_rows(store), recent=_rows(page),
        state=state, persona=persona, states=STATES, notices=notices, older=older,
        newest=newest, personas=current_app.extensions["personas"].names(),
        refresh_ms=REFRESH_MS)


@bp.get("/live")
def live() -> ResponseReturnValue:
    """The live-calls table alone, which the overview's script swaps in."""
    return render_template("pages/_live.html", live=_live_rows(_store()))


@bp.get("/calls/<call_id>")
def call(call_id: str) -> ResponseReturnValue:
    store = _store()
    record = store.get_call(call_id)
    if record is None:
        return render_template("pages/not_found.html", call_id=call_id), 404
    timeline = store.timeline(call_id)
    detail = call_detail(record, timeline, store.tool_calls_of(call_id),
                         store.analysis_of(call_id), rates=_rates(), now=store.clock())
    secrets = current_app.extensions["settings"].secret_values()
    for tool_call in detail["tool_calls"]:
        tool_call["arguments_shown"] = display.mask(
            json.dumps(tool_call["arguments"], ensure_ascii=False), secrets)
    urgent = [{"at": shown["at"], "summary": display.mask(raw["detail"]["summary"], secrets)}
              for raw, shown in zip(timeline, detail["timeline"], strict=True)
              if raw["kind"] == "flagged_urgent" and raw["detail"]]
    events = [{**shown, "offset_s": raw["at"] - record.created_at,
               "summary": display.describe(raw["detail"], secrets)}
              for raw, shown in zip(timeline, detail["timeline"], strict=True)]
    detail["last_error"] = display.mask(detail["last_error"], secrets)
    for error in detail.get("agent_errors") or []:
        error["message"] = display.mask(error.get("message"), secrets)
    return render_template("pages/call.html", call=detail, urgent=urgent,
                           events=events, transcript=detail["transcript"],
                           live=record.state in lifecycle.OPEN_STATES)


@bp.get("/charts")
def charts() -> ResponseReturnValue:
    now = time.time()
    sample = stats.recent_calls(_store().engine, since=stats.window_start(now))
    per_hour = stats.calls_per_hour(sample.calls, now=now)
    hourly = bar_chart(
        [Bar(time.strftime("%H", time.gmtime(h.start)), h.count,
             f"{time.strftime('%Y-%m-%d %H:00', time.gmtime(h.start))} UTC: {h.count} calls")
         for h in per_hour], title="Calls per hour, last 24 hours (UTC)", label_every=3)
    waits = stats.times_to_agent_ms(sample.calls)
    lengths = stats.call_lengths_s(sample.calls)
    return render_template(
        "pages/charts.html", sample=sample, total=sum(h.count for h in per_hour),
        hourly=hourly, costs=daily_costs(_store(), _rates(), now),
        waits=_distribution(waits, TIME_TO_AGENT_EDGES_MS, display.ms_edge, "Time to agent"),
        lengths=_distribution(lengths, CALL_LENGTH_EDGES_S, display.seconds_edge,
                              "Call length"))


def daily_costs(store: Store, rates: costs.Rates, now: float) -> dict[str, Any]:
    """The estimated cost of today's and yesterday's calls (UTC), per persona and per number:
    each total is the sum of the costs the API shows for those calls."""
    since = guards.utc_day_start(now) - guards.DAY_S
    sample = stats.recent_calls(store.engine, since=since)
    return {"days": costs.daily_totals(sample.calls, rates, now, day_of=stats.utc_day),
            "truncated": sample.truncated, "currency": rates.currency}


def _distribution(values: list[float], edges: tuple[float, ...], edge: Callable[[float], str],
                  title: str) -> dict[str, Any]:
    """A histogram chart of ``values`` and their percentiles."""
    bars = []
    for b in stats.histogram(values, edges):
        label = f"{edge(b.low)}+" if b.high is None else f"< {edge(b.high)}"
        bars.append(Bar(label, b.count, f"{_range(b, edge)}: {b.count} calls"))
    chart = bar_chart(bars if values else [], title=f"{title}, last 24 hours")
    return {"chart": chart, "summary": stats.summarize(values)}


def _range(b: stats.Bin, edge: Callable[[float], str]) -> str:
    return f"{edge(b.low)} or more" if b.high is None else f"{edge(b.low)} to {edge(b.high)}"


def _live_rows(store: Store) -> list[dict[str, Any]]:
    return _rows(store.list_calls(states=list(lifecycle.OPEN_STATES), limit=LIVE_LIMIT))


def _rows(records: list[CallRecord]) -> list[dict[str, Any]]:
    now = time.time()
    return [{**call_json(r), "age_s": max(0.0, now - r.created_at)} for r in records]


def _store() -> Store:
    return current_app.extensions["store"]


def _rates() -> costs.Rates:
    return current_app.extensions["calls"].rates
