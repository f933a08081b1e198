"""The dashboard's campaigns (docs/dashboard.md): the list, a campaign's page whose progress
refreshes live, its pause, resume and cancel buttons, its results as CSV, and the form that
starts one from a CSV of contacts. Views only: outbound.service does the work, as it does for
the admin API (outbound/views.py), but behind the dashboard's session instead of the bearer
token, so the browser never holds the admin token."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import (
    current_app,
    flash,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from outbound import contacts as contact_lists
from outbound import results
from outbound.rules import DAYS, Invalid
from outbound.service import CONTROLS, Conflict, NotFound, OutboundService
from pages import bp
from store.campaigns import ACTIVE, CANCELLED, CONTACT_STATES, FINISHED, PAUSED
from web.uploads import uploaded_text

#: How often a campaign's page reloads its progress (the page works without the script).
PROGRESS_REFRESH_MS = 2000
#: Its contacts table reloads itself too, less often, up to this many contacts: the table is
#: the whole status (every contact and attempt), too much to read every few seconds beyond.
CONTACTS_REFRESH_MS = 5000
LIVE_CONTACTS_MAX = 500
#: Which buttons a campaign in each state offers: the moves OutboundService allows from it.
VERBS = {state: tuple(verb for verb, (_, allowed) in CONTROLS.items() if state in allowed)
         for state in (ACTIVE, PAUSED)}
DONE_VERB = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}
FINAL_STATES = (FINISHED, CANCELLED)
#: The new-campaign form's defaults: OutboundService's own, shown so the operator sees them.
FORM_DEFAULTS = {"name": "", "from": "", "timezone": "UTC", "window_start": "09:00",
                 "window_end": "20:00", "days": list(DAYS[:6]), "max_concurrent": "1",
                 "per_minute": "10", "max_attempts": "3"}
COUNT_FIELDS = {"max_concurrent": "pacing.max_concurrent", "per_minute": "pacing.per_minute",
                 "max_attempts": "retry.max_attempts"}


@bp.get("/campaigns")
def campaigns() -> ResponseReturnValue:
    return render_template("pages/campaigns.html", campaigns=_service().summaries(),
                           states=CONTACT_STATES)


@bp.get("/campaigns/<campaign_id>")
def campaign(campaign_id: str) -> ResponseReturnValue:
    try:
        status = _service().status(campaign_id)
    except NotFound:
        return _not_found(campaign_id)
    # A finished or cancelled campaign changes no more once its last call is settled.
    running = status["state"] not in FINAL_STATES or status["counts"].get("dialling", 0) > 0
    return render_template(
        "pages/campaign.html", c=status, states=CONTACT_STATES,
        verbs=VERBS.get(status["state"], ()), notices=get_flashed_messages(),
        refresh_ms=PROGRESS_REFRESH_MS if running else None,
        live_contacts=CONTACTS_REFRESH_MS
        if running and status["total"] <= LIVE_CONTACTS_MAX else None)


@bp.get("/campaigns/<campaign_id>/progress")
def campaign_progress(campaign_id: str) -> ResponseReturnValue:
    """The state, progress bar and counts alone, which the campaign page's script swaps in
    (counted in the database: no contact list, so polling stays cheap)."""
    try:
        summary = _service().summary(campaign_id)
    except NotFound:
        return _not_found(campaign_id)
    return render_template("pages/_campaign_progress.html", c=summary, states=CONTACT_STATES)


@bp.get("/campaigns/<campaign_id>/contacts")
def campaign_contacts(campaign_id: str) -> ResponseReturnValue:
    """The contacts table alone, which the campaign page's script swaps in."""
    try:
        status = _service().status(campaign_id)
    except NotFound:
        return _not_found(campaign_id)
    return render_template("pages/_campaign_contacts.html", c=status,
                           live_contacts=CONTACTS_REFRESH_MS)


@bp.post("/campaigns/<campaign_id>/<any(pause, resume, cancel):verb>")
def control_campaign(campaign_id: str, verb: str) -> ResponseReturnValue:
    try:
        _service().control(campaign_id, verb)
    except NotFound:
        return _not_found(campaign_id)
    except Conflict as exc:
        flash(f"Not {DONE_VERB[verb]}: {exc}.")
    else:
        flash(f"Campaign {DONE_VERB[verb]}.")
    return redirect(url_for("dashboard.campaign", campaign_id=campaign_id))


@bp.get("/campaigns/<campaign_id>/results.csv")
def campaign_results(campaign_id: str) -> ResponseReturnValue:
    try:
        status = _service().status(campaign_id)
    except NotFound:
        return _not_found(campaign_id)
    return results.download(campaign_id, status["contacts"])


@bp.get("/campaigns/new")
def new_campaign() -> ResponseReturnValue:
    return _form_page(_defaults(), error=None, status=200)


@bp.post("/campaigns/new")
def create_campaign() -> ResponseReturnValue:
    form = _entered(request.form)
    try:
        body = campaign_body(form)
        text = uploaded_text(request.files.get("contacts"))
        if text is None:
            raise Invalid("choose a CSV file of contacts (a number column, optionally "
                          "timezone and one column per variable)")
        created = _service().create_campaign(body, contact_lists.from_csv(text),
                                             base_url=request.url_root)
    except Invalid as exc:
        # The service's message names the field or the CSV line to fix; the form keeps what
        # was entered (a browser never refills a file input, so the file is chosen again).
        return _form_page(form, error=str(exc), status=400)
    skipped = created.get("duplicates_skipped") or 0
    flash(f"Campaign created with {created['total']} contacts"
          + (f" ({skipped} duplicate{'s' if skipped > 1 else ''} left out)." if skipped else "."))
    return redirect(url_for("dashboard.campaign", campaign_id=created["id"]))


def campaign_body(form: Mapping[str, Any]) -> dict[str, Any]:
    """The service's request body from the form's fields (as :func:`_entered` read them).
    Here the counts are only read as whole numbers (a form sends text); the service checks
    their ranges and everything else, with the messages the API gives too."""
    counts = {}
    for key, what in COUNT_FIELDS.items():
        text = str(form.get(key) or "").strip()
        if not (text.isascii() and text.isdigit()):  # "²" is a digit to isdigit()
            raise Invalid(f"{what} must be a whole number")
        counts[key] = int(text)
    if not form.get("days"):
        raise Invalid("window.days: choose at least one day")
    body: dict[str, Any] = {
        "persona": form.get("persona"), "timezone": form.get("timezone") or "UTC",
        "window": {"start": form.get("window_start"), "end": form.get("window_end"),
                   "days": list(form["days"])},
        "pacing": {"max_concurrent": counts["max_concurrent"],
                   "per_minute": counts["per_minute"]},
        "retry": {"max_attempts": counts["max_attempts"]},
    }
    if form.get("from"):
        body["from"] = form["from"]
    if form.get("name"):
        body["name"] = form["name"]
    return body


def _entered(values: Mapping[str, Any]) -> dict[str, Any]:
    """The form's fields as text, cut to a sane length (they are shown again on an error)."""
    form: dict[str, Any] = {key: str(values.get(key) or "").strip()[:200]
                            for key in (*FORM_DEFAULTS, "persona") if key != "days"}
    getlist = getattr(values, "getlist", None)
    days = getlist("days") if getlist else values.get("days") or []
    form["days"] = [d for d in DAYS if d in days]
    return form


def _defaults() -> dict[str, Any]:
    form = dict(FORM_DEFAULTS)
    form["from"] = current_app.extensions["settings"].outbound_caller_id or ""
    form["persona"] = next(iter(_service().outbound_personas()), "")
    return form


def _form_page(form: Mapping[str, Any], *, error: str | None,
               status: int) -> ResponseReturnValue:
    return render_template("pages/campaign_new.html", form=form, error=error, days=DAYS,
                           personas=_service().outbound_personas()), status


def _not_found(campaign_id: str) -> ResponseReturnValue:
    return render_template("pages/not_found.html", what="campaign", item_id=campaign_id,
                           back=url_for("dashboard.campaigns"), back_label="the campaigns"), 404


def _service() -> OutboundService:
    return current_app.extensions["outbound"]
