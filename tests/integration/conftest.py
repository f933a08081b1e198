"""One stack per database backend for the whole session: the sandbox and the service under
gunicorn (2 gthread workers), talking over loopback. Each test resets the sandbox and uses
channels of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import fresh_database, postgres_url_or_skip
from tests.integration.harness import Sandbox, Service, base_env, free_port

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
    if request.param == "sqlite":
        database_url = f"sqlite:///{Path(log_dir) / 'service.db'}"
    else:
        database_url = fresh_database(postgres_url_or_skip(), "phone_agent_integration")
    sandbox_port, service_port = free_port(), free_port()
    env = base_env(database_url, sandbox_port, SECRETS)
    env["SANDBOX_WEBHOOK_URL"] = f"http://127.0.0.1:{service_port}/webhook"
    sandbox = Sandbox(log_dir, env, sandbox_port)
    try:
        service = Service(log_dir, env, service_port)
    except BaseException:
        sandbox.process.stop()
        raise
    yield Stack(sandbox, service, request.param, env)
    service.process.stop()
    sandbox.process.stop()


@pytest.fixture
def fresh(stack: Stack) -> Stack:
    """The stack with the sandbox's agents, requests and faults cleared."""
    stack.sandbox.reset(concurrency_limit=200)
    return stack
