"""`flask calls reconcile`: one reconciler run from the command line (calls/reconcile.py)."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from convoai.errors import ConvoAIError
from store import StoreUnavailable

group = AppGroup("calls", help="Call records and the reconciler.")


@group.command("reconcile")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def reconcile(as_json: bool) -> None:
    """Stop orphaned agents of this service, end calls past their persona's limit, finish
    half-done work and deliver due events, once."""
    try:
        report = current_app.extensions["reconciler"].run(force=True)
    except (StoreUnavailable, ConvoAIError) as exc:
        raise click.ClickException(f"reconcile failed: {exc}") from None
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    click.echo(
        f"agents listed: {report.listed}; orphans stopped: {report.orphans_stopped}; "
        f"other services' agents left alone: {report.foreign_agents}; "
        f"calls closed (agent gone): {report.calls_closed}; goodbyes: {report.goodbyes}; "
        f"ended at max length: {report.ended_over_length}; due work: {report.swept}; "
        f"records erased: {report.records_erased}; events delivered: {report.events_delivered}")


def init_app(app: Flask) -> None:
    app.cli.add_command(group)
