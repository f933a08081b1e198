"""`flask simulate call` and `flask simulate storm`: the simulator from the shell."""

from __future__ import annotations

import os
import secrets
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import click
from flask import current_app
from flask.cli import AppGroup

from sandbox.conversation import SandboxAgents, Script, ScriptError, load_script, play
from sandbox.simulator import Refused, SimulationError, Target, simulate_call, simulate_storm


def _target(url: str | None, secret: str | None, token: str | None,
            use_sandbox: bool) -> Target:
    settings = current_app.extensions["settings"]
    default_url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
    return Target(
        url=url or default_url, ncs_secret=secret or settings.agora_ncs_secret,
        admin_token=token or settings.admin_token, pstn_uid=settings.pstn_uid,
        sandbox_url=settings.sandbox_url if settings.sandbox and use_sandbox else None)


@contextmanager
def _stopped_like_ctrl_c() -> Iterator[None]:
    """SIGTERM (a terminal closed, a CI job cancelled) interrupts like Ctrl-C, so that the
    simulator still sends the leaves of the calls it started before it exits."""

    def interrupt(signum: int, frame: object) -> NoReturn:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fail(exc: SimulationError) -> NoReturn:
    """One line on stderr; exit 1 when the service refused us (nothing was sent), 2 when the
    simulation could not run (the service is unreachable)."""
    click.echo(f"simulate: {exc}", err=True)
    sys.exit(1 if isinstance(exc, Refused) else 2)


def _script_fail(message: str) -> NoReturn:
    click.echo(f"simulate: {message}", err=True)
    sys.exit(1)


def _conversation(script: Script, target: Target, wait_s: float) -> Callable[[str], None]:
    """The scripted caller: plays ``script`` against the call's agent in the sandbox."""
    agents = SandboxAgents(target.sandbox_url or "")

    def converse(agent_id: str) -> None:
        play(script, agents, agent_id, wait_s=wait_s, echo=lambda line: click.echo(f"  {line}"))

    return converse


def simulate_group() -> AppGroup:
    """The `flask simulate` group; app.py loads it only when a `flask simulate` command runs."""
    simulate = AppGroup("simulate")

    common = [
        click.option("--url", help="The service's base URL (default http://127.0.0.1:$PORT)."),
        click.option("--secret", help="NCS secret to sign with (default AGORA_NCS_SECRET)."),
        click.option("--token", help="Admin token to follow the call (default ADMIN_TOKEN)."),
        click.option("--sandbox/--no-sandbox", "use_sandbox", default=True,
                     help="In sandbox mode, tell the local sandbox where the caller is."),
    ]

    def with_common(command):  # type: ignore[no-untyped-def]
        for option in reversed(common):
            command = option(command)
        return command

    @simulate.command("call")
    @with_common
    @click.option("--duration", default=3.0, show_default=True, help="Seconds on the line.")
    @click.option("--duplicates", default=0, show_default=True,
                  help="Extra copies of each event under the same notice id.")
    @click.option("--reorder", is_flag=True,
                  help="Also send a redundant copy of the join, and a late one after the leave.")
    @click.option("--drop-leave", is_flag=True,
                  help="Never send the leave: only the agent's idle timeout can end the call.")
    @click.option("--wait", default=20.0, show_default=True,
                  help="Seconds to wait for the agent to start and to stop.")
    @click.option("--channel", help="Channel name (default: a fresh sim_... name, or "
                  "<persona>_... for a script naming a persona); useful to try PERSONA_ROUTES.")
    @click.option("--script", "script_name", metavar="FILE",
                  help="Play a conversation (TOML, docs/sandbox.md) in which the sandbox's "
                  "agent calls tools; a ready script's name (tarot, orders, ...) also works.")
    def call(url, secret, token, use_sandbox, duration, duplicates, reorder, drop_leave,
             wait, channel, script_name) -> None:  # type: ignore[no-untyped-def]
        """Play one call; exit 1 if the service refused the simulator's token or secret (before
        anything is sent) or misbehaved, or the script did not go as written. Once the caller's
        join is sent, its leave is sent too, even on an error or Ctrl-C."""
        target = _target(url, secret, token, use_sandbox)
        conversation = None
        if script_name:
            try:
                script = load_script(script_name)
            except ScriptError as exc:
                _script_fail(str(exc))
            if not target.sandbox_url:
                _script_fail("--script needs the sandbox's agent: run the service in sandbox "
                             "mode (and not --no-sandbox). Nothing was sent.")
            if script.persona and not channel:
                channel = f"{script.persona}_{secrets.token_hex(5)}"
            conversation = _conversation(script, target, wait)
        try:
            with _stopped_like_ctrl_c():
                report = simulate_call(target, duration_s=duration, duplicates=duplicates,
                                       reorder=reorder, drop_leave=drop_leave, wait_s=wait,
                                       channel=channel, echo=click.echo,
                                       conversation=conversation)
        except SimulationError as exc:
            _fail(exc)
        except ScriptError as exc:
            _script_fail(f"{exc} (the caller has hung up)")
        if report.ok and conversation:
            click.echo("result: OK: the script played as written, one agent was started, and "
                       "it was stopped")
            return
        if report.ok:
            click.echo("result: OK: exactly one agent was started, and it was stopped after the "
                       "caller left")
            return
        for problem in report.problems:
            click.echo(f"problem: {problem}", err=True)
        click.echo("result: FAILED: the service misbehaved (see above)", err=True)
        sys.exit(1)

    @simulate.command("storm")
    @with_common
    @click.option("--calls", default=50, show_default=True)
    @click.option("--concurrency", default=10, show_default=True)
    @click.option("--duration", default=1.0, show_default=True, help="Seconds on the line.")
    @click.option("--duplicates", default=0, show_default=True)
    def storm(url, secret, token, use_sandbox, calls, concurrency, duration,
              duplicates) -> None:  # type: ignore[no-untyped-def]
        """Many simultaneous calls; exit 1 on any answer other than 200. Ctrl-C starts no more
        calls and hangs up those in progress."""
        target = _target(url, secret, token, use_sandbox)
        try:
            with _stopped_like_ctrl_c():
                report = simulate_storm(target, calls=calls, concurrency=concurrency,
                                        duration_s=duration, duplicates=duplicates)
        except SimulationError as exc:
            _fail(exc)
        click.echo(f"{report.calls} calls, {report.events} webhooks in {report.elapsed_s:.1f} s; "
                   f"answers {dict(sorted(report.statuses.items()))}; answer time p50 "
                   f"{report.answer_ms_p50:.1f} ms, p99 {report.answer_ms_p99:.1f} ms")
        for error in report.errors:
            click.echo(f"problem: {error}", err=True)
        if not report.ok:
            sys.exit(1)

    return simulate
