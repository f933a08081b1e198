"""`flask sip ...`: lines (numbers routed by the ring-time lookup) and outbound calls."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app

from sip.errors import GatewayError
from sip.payload import PROMPTS
from sip.service import Placed
from sip.views import provision_from, reservation_json
from web.errors import ApiError


def init_app(app: Flask) -> None:
    @app.cli.group("sip")
    def sip() -> None:
        """The SIP gateway: lines, reservations and outbound calls."""

    @sip.command("provision")
    @click.option("--region", default="NA", show_default=True,
                  help="Where callers are: NA, EU, AS, JP, IN or CN.")
    @click.option("--persona", help="The persona that answers (default: routing).")
    @click.option("--label", help="A note for people.")
    @click.option("--renew", is_flag=True,
                  help="Instead: re-issue the reservations that expire within the hour.")
    def provision(region: str, persona: str | None, label: str | None, renew: bool) -> None:
        """Reserve a number and PIN into a fresh channel (valid up to 24 hours)."""
        if renew:
            reservations = current_app.extensions["sip"].reservations
            renewed = reservations.renew_expiring(within_s=3600, events_url=None)
            click.echo(f"{len(renewed)} reservation(s) renewed")
            for reservation in renewed:
                _show(reservation_json(reservation))
            return
        try:
            reservation = provision_from(region, persona, label)
        except ApiError as exc:
            _fail(exc.message)
        _show(reservation_json(reservation))

    @sip.command("numbers")
    def numbers() -> None:
        """List the current reservations."""
        found = current_app.extensions["store"].list_reservations()
        if not found:
            click.echo("no reservations: make one with `flask sip provision --region NA`")
        for reservation in found:
            _show(reservation_json(reservation))

    @sip.command("release")
    @click.argument("reservation_id")
    def release(reservation_id: str) -> None:
        """Cancel a reservation at the gateway."""
        reservation = current_app.extensions["store"].get_reservation(reservation_id)
        if reservation is None or reservation["released_at"] is not None:
            _fail(f"no reservation {reservation_id}")
        try:
            current_app.extensions["sip"].reservations.release(reservation)
        except GatewayError as exc:
            _fail(f"the SIP gateway refused: {exc}")
        click.echo(f"reservation {reservation_id} released")

    @sip.group("lines")
    def lines() -> None:
        """Numbers of yours that the gateway routes through POST /sip/lookup."""

    @lines.command("add")
    @click.argument("number")
    @click.option("--persona", help="The persona that answers this number.")
    @click.option("--label", help="A note for people (shown in lists).")
    @click.option("--var", "variables", multiple=True, metavar="NAME=VALUE",
                  help="A template variable for this number's calls (repeatable).")
    @click.option("--pin", "pins", multiple=True, metavar="PIN=PERSONA",
                  help="Callers who enter PIN reach PERSONA (repeatable).")
    def add(number: str, persona: str | None, label: str | None,
            variables: tuple[str, ...], pins: tuple[str, ...]) -> None:
        """Register NUMBER as a line: E.164 (+18005550100), its digits, an extension (7373)
        or a SIP user (alice), as the trunk sends it to the gateway."""
        try:
            line = current_app.extensions["sip"].lines.add(
                number, persona=persona, label=label, variables=_pairs(variables),
                pins=_pairs(pins) or None)
        except ValueError as exc:
            _fail(str(exc))
        click.echo(f"line {line['number']}: persona {line['persona'] or '(routing default)'}")

    @lines.command("list")
    def list_() -> None:
        """List the lines."""
        found = current_app.extensions["store"].list_lines()
        if not found:
            click.echo("no lines: add one with `flask sip lines add +18005550100`")
        for line in found:
            click.echo(f"{line['number']}  persona={line['persona'] or '-'}  "
                       f"label={line['label'] or '-'}  variables={line['variables']}"
                       f"{'  pins=' + str(line['pins']) if line['pins'] else ''}")

    @lines.command("remove")
    @click.argument("number")
    def remove(number: str) -> None:
        """Stop routing NUMBER."""
        try:
            removed = current_app.extensions["sip"].lines.remove(number)
        except ValueError as exc:
            _fail(str(exc))
        if removed is None:
            _fail(f"no line {number}")
        click.echo(f"line {removed} removed")

    @sip.command("call")
    @click.argument("to")
    @click.option("--from", "caller_id", help="Caller id (default OUTBOUND_CALLER_ID).")
    @click.option("--persona", help="The persona that talks (default: routing).")
    @click.option("--var", "variables", multiple=True, metavar="NAME=VALUE")
    @click.option("--region", default="NA", show_default=True)
    @click.option("--prompt", default="false", show_default=True,
                  type=click.Choice(sorted(PROMPTS)))
    def call(to: str, caller_id: str | None, persona: str | None, variables: tuple[str, ...],
             region: str, prompt: str) -> None:
        """Call TO with an agent: a fresh channel, the agent started, then the gateway dials.
        Waits for the gateway's answer (the callee picking up, or a failure)."""
        settings = current_app.extensions["settings"]
        sip_service = current_app.extensions["sip"]
        sip_service.pool = None  # from the shell, dial in the foreground and report
        try:
            placed: Placed = sip_service.place_outbound(
                to=to, caller_id=caller_id or settings.outbound_caller_id or None,
                persona=persona, variables=_pairs(variables), region=region, prompt=prompt,
                events_url=None)
        except ValueError as exc:
            _fail(str(exc))
        record = current_app.extensions["store"].get_call(placed.call.id)
        click.echo(f"call {record.id}: {record.state}"
                   f"{' (' + record.end_reason + ')' if record.end_reason else ''}; "
                   f"agent {record.agent_id or '-'}; gateway call {record.gateway_callid or '-'}")
        if record.state not in ("starting", "active"):
            sys.exit(1)


def _show(reservation: dict) -> None:
    click.echo(f"{reservation['id']}  {reservation['display'] or reservation['number']}  "
               f"PIN {reservation['pin']}  persona {reservation['persona']}  region "
               f"{reservation['region']}  expires {reservation['expires_at']}"
               f"{'  (' + reservation['label'] + ')' if reservation['label'] else ''}")


def _pairs(items: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            _fail(f"--var takes NAME=VALUE, not {item!r}")
        pairs[name] = value
    return pairs


def _fail(message: str) -> None:
    click.echo(f"sip: {message}", err=True)
    sys.exit(1)
