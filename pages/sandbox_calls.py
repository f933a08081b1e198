"""A client of the local sandbox's caller API: places a simulated caller, plain or one who plays
a ready script, and lists those scripts (no Flask here; never imports sandbox/)."""

from __future__ import annotations

from typing import Any

import requests

#: How long the simulated caller stays on the line before hanging up.
TEST_CALL_DURATION_S = 4
TIMEOUT_S = (2.0, 5.0)
#: Listing the scripts happens while a page renders: a sandbox that is down must not slow it.
LIST_TIMEOUT_S = (0.5, 2.0)


class SandboxUnreachable(Exception):
    """The sandbox did not answer, or did not place the call."""


class ScriptRefused(Exception):
    """The sandbox refused the call's options (a script it does not have): its message."""


def place_test_call(sandbox_url: str, *, session: requests.Session | None = None,
                    duration_s: float = TEST_CALL_DURATION_S,
                    script: str | None = None) -> dict[str, Any]:
    """Ask the sandbox for a caller who joins a new channel now and hangs up after
    ``duration_s``; or, with ``script`` (a ready script's name), one who joins a channel of the
    script's persona, plays the script through the agent there, then hangs up. The sandbox then
    sends this service signed NCS join and leave events. Returns the sandbox's answer:
    ``{"channel", "uid", "id"}`` (and ``"script"``)."""
    url = f"{sandbox_url.rstrip('/')}/_sandbox/calls"
    body: dict[str, Any] = {"script": script} if script else {"duration_s": duration_s}
    try:
        response = (session or requests).post(url, json=body, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise SandboxUnreachable(
            f"the sandbox at {sandbox_url} is not answering ({type(exc).__name__}); start it "
            "with `make run`") from exc
    if response.status_code == 400 and script:
        raise ScriptRefused(f"the sandbox refused the script {script!r}: "
                              f"{_error_of(response)}")
    if response.status_code != 201:
        raise SandboxUnreachable(
            f"the sandbox at {sandbox_url} did not place the call (HTTP "
            f"{response.status_code}); is `make run` serving it?")
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not answer.get("channel"):
        raise SandboxUnreachable(f"{sandbox_url} answered, but not like the sandbox; start the "
                                 "sandbox with `make run`")
    return answer


def list_scripts(sandbox_url: str, *,
                 session: requests.Session | None = None) -> list[dict[str, str]]:
    """The sandbox's ready scripts, ``[{"name", "description"}]``; none when the sandbox does
    not answer like the sandbox (the panel then offers only a plain call)."""
    try:
        response = (session or requests).get(f"{sandbox_url.rstrip('/')}/_sandbox/scripts",
                                             timeout=LIST_TIMEOUT_S)
        listed = response.json().get("scripts") if response.status_code == 200 else None
    except (requests.RequestException, ValueError, AttributeError):
        return []
    if not isinstance(listed, list):
        return []
    return [{"name": s["name"], "description": str(s.get("description") or "")}
            for s in listed if isinstance(s, dict) and isinstance(s.get("name"), str)
            and s["name"]]


def _error_of(response: requests.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    return str(error) if error else f"HTTP {response.status_code}"
