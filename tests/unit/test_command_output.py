"""A `flask` command prints its own output and nothing else; the served app keeps its logs."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import click
import pytest
from flask import cli as flask_cli

from config import Settings
from factory.app import create_app
from observability import logs

ROOT = Path(__file__).resolve().parents[2]
FLASK = Path(sys.executable).parent / "flask"


@pytest.fixture
def keep_logging():
    """Put the log handler back on its stream, at its level, once the test is done (or leave
    one on stdout, if no app had been built in this process before)."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_phone_agent", False)), None)
    level, stream = root.level, handler.stream if handler else sys.stdout
    yield
    logs.configure(logging.getLevelName(level), [], stream=stream)


def test_a_command_prints_only_its_own_output_even_at_log_level_info(tmp_path):
    # A fresh database: the command's app runs every migration, which logs at INFO.
    env = {**os.environ, "LOG_LEVEL": "INFO", "DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    result = subprocess.run([str(FLASK), "--app", "app", "personas", "list"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "support" in result.stdout
    assert not [line for line in result.stdout.splitlines() if line.lstrip().startswith("{")]
    assert result.stderr == ""  # no migrations, no SANDBOX MODE banner


@pytest.mark.parametrize(("command", "banner"), [
    (flask_cli.run_command, True),  # `flask run` serves the app: its logs, as gunicorn's
    (click.Command("list"), False),
])
def test_the_banner_and_start_up_logs_are_for_the_served_app_only(
        tmp_path, keep_logging, command, banner):
    settings = Settings.for_tests(database_url=f"sqlite:///{tmp_path / 'app.db'}",
                                  log_level="INFO")
    out, err = io.StringIO(), io.StringIO()
    with click.Context(command), redirect_stdout(out), redirect_stderr(err):
        create_app(settings)
    out, err = out.getvalue(), err.getvalue()
    assert ("SANDBOX MODE" in out) is banner
    assert ('"db.migrated"' in out) is banner
    assert err == ""
    assert logging.getLogger().level == (logging.INFO if banner else logging.WARNING)
