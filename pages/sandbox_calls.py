"""A client of the local sandbox's caller API: places a simulated caller (no Flask here)."""

from __future__ import annotations

from typing import Any

import requests

#: How long the simulated caller stays on the line before hanging up.
TEST_CALL_DURATION_S = 4
TIMEOUT_S = (2.0, 5.0)


class SandboxUnreachable(Exception):
    """The sandbox did not answer, or did not place the call."""


def place_test_call(sandbox_url: str, *, session: requests.Session | None = None,
                    duration_s: float = TEST_CALL_DURATION_S) -> dict[str, Any]:
    """Ask the sandbox for a caller who joins a new channel now and hangs up after
    ``duration_s``. The sandbox then sends this service signed NCS join and leave events.
    Returns the sandbox's answer: ``{"channel", "uid", "id"}``."""
    url = f"{sandbox_url.rstrip('/')}/_sandbox/calls"
    try:
        response = (session or requests).post(url, json={"duration_s": duration_s},
                                              timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise SandboxUnreachable(
            f"the sandbox at {sandbox_url} is not answering ({type(exc).__name__}); start it "
            "with `make run`") from exc
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
