"""The admin API for campaigns and the do-not-call list (docs/outbound.md). Scheduled calls are
POST /api/calls with ``at`` (sip/views.py) and DELETE /api/calls/<id> (calls/views.py)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from calls.records import iso
from outbound import contacts as contact_lists
from outbound import results
from outbound.rules import Invalid
from outbound.service import Conflict, NotFound, OutboundService
from web.auth import require_admin
from web.errors import ApiError, BadRequest, json_object
from web.errors import NotFound as NotFoundError
from web.uploads import uploaded_text

bp = Blueprint("outbound", __name__, url_prefix="/api")


class CampaignConflict(ApiError):
    status = 409
    code = "conflict"


def _service() -> OutboundService:
    return current_app.extensions["outbound"]


def _answer(action: Any) -> Any:
    """Run ``action`` with the service's errors turned into the API's."""
    try:
        return action()
    except Invalid as exc:
        raise BadRequest(str(exc)) from None
    except NotFound as exc:
        raise NotFoundError(str(exc)) from None
    except Conflict as exc:
        raise CampaignConflict(str(exc)) from None


# -- campaigns ---------------------------------------------------------------------------------

@bp.post("/campaigns")
@require_admin
def create_campaign() -> ResponseReturnValue:
    """JSON ``{persona, from, contacts: [...], window, pacing, retry, ...}``, or a multipart
    form whose ``contacts`` file is a CSV and whose ``campaign`` field holds the rest as JSON
    (or its fields one by one: persona, from, name, timezone)."""
    if request.mimetype == "multipart/form-data":
        body, parse = _form_campaign(), contact_lists.from_csv
        raw: Any = uploaded_text(request.files.get("contacts"))
        if raw is None:
            raise BadRequest("the form needs a contacts file (CSV with a number column)")
    else:
        body = json_object()
        if isinstance(body.get("contacts_csv"), str):
            parse, raw = contact_lists.from_csv, body["contacts_csv"]
        else:
            parse, raw = contact_lists.from_json, body.get("contacts")
    base_url = request.url_root
    status = _answer(lambda: _service().create_campaign(body, parse(raw), base_url=base_url))
    return jsonify(status), 201


def _form_campaign() -> dict[str, Any]:
    text = request.form.get("campaign")
    if text:
        try:
            found = json.loads(text)
        except ValueError:
            raise BadRequest("the campaign field must be JSON") from None
        if not isinstance(found, dict):
            raise BadRequest("the campaign field must be a JSON object")
        return found
    return {k: v for k in ("persona", "from", "name", "timezone")
            if (v := request.form.get(k)) is not None}


@bp.get("/campaigns")
@require_admin
def list_campaigns() -> ResponseReturnValue:
    return jsonify(campaigns=_service().summaries())


@bp.get("/campaigns/<campaign_id>")
@require_admin
def campaign_status(campaign_id: str) -> ResponseReturnValue:
    return jsonify(_answer(lambda: _service().status(campaign_id)))


@bp.post("/campaigns/<campaign_id>/<any(pause, resume, cancel):verb>")
@require_admin
def control_campaign(campaign_id: str, verb: str) -> ResponseReturnValue:
    return jsonify(_answer(lambda: _service().control(campaign_id, verb)))


@bp.get("/campaigns/<campaign_id>/results.csv")
@require_admin
def export_results(campaign_id: str) -> ResponseReturnValue:
    status = _answer(lambda: _service().status(campaign_id))
    return results.download(campaign_id, status["contacts"])


# -- the do-not-call list ------------------------------------------------------------------------

@bp.post("/suppressions")
@require_admin
def add_suppression() -> ResponseReturnValue:
    """``{"number", "note"?}`` puts one number on the list (201; 200 if it was there), or a CSV
    (text/csv body, or a multipart ``file``) with a ``number`` column imports many."""
    if request.mimetype in ("text/csv", "multipart/form-data"):
        return _import_suppressions()
    body = json_object()
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 200):
        raise BadRequest("note must be text of at most 200 characters")
    number, added = _answer(lambda: _service().suppress(body.get("number"), note=note))
    return jsonify(number=number, added=added), 201 if added else 200


def _import_suppressions() -> ResponseReturnValue:
    if request.mimetype == "multipart/form-data":
        uploaded = uploaded_text(request.files.get("file"))
        if uploaded is None:
            raise BadRequest("the form needs a file (CSV with a number column)")
        text = uploaded
    else:
        text = request.get_data(as_text=True)
    numbers = _answer(lambda: contact_lists.numbers_from_csv(text))
    added = _service().import_suppressions(numbers)
    return jsonify(imported=len(numbers), added=added), 201


@bp.get("/suppressions")
@require_admin
def list_suppressions() -> ResponseReturnValue:
    rows = current_app.extensions["store"].list_suppressions()
    return jsonify(suppressions=[{
        "number": r["number"], "source": r["source"], "call_id": r["call_id"],
        "note": r["note"], "created_at": iso(r["created_at"])} for r in rows])


@bp.delete("/suppressions/<path:number>")
@require_admin
def remove_suppression(number: str) -> ResponseReturnValue:
    _answer(lambda: _service().unsuppress(number))
    return "", 204
