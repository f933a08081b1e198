"""One stack per database backend for the whole session: the sandbox and the service under
gunicorn (2 gthread workers), talking over loopback. Each test resets the sandbox and uses
channels of its own. Both stacks stay up once started: test files run their SQLite cases then
their PostgreSQL ones, and a parametrized session fixture would restart its stack at every
switch."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from tests.integration.harness import Sandbox, Service, running_stack, stack_database

SECRETS = {
    "customer_secret": "it-customer-secret-7Hq2",
    "ncs_secret": "it-ncs-secret-Zp41",
    "openai_api_key": "sk-it-openai-key-Ax93",
    "elevenlabs_api_key": "it-elevenlabs-key-Lm58",
}


@dataclass
class Stack:
    sandbox: Sandbox
    service: Service
    backend: str
    env: dict[str, str]

    def channel(self, label: str = "call") -> str:
        return f"{label}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Stack]]:
    """The stack of a backend ("sqlite" or "postgresql"), started on first use, stopped when
    the session ends."""
    started: dict[str, Stack] = {}
    with ExitStack() as running_stacks:

        def stack_of(backend: str) -> Stack:
            if backend not in started:
                log_dir = tmp_path_factory.mktemp(f"stack-{backend}")
                database_url = stack_database(backend, log_dir, "phone_agent_integration")
                running = running_stacks.enter_context(
                    running_stack(log_dir, database_url, SECRETS))
                started[backend] = Stack(running.sandbox, running.service, backend,
                                         running.env)
            return started[backend]

        yield stack_of


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def stack(request: pytest.FixtureRequest, stacks: Callable[[str], Stack]) -> Stack:
    return stacks(request.param)


@pytest.fixture
def fresh(stack: Stack) -> Stack:
    """The stack with the sandbox's agents, requests and faults cleared."""
    stack.sandbox.reset(concurrency_limit=200)
    return stack
