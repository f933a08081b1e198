"""Shared fixtures: settings, a store on SQLite or PostgreSQL, the app, and signed NCS posts."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

# Before anything reads the environment (create_app() with no settings does): no developer
# .env, no Agora account, a throwaway database, no background threads.
_TMP = Path(tempfile.mkdtemp(prefix="phone-agent-tests-"))
os.environ.update({
    "AGORA_APP_ID": "", "APP_ID": "", "DATABASE_URL": f"sqlite:///{_TMP / 'import.db'}",
    "AGENT_START_MODE": "inline", "LOG_LEVEL": "WARNING",
})

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from flask import Flask  # noqa: E402
from flask.testing import FlaskClient, FlaskCliRunner  # noqa: E402

from calls import migrate  # noqa: E402
from config import Settings  # noqa: E402
from factory import app as factory_app  # noqa: E402
from factory.app import create_app  # noqa: E402
from ncs.signature import sign  # noqa: E402
from personas import Registry  # noqa: E402
from personas.registry import persona_dirs  # noqa: E402
from sandbox.defaults import SANDBOX_NCS_SECRET  # noqa: E402
from store import Store, make_engine, metadata  # noqa: E402
from tests.caldav_fixtures import caldav_diary, caldav_server  # noqa: E402, F401  (Radicale)
from tests.fakes import FakeClock  # noqa: E402

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")
#: The pytest-xdist worker running this process ("gw0", "gw1", ...; empty without -n). Each
#: worker gets PostgreSQL databases of its own, so no worker drops another's tables.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")

# -- nothing in the suite reaches beyond this machine -------------------------------------------
# Every HTTP client here looks the host up first: a name that is not this machine's is refused
# (so nothing waits on a network that CI does not have) and remembered, and the run then fails,
# naming it, even when the lookup came from a background thread no test was watching.
_OUTBOUND_TRIED: list[str] = []
_real_getaddrinfo = socket.getaddrinfo


def _is_this_machine(host: str) -> bool:
    if host in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and not _is_this_machine(str(name)):
        _OUTBOUND_TRIED.append(str(name))
        raise socket.gaierror(socket.EAI_NONAME, f"the test suite may not reach {name}")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _local_getaddrinfo


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        # An xdist worker: hand the hosts to the controller (pytest_testnodedown), which fails
        # the run; a worker's own exit status does not reach it.
        workeroutput["outbound_tried"] = sorted(set(_OUTBOUND_TRIED))
        return
    if _OUTBOUND_TRIED:
        hosts = ", ".join(sorted(set(_OUTBOUND_TRIED)))
        writer = session.config.get_terminal_writer()
        writer.line()
        writer.line(f"FAILED: the suite tried to reach hosts beyond this machine: {hosts}",
                    red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """On the xdist controller: collect the hosts a worker tried to reach."""
    _OUTBOUND_TRIED.extend(getattr(node, "workeroutput", {}).get("outbound_tried", []))


#: The files that take longest (tens of seconds each on a 2-core machine, mostly waiting on the
#: servers they start), slowest first, and then the suite's folders in order: the xdist workers
#: take files in this order (`--dist loadfile --no-loadscope-reorder` in the Makefile), so the
#: long files start at once and the many short unit files fill in at the end, and the run does
#: not end with one worker on a long file while the others have nothing left to take. A name
#: that goes stale only moves a file back to its folder's turn.
SLOWEST_FILES = ("integration/test_faults.py", "fuzz/test_routes_fuzz.py",
                 "integration/test_mcp_tools.py", "integration/test_operations.py",
                 "integration/test_outbound.py", "integration/test_simulator.py",
                 "integration/test_bookings.py", "integration/test_sip.py",
                 "integration/test_call_lifecycle.py", "e2e/test_dashboard.py")
FOLDER_ORDER = ("integration", "e2e", "fuzz", "unit")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> tuple[int, int]:
        name = f"{item.path.parent.name}/{item.path.name}"
        if name in SLOWEST_FILES:
            return (0, SLOWEST_FILES.index(name))
        folder = item.path.parent.name
        return (1, FOLDER_ORDER.index(folder) if folder in FOLDER_ORDER else len(FOLDER_ORDER))

    items.sort(key=rank)  # stable: each file keeps its own order


_worker_database: list[str] = []


def postgres_url_or_skip() -> str:
    if POSTGRES_URL and XDIST_WORKER:
        if not _worker_database:
            name = sa.make_url(POSTGRES_URL).database
            _worker_database.append(fresh_database(POSTGRES_URL, name))
        return _worker_database[0]
    if POSTGRES_URL:
        return POSTGRES_URL
    if os.environ.get("CI"):
        pytest.fail("TEST_POSTGRES_URL is not set: run the suite through `make test`")
    pytest.skip("no PostgreSQL: run through `make test` (scripts/with_postgres.sh)")


def fresh_database(url: str, name: str | None = None, *, empty: bool = False) -> str:
    """Clear the database at ``url`` (unit tests share one PostgreSQL database per worker):
    when it holds the whole schema at head, its rows go (a TRUNCATE, about a hundredth of
    what dropping and migrating again costs) and the schema stays; otherwise, or when
    ``empty``, everything is dropped. With ``name``, make that database anew beside it and
    return its URL instead: servers that outlive a test (the integration stacks) need a
    database nobody else drops tables in."""
    if name:
        if XDIST_WORKER:
            name = f"{name}_{XDIST_WORKER}"
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return sa.make_url(url).set(database=name).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if not empty and _schema_at_head(conn):
            tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
            conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        else:
            metadata.drop_all(conn)
            conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    return url


def _schema_at_head(conn: sa.Connection) -> bool:
    """Whether the migrations' latest revision is recorded and every declared table exists
    (a test that moved the schema elsewhere leaves a database that is dropped instead)."""
    names = set(sa.inspect(conn).get_table_names())
    if not {t.name for t in metadata.sorted_tables} <= names:
        return False
    return migrate.current_revision(conn) == migrate.HEAD_REVISION


@pytest.fixture(autouse=True)
def environment_restored() -> Iterator[None]:
    """os.environ after each test as it was before: code under test may write to it directly
    (gunicorn.conf.py's on_starting sets PROMETHEUS_MULTIPROC_DIR, load_dotenv copies a
    developer's .env in), and every later test in the worker, and the processes it starts,
    would inherit it; which test comes later depends on how xdist hands out the files."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


#: The root logger's level before any app was built (collection builds some: the fuzz suite
#: lists its routes from one).
ROOT_LOG_LEVEL = logging.getLogger().level


@pytest.fixture(scope="module", autouse=True)
def root_log_level() -> None:
    """Each test file starts with the root logger at its first level. create_app sets it from
    LOG_LEVEL (observability/logs.configure), and an app built with LOG_LEVEL=ERROR (the fuzz
    suite's) would otherwise silence the warnings a later file in the same worker captures;
    which file comes later depends on how xdist hands them out."""
    logging.getLogger().setLevel(ROOT_LOG_LEVEL)


#: calls.migrate.upgrade itself (sqlite_schema_template stands in front of it).
REAL_UPGRADE = migrate.upgrade


@pytest.fixture(scope="session", autouse=True)
def sqlite_schema_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A SQLite file the real migrations brought to head once per run (per xdist worker); a
    new SQLite file that migrate.upgrade() is asked to bring to head starts as a copy of it,
    and the real upgrade then finds nothing to do. Running the 13 migrations costs about
    150 ms, and hundreds of tests build a store or an app on a file of their own. Files that
    exist already, other revisions and PostgreSQL go through the real migrations untouched."""
    template = tmp_path_factory.mktemp("schema") / "head.db"
    engine = make_engine(f"sqlite:///{template}")  # the service's pragmas: WAL, small pages
    REAL_UPGRADE(engine)
    engine.dispose()

    def upgrade(engine: sa.Engine, revision: str = "head") -> None:
        path = engine.url.database
        if engine.dialect.name == "sqlite" and revision == "head" and path \
                and path != ":memory:" and not os.path.exists(path):
            copy_new_file(template, Path(path))
        REAL_UPGRADE(engine, revision)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(migrate, "upgrade", upgrade)
        yield template


def copy_new_file(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` unless ``target`` appears first (another thread or
    process opening the same new database): the copy is linked into place whole or not at
    all."""
    staging = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    shutil.copyfile(source, staging)
    try:
        os.link(staging, target)
    except FileExistsError:
        pass
    finally:
        staging.unlink()


@pytest.fixture(scope="session", autouse=True)
def registries_shared_between_apps() -> Iterator[None]:
    """Apps built from the same persona inputs share one loaded registry (it is read-only).
    Loading the persona files (TOML, shape checks, the join body's JSON Schema) is about half
    of what building an app costs, and hundreds of tests build an app whose settings differ
    from the last one's only in its database. The inputs are every setting but the database,
    the persona keys, and the name, size and modification time of each persona file, so a
    test that writes or edits a persona file still gets it loaded. Tests of the loading itself
    call personas' functions directly."""
    real = factory_app.load_registry
    loaded: dict[object, Registry] = {}

    def load_registry(settings: Settings, env: Mapping[str, str] | None = None) -> Registry:
        if env is not None:
            return real(settings, env)
        key = (settings.replace(database_url=""), tuple(sorted(settings.persona_keys.items())),
               tuple((str(path), stat.st_mtime_ns, stat.st_size)
                     for folder, _ in persona_dirs(settings) if folder.is_dir()
                     for path in sorted(folder.glob("*.toml")) if (stat := path.stat())))
        if key not in loaded:
            loaded[key] = real(settings)
        return loaded[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(factory_app, "load_registry", load_registry)
        yield


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'calls.db'}"
    return fresh_database(postgres_url_or_skip())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def store(database_url: str, clock: FakeClock) -> Iterator[Store]:
    store = Store.from_url(database_url, clock=clock)
    migrate.upgrade(store.engine)
    yield store
    store.engine.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.for_tests(database_url=f"sqlite:///{tmp_path / 'app.db'}",
                              agent_start_mode="inline", log_level="WARNING")


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """The app on ``settings`` (sandbox mode, a SQLite file of the test's own)."""
    app = create_app(settings)
    yield app
    app.extensions["store"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def signed_post() -> Callable[..., tuple[bytes, dict[str, str]]]:
    """Build an NCS body and its headers, signed with the production sign()."""

    def build(product_id: int = 1, event_type: int = 103, *, secret: str = SANDBOX_NCS_SECRET,
              notice_id: str = "notice-1", notify_ms: int | None = None,
              **payload: object) -> tuple[bytes, dict[str, str]]:
        """``notify_ms`` defaults to now, as NCS dates each attempt (ncs/freshness.py)."""
        body = json.dumps({"noticeId": notice_id, "productId": product_id,
                           "eventType": event_type,
                           "notifyMs": int(time.time() * 1000) if notify_ms is None
                           else notify_ms, "payload": payload}).encode()
        return body, {"Content-Type": "application/json", **sign(secret, body)}

    return build
