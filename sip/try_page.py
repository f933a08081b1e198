"""GET /try: the public "call our AI" page (Agora's sample had one). A visitor picks a region and
gets a number and PIN into a fresh channel with the default persona. Off unless TRY_PAGE is on,
and limited per client address and per day (counted in the store, so every worker and instance
shares the count), because each reservation can run up a bill."""

from __future__ import annotations

import hashlib
import time

from flask import Blueprint, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue

from sip.views import provision_from, reservation_json
from web.errors import ApiError, BadRequest, NotFound, json_object
from web.pages_security import check_csrf
from web.security import TRY_PAGE, rate_limit, request_address

bp = Blueprint("try_page", __name__, template_folder="templates", static_folder="static",
               static_url_path="/try/static")
REGIONS = {"NA": "North America", "EU": "Europe", "AS": "Asia", "JP": "Japan", "IN": "India"}
TRY_LABEL = "try:"
bp.before_request(check_csrf)  # the page's script posts with the session's token


class TooManyTries(ApiError):
    """The try page's daily limit is reached."""

    status = 429
    code = "limit_reached"


@bp.get("/try")
@rate_limit(TRY_PAGE, when=lambda settings: settings.try_page)
def page() -> ResponseReturnValue:
    _enabled()
    return render_template("sip/try.html", regions=REGIONS)


@bp.post("/try/number")
@rate_limit(TRY_PAGE, when=lambda settings: settings.try_page)
def reserve() -> ResponseReturnValue:
    settings = _enabled()
    # JSON only: a cross-site form cannot send it without a CORS preflight, which we never allow.
    if not request.is_json:
        raise BadRequest("send Content-Type: application/json")
    region = str(json_object().get("region") or "")
    if region not in REGIONS:
        raise BadRequest(f"region must be one of {', '.join(REGIONS)}")
    store = current_app.extensions["store"]
    day_start = time.time() - 86_400
    mine = f"{TRY_LABEL}{_address_key(settings.agora_ncs_secret)}"
    today = [r for r in store.list_reservations(include_released=True)
             if (r["label"] or "").startswith(TRY_LABEL) and r["created_at"] >= day_start]
    if len(today) >= settings.try_daily_limit:
        raise TooManyTries("today's test numbers are all given out; please try tomorrow")
    if sum(r["label"] == mine for r in today) >= settings.try_per_address_limit:
        raise TooManyTries("you have had today's test numbers; please try tomorrow")
    reservation = reservation_json(provision_from(region, None, mine))
    return jsonify({k: reservation[k] for k in ("number", "display", "pin", "expires_at")}), 201


def _enabled():  # type: ignore[no-untyped-def]
    settings = current_app.extensions["settings"]
    if not settings.try_page:
        raise NotFound("the try page is off (TRY_PAGE)")
    return settings


def _address_key(salt: str) -> str:
    """The client address, hashed (with a server secret as salt) so none is stored in clear."""
    address = request_address()  # the client's, behind PROXY_HOPS proxies too
    return hashlib.sha256(f"{salt}|{address}".encode()).hexdigest()[:16]
