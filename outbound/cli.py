"""`flask campaigns ...`: create a campaign from a CSV of contacts, follow it with a progress
bar, pause, resume or cancel it. The running service dials it (every worker's dialer); these
commands only read and write the store."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click
from flask import Flask, current_app

from outbound import contacts as contact_lists
from outbound.rules import DAYS, Invalid
from outbound.service import Conflict, NotFound, OutboundService

#: How often `status --watch` reads the store.
WATCH_INTERVAL_S = 2.0
FINAL_CAMPAIGN_STATES = ("completed", "cancelled")


def _service() -> OutboundService:
    return current_app.extensions["outbound"]


def _fail(message: str) -> NoReturn:
    click.echo(f"campaigns: {message}", err=True)
    sys.exit(1)


def _days(text: str) -> list[str]:
    """``mon-sat`` or ``mon,wed,fri`` as the API's list of days."""
    text = text.strip().lower()
    if "-" in text:
        first, _, last = text.partition("-")
        if first[:3] not in DAYS or last[:3] not in DAYS:
            raise Invalid(f"--days {text!r}: use a range such as mon-sat or a list mon,wed")
        start, end = DAYS.index(first[:3]), DAYS.index(last[:3])
        return [DAYS[i % 7] for i in range(start, end + (1 if end >= start else 8))]
    return [d.strip() for d in text.split(",") if d.strip()]


def _delays(pairs: tuple[str, ...]) -> dict[str, float | None]:
    """``busy=60`` ``voicemail=none`` as the API's ``retry.delay_s`` (checked there)."""
    found: dict[str, float | None] = {}
    for pair in pairs:
        outcome, _, seconds = pair.partition("=")
        try:
            found[outcome.strip()] = None if seconds.strip() == "none" else float(seconds)
        except ValueError:
            raise Invalid(f"--delay {pair!r}: use OUTCOME=SECONDS, e.g. busy=600") from None
    return found


def _summary_line(status: dict[str, Any]) -> str:
    counts = ", ".join(f"{state} {n}" for state, n in status["counts"].items() if n)
    return (f"{status['id']}  {status['state']}  {status['persona']}  "
            f"{status['done']}/{status['total']} done  ({counts})")


def init_app(app: Flask) -> None:
    @app.cli.group("campaigns")
    def campaigns() -> None:
        """Outbound campaigns: a list of people called inside a window, paced, with retries."""

    @campaigns.command("create")
    @click.argument("contacts_csv", type=click.Path(exists=True, dir_okay=False,
                                                    path_type=Path))
    @click.option("--persona", required=True, help="An outbound persona (with [outbound]).")
    @click.option("--from", "from_number", help="Caller id (default OUTBOUND_CALLER_ID).")
    @click.option("--name", help="A name for people.")
    @click.option("--window", default="09:00-20:00", show_default=True,
                  help="Calling hours in each contact's own time.")
    @click.option("--days", default="mon-sat", show_default=True,
                  help="Calling days: a range (mon-fri) or a list (mon,wed,fri).")
    @click.option("--timezone", default="UTC", show_default=True,
                  help="Time zone of contacts whose row names none.")
    @click.option("--max-concurrent", default=1, show_default=True, type=int)
    @click.option("--per-minute", default=10, show_default=True, type=int)
    @click.option("--max-attempts", default=3, show_default=True, type=int)
    @click.option("--delay", "delays", multiple=True, metavar="OUTCOME=SECONDS",
                  help="Wait before retrying after busy, no_answer, failed or voicemail "
                       "(repeatable; SECONDS 'none': not retried). Defaults: docs/outbound.md.")
    def create(contacts_csv: Path, persona: str, from_number: str | None, name: str | None,
               window: str, days: str, timezone: str, max_concurrent: int, per_minute: int,
               max_attempts: int, delays: tuple[str, ...]) -> None:
        """Create a campaign from CONTACTS_CSV (columns: number, timezone, then one column per
        template variable). The running service starts dialling it."""
        start, _, end = window.partition("-")
        try:
            body = {"persona": persona, "from": from_number, "name": name,
                    "timezone": timezone,
                    "window": {"start": start.strip(), "end": end.strip(), "days": _days(days)},
                    "pacing": {"max_concurrent": max_concurrent, "per_minute": per_minute},
                    "retry": {"max_attempts": max_attempts, "delay_s": _delays(delays)}}
            contacts = contact_lists.from_csv(
                contacts_csv.read_text(encoding="utf-8-sig", errors="replace"))
            status = _service().create_campaign(body, contacts)
        except Invalid as exc:
            _fail(str(exc))
        click.echo(f"campaign {status['id']} created: {status['total']} contacts"
                   + (f" ({status['duplicates_skipped']} duplicate numbers left out)"
                      if status["duplicates_skipped"] else ""))
        click.echo(f"follow it with: flask campaigns status {status['id']} --watch")

    @campaigns.command("list")
    def list_() -> None:
        """Every campaign, newest first."""
        found = _service().summaries()
        if not found:
            click.echo("no campaigns: make one with `flask campaigns create contacts.csv "
                       "--persona appointments`")
        for status in found:
            click.echo(_summary_line(status))

    @campaigns.command("status")
    @click.argument("campaign_id")
    @click.option("--watch", is_flag=True,
                  help="Show a progress bar until the campaign is completed or cancelled.")
    def status(campaign_id: str, watch: bool) -> None:
        """A campaign's counts by contact state (and, with --watch, its progress)."""
        current = _status(campaign_id)
        if not watch or current["state"] in FINAL_CAMPAIGN_STATES:
            click.echo(_summary_line(current))
            return
        with click.progressbar(length=current["total"], label=campaign_id,
                               show_pos=True, file=sys.stdout) as bar:
            shown = 0
            while True:
                bar.update(current["done"] - shown)
                shown = current["done"]
                if current["state"] in FINAL_CAMPAIGN_STATES:
                    break
                time.sleep(WATCH_INTERVAL_S)
                current = _status(campaign_id, summary=True)
        click.echo(_summary_line(current))

    for verb in ("pause", "resume", "cancel"):
        _control_command(campaigns, verb)


def _status(campaign_id: str, *, summary: bool = False) -> dict[str, Any]:
    """The campaign's status; ``summary``: its counts only (cheap to poll)."""
    try:
        if summary:
            return _service().summary(campaign_id)
        return _service().status(campaign_id)
    except NotFound as exc:
        _fail(str(exc))


def _control_command(group: click.Group, verb: str) -> None:
    @group.command(verb, help=f"{verb.capitalize()} a campaign.")
    @click.argument("campaign_id")
    def control(campaign_id: str) -> None:
        try:
            status = _service().control(campaign_id, verb)
        except (NotFound, Conflict) as exc:
            _fail(str(exc))
        click.echo(_summary_line(status))
