"""One stack per database backend for the whole session: the sandbox and the service under
gunicorn (2 gthread workers), talking over loopback. Each test resets the sandbox and uses
channels of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
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


@pytest.fixture(scope="session",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp(f"stack-{request.param}")
    database_url = stack_database(request.param, log_dir, "phone_agent_integration")
    with running_stack(log_dir, database_url, SECRETS) as running:
        yield Stack(running.sandbox, running.service, request.param, running.env)


@pytest.fixture
def fresh(stack: Stack) -> Stack:
    """The stack with the sandbox's agents, requests and faults cleared."""
    stack.sandbox.reset(concurrency_limit=200)
    return stack
