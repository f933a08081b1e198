"""Issue 7's acceptance for the image: its start command (the Dockerfile's CMD, read from the file
so the test follows it), run outside Docker from the repository root with the image's ENV,
against PostgreSQL and the sandbox, serves /healthz and carries a simulated call end to end.
Docker itself is not needed: the image only adds Python and the requirements to this command."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
import sqlalchemy as sa

from tests.conftest import fresh_database, postgres_url_or_skip
from tests.integration.conftest import SECRETS
from tests.integration.harness import (
    ROOT,
    VENV_BIN,
    Process,
    Sandbox,
    base_env,
    free_port,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined."""
    instructions, pending = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def image_command() -> list[str]:
    """The last CMD, which must be in exec (JSON) form."""
    (cmd, *_) = [args for keyword, args in reversed(dockerfile_instructions())
                 if keyword == "CMD"]
    argv = json.loads(cmd)
    # The image's PATH finds gunicorn in its Python; here it is the virtual environment's.
    program = VENV_BIN / argv[0]
    return [str(program) if program.exists() else shutil.which(argv[0]) or argv[0], *argv[1:]]


def image_env() -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set (KEY=value form)."""
    env: dict[str, str] = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
    return env


@dataclass
class Container:
    url: str
    database_url: str
    env: dict[str, str]
    process: Process


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    log_dir = tmp_path_factory.mktemp("image-command")
    database_url = fresh_database(postgres_url_or_skip(), "phone_agent_image_command")
    sandbox_port, port = free_port(), free_port()
    env = {**base_env(database_url, sandbox_port, SECRETS), **image_env()}
    # What `docker run -e PORT=... -e HOST=...` would override; the command itself is unchanged.
    env.update(PORT=str(port), HOST="127.0.0.1",
               SANDBOX_WEBHOOK_URL=f"http://127.0.0.1:{port}/webhook")
    sandbox = Sandbox(log_dir, env, sandbox_port)
    try:
        process = Process("image-command", image_command(), env, log_dir,
                          f"http://127.0.0.1:{port}/healthz")
    except BaseException:
        sandbox.process.stop()
        raise
    yield Container(f"http://127.0.0.1:{port}", database_url, env, process)
    process.stop()
    sandbox.process.stop()


def test_the_image_runs_gunicorn_on_the_app_and_binds_port_from_the_environment():
    argv = image_command()
    assert argv[0].endswith("gunicorn") and argv[1:] == ["app:app"]
    assert image_env()["PORT"] == "8000" and image_env()["HOST"] == "0.0.0.0"


def test_the_image_command_serves_healthz_and_is_ready_on_postgres(container):
    assert requests.get(f"{container.url}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{container.url}/readyz", timeout=5).status_code == 200
    # It migrated PostgreSQL at start-up (MIGRATE_ON_START), as it does on every deploy.
    engine = sa.create_engine(container.database_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert "gthread" in container.process.output()


def test_the_image_command_carries_a_simulated_call_end_to_end(container):
    result = subprocess.run(
        [str(VENV_BIN / "flask"), "--app", "app", "simulate", "call", "--url", container.url,
         "--duration", "1", "--duplicates", "1", "--reorder"],
        cwd=ROOT, env={**container.env, "LOG_LEVEL": "WARNING"}, capture_output=True,
        text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "result: OK: exactly one agent was started" in result.stdout
    calls = requests.get(f"{container.url}/api/calls", timeout=5,
                         headers={"Authorization": "Bearer sandbox-admin-token"}).json()["calls"]
    assert [c["state"] for c in calls] == ["ended"]
