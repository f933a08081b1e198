"""``flask ncs verify``: does a saved webhook request pass the signature check, and if not, why.

    flask --app app ncs verify --body body.json --header 'Agora-Signature-V2: 6d33...'
    flask --app app ncs verify --request saved.json   # {"headers": {...}, "body": "..."}

Prints one line (ncs/diagnose.py decides it). Exit status: 0 it verifies, 1 a diagnosed
failure, 2 the command was used wrongly (a file that cannot be read, a malformed header).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from ncs.diagnose import diagnose
from ncs.signature import NamedSecret

ncs_group = AppGroup("ncs", help="Agora NCS webhooks: check a saved request's signature.")


def init_app(app: Flask) -> None:
    """Register the ``ncs`` command group."""
    app.cli.add_command(ncs_group)


class UsageProblem(Exception):
    """The command was given something it cannot use; the message is the line to print."""


@ncs_group.command("verify")
@click.option("--body", "body_path", metavar="FILE",
              help="The raw request body, byte for byte ('-' reads standard input).")
@click.option("--header", "-H", "header_lines", multiple=True, metavar="'NAME: VALUE'",
              help="A request header as received; repeat for each.")
@click.option("--request", "request_path", metavar="FILE",
              help='A saved request: {"headers": {...}, "body": "..."} (the body may also be '
                   "the JSON object itself).")
def verify_command(body_path: str | None, header_lines: tuple[str, ...],
                   request_path: str | None) -> None:
    """Say whether a webhook request verifies (and with which secret) or the likely cause."""
    try:
        body, headers, exact = _read_request(body_path, header_lines, request_path)
    except UsageProblem as exc:
        _usage_error(str(exc))
    result = diagnose(body, headers, configured_secrets(),
                      current_app.extensions["ncs_secrets_for_product"], exact=exact)
    click.echo(result.message)
    sys.exit(0 if result.ok else 1)


def configured_secrets() -> list[NamedSecret]:
    """The secrets the webhook verifies with, by setting name (as app.py builds its verifier)."""
    settings = current_app.extensions["settings"]
    return [NamedSecret("AGORA_NCS_SECRET", settings.agora_ncs_secret),
            NamedSecret("AGORA_NCS_SECRET_PREVIOUS", settings.agora_ncs_secret_previous),
            NamedSecret("AGORA_CONVOAI_NCS_SECRET", settings.agora_convoai_ncs_secret)]


def _read_request(body_path: str | None, header_lines: tuple[str, ...],
                  request_path: str | None) -> tuple[bytes, dict[str, str], bool]:
    if request_path and body_path:
        raise UsageProblem("give either --request or --body, not both")
    headers = dict(_parse_header(line) for line in header_lines)
    if request_path:
        body, saved, exact = _saved_request(request_path)
        return body, {**saved, **headers}, exact
    if not body_path:
        raise UsageProblem("give the request: --body FILE with --header lines, or --request FILE")
    return _read_bytes(body_path), headers, True


def _parse_header(line: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    if not colon or not name.strip() or any(c.isspace() for c in name.strip()):
        raise UsageProblem(f"--header must look like 'Name: value', not {line[:40]!r}")
    return name.strip(), value.strip()


def _saved_request(path: str) -> tuple[bytes, dict[str, str], bool]:
    raw = _read_bytes(path)
    try:
        saved = json.loads(raw)
    except (ValueError, RecursionError):
        raise UsageProblem(f"{path} is not JSON") from None
    if not isinstance(saved, dict) or "body" not in saved:
        raise UsageProblem(f'{path} must be a JSON object with "headers" and "body"')
    headers = saved.get("headers") or {}
    if isinstance(headers, list) and all(isinstance(p, list) and len(p) == 2 for p in headers):
        headers = dict(headers)
    if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise UsageProblem(f'{path}: "headers" must map header names to text')
    body = saved["body"]
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass"), headers, True
    if isinstance(body, dict):
        # A parsed body: its exact bytes are lost, so diagnose() tries its standard forms.
        compact = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        return compact.encode("utf-8", "surrogatepass"), headers, False
    raise UsageProblem(f'{path}: "body" must be the body as text or as a JSON object')


def _read_bytes(path: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageProblem(f"cannot read {path}: {exc.strerror or exc}") from None


def _usage_error(message: str) -> NoReturn:
    click.echo(f"ncs verify: {message}", err=True)
    sys.exit(2)
