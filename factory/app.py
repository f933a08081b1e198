"""create_app(): the settings, the store, the clients, the services and the blueprints, wired
together. app.py (``gunicorn app:app``) calls it once; tests call it with settings of their own."""

from __future__ import annotations

import atexit
import hashlib
import hmac
import importlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask, Request
from flask import cli as flask_cli
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from bookings import views as bookings_views
from calls import cli as calls_cli
from calls import migrate
from calls import views as calls_views
from calls.analysis import Analyzer
from calls.outbox import EventSender
from calls.reconcile import PeriodicRunner, Reconciler
from calls.service import CallService, count_convoai_failure
from config import Settings
from convoai.client import ConvoAIClient
from ncs import cli as ncs_cli
from ncs import views as ncs_views
from ncs.freshness import ReplayWindow
from ncs.signature import NamedSecret, NcsVerifier
from observability import health, logs
from outbound import cli as outbound_cli
from outbound import views as outbound_views
from outbound.dialer import Dialer, DialerRunner
from outbound.reminders import ReminderPlanner
from outbound.service import OutboundService
from pages import bp as pages_bp
from pages import sandbox as sandbox_page
from personas import Registry, load_registry
from personas import cli as personas_cli
from personas.startup import settings_from_environment
from sip import cli as sip_cli
from sip import try_page
from sip import views as sip_views
from sip.client import GatewayClient
from sip.service import SipService, count_gateway_failure
from store import Store, StoreUnavailable
from tools import knowledge_cli
from tools import views as tools_views
from tools.knowledge_index import index_stale
from tools.service import ToolService
from web import keepalive, pages_security, security
from web.errors import register_error_handlers

logger = logging.getLogger("app")

#: NCS bodies are a few hundred bytes; ConvoAI's history event carries up to max_history turns.
MAX_BODY_BYTES = 256 * 1024
#: Joins and leaves in flight at once per worker in background mode. Threads are created only
#: as needed; a burst of slow joins must not queue callers behind each other.
BACKGROUND_THREADS = 256


def create_app(settings: Settings | None = None) -> Flask:
    """Build the service from ``settings`` (default: the environment and `.env`, read once per
    process)."""
    settings = settings or settings_from_environment()
    command = _one_shot_command()
    logs.configure(settings.log_level, logs.redactable(settings), command=command)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    # A body refused unread (this limit, a 401 or 429 before any view) must not be left on a
    # keep-alive connection as the start of the next request.
    app.wsgi_app = keepalive.DrainUnreadBody(app.wsgi_app)  # type: ignore[method-assign]
    app.secret_key = _session_key(settings)
    app.session_interface = CookieFreeFastPath()
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=not settings.sandbox)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    store = Store.from_url(settings.database_url, timeout_s=settings.store_timeout_s)
    store.emit_events = bool(settings.events_webhook_url)
    store.work_lease_s = settings.work_lease_s
    if settings.database_url.startswith("sqlite:///"):
        Path(store.engine.url.database or ".").parent.mkdir(parents=True, exist_ok=True)
    if settings.migrate_on_start:
        migrate.upgrade(store.engine)

    convoai = ConvoAIClient(settings.convoai_api_url, settings.agora_app_id,
                            settings.agora_customer_id, settings.agora_customer_secret,
                            on_failure=count_convoai_failure)
    background = settings.agent_start_mode == "background"
    executor = ThreadPoolExecutor(BACKGROUND_THREADS, thread_name_prefix="agent") \
        if background else None
    personas = load_registry(settings)
    service = CallService(settings, store, convoai, executor=executor, personas=personas)

    gateway = GatewayClient(settings.sip_api_url, settings.sip_auth, settings.agora_app_id,
                            on_failure=count_gateway_failure)
    sip = SipService(settings, store, service, personas, gateway,
                     run_async=settings.run_sweeper)
    events = EventSender(settings.events_webhook_url, settings.events_webhook_secret, store) \
        if settings.events_webhook_url else None
    outbound = OutboundService(settings, store, sip, personas)
    reminders = ReminderPlanner(settings, store, outbound, personas)
    dialer = Dialer(settings, store, sip, plan=reminders.run)
    reconciler = Reconciler(settings, store, service, convoai, hang_up_leg=sip.hang_up_leg,
                            events=events,
                            analyzer=Analyzer(settings, store, service.persona_of),
                            # With the sweeper on, the dialer has a thread of its own.
                            dial_due=None if settings.run_sweeper else dialer.run_due)
    tools = ToolService(store, service, sip)
    app.extensions.update(
        sip=sip, gateway=gateway, reconciler=reconciler, tools=tools, outbound=outbound,
        dialer=dialer,
        settings=settings, store=store, convoai=convoai, calls=service, personas=personas,
        ncs_verifier=NcsVerifier([
            NamedSecret("AGORA_NCS_SECRET", settings.agora_ncs_secret),
            NamedSecret("AGORA_NCS_SECRET_PREVIOUS", settings.agora_ncs_secret_previous),
            NamedSecret("AGORA_CONVOAI_NCS_SECRET", settings.agora_convoai_ncs_secret),
        ]),
        ncs_secrets_for_product=ncs_views.secrets_for_product(
            bool(settings.agora_convoai_ncs_secret)),
        # On the store's clock, which dates the notices it judges against.
        ncs_replay_window=ReplayWindow(settings.notice_retention_hours * 3600,
                                       clock=store.clock),
    )
    app.register_blueprint(health.bp)
    app.register_blueprint(ncs_views.bp)
    app.register_blueprint(calls_views.bp)
    app.register_blueprint(sip_views.bp)
    app.register_blueprint(try_page.bp)
    app.register_blueprint(tools_views.bp)
    app.register_blueprint(bookings_views.bp)
    app.register_blueprint(outbound_views.bp)
    app.register_blueprint(pages_bp)
    # The sandbox panel and its JSON at / (sandbox mode only); production answers one line.
    app.register_blueprint(sandbox_page.sandbox_bp if settings.sandbox
                           else sandbox_page.production_bp)
    register_error_handlers(app)
    security.init_app(app)
    pages_security.init_app(app)  # CSRF tokens and the HTML pages' headers
    migrate.init_app(app)
    app.cli.add_command(SimulatorCommands())
    personas_cli.init_app(app)
    sip_cli.init_app(app)
    calls_cli.init_app(app)
    ncs_cli.init_app(app)
    knowledge_cli.init_app(app)
    outbound_cli.init_app(app)

    if settings.run_sweeper:
        _start_reconciler_with_first_request(app, reconciler, dialer, settings)

    if not command:  # the banner is for whoever watches the service, not a command's user
        _announce(settings, background)
    _warn_if_lookup_closed(settings, store)
    _warn_if_tools_off(settings, personas)
    if not command:  # `flask knowledge index` says what it indexed itself
        _index_knowledge(store, personas)
    return app


def _index_knowledge(store: Store, personas: Registry) -> None:
    """Index the knowledge folders that changed since they were last indexed (a fresh one
    costs a read of its files and one query)."""
    try:
        index_stale(store, personas)
    except (StoreUnavailable, sa.exc.DBAPIError) as exc:
        # No schema yet (MIGRATE_ON_START=false before `flask db upgrade`), or no database:
        # searches find nothing until `flask knowledge index` runs.
        logger.warning("knowledge.not_indexed", extra={"reason": str(exc).splitlines()[0]})


def _warn_if_tools_off(settings: Settings, personas: Registry) -> None:
    """Personas with tools but no PUBLIC_URL: their agents start without the tools."""
    with_tools = [p.name for p in personas if p.tool_names]
    if with_tools and not settings.tools_url:
        logger.warning(
            "TOOLS OFF: PUBLIC_URL is not set, so agents cannot reach this service's tools "
            "endpoint and the tools of these personas are left out of their joins: "
            f"{', '.join(with_tools)}. Set PUBLIC_URL (https) to turn them on.",
            extra={"personas": with_tools})


def _one_shot_command() -> bool:
    """Whether the app is being built for a `flask` command that does its job and exits (`flask
    personas list`, `flask simulate call`) rather than to be served (gunicorn, `flask run`).
    Flask loads the app inside the command's click context."""
    context = click.get_current_context(silent=True)
    return context is not None and context.command is not flask_cli.run_command


def _start_reconciler_with_first_request(app: Flask, reconciler: Reconciler, dialer: Dialer,
                                         settings: Settings) -> None:
    """The periodic runner starts with the first request, in the process that serves it: not in
    a gunicorn arbiter that forks (threads do not survive a fork), nor in `flask` commands."""
    lock = threading.Lock()

    @app.before_request
    def _ensure_runner() -> None:
        if "sweeper" in app.extensions:
            return
        with lock:
            if "sweeper" in app.extensions:
                return
            runner = PeriodicRunner(reconciler, settings.sweep_interval_s,
                                    notice_retention_s=settings.notice_retention_hours * 3600)
            runner.start()
            app.extensions["sweeper"] = runner
            atexit.register(runner.stopped.set)
            dialling = DialerRunner(dialer, settings.sweep_interval_s)
            dialling.start()
            atexit.register(dialling.stopped.set)


class SimulatorCommands(click.Group):
    """`flask simulate`, loaded from sandbox/ only when one of its commands runs: building the
    app never imports the sandbox, which the production image does not ship."""

    def __init__(self) -> None:
        super().__init__("simulate", help="Send signed NCS events like a phone caller, to this "
                         "or any deployed service.")
        self._group: click.Group | None = None

    def _loaded(self) -> click.Group:
        if self._group is None:
            try:
                module = importlib.import_module("sandbox.cli")
            except ModuleNotFoundError as exc:
                if exc.name not in ("sandbox", "sandbox.cli"):
                    raise
                raise click.UsageError("the simulator is part of sandbox/, which this install "
                                       "(the Docker image) leaves out; run `flask simulate` from "
                                       "a checkout, or in the compose file's sandbox "
                                       "container") from None
            self._group = module.simulate_group()
        return self._group

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._loaded().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._loaded().get_command(ctx, cmd_name)


class CookieFreeFastPath(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus the cost for requests that carry no session
    cookie (every webhook): Flask would build a signing serializer (a key derivation) for each
    one just to find there is nothing to read."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # No Cookie header at all (machines never send one) skips parsing the cookies too.
        if app.secret_key and ("HTTP_COOKIE" not in request.environ
                               or self.get_cookie_name(app) not in request.cookies):
            return self.session_class()
        return super().open_session(app, request)


def _session_key(settings: Settings) -> bytes:
    """The key signing dashboard sessions: the same in every worker and instance, derived from
    the admin token (changing the token signs everyone out) and the app certificate, never
    stored or shown."""
    material = f"{settings.admin_token}\0{settings.agora_app_certificate}".encode()
    return hmac.new(material, b"phone-agent session key", hashlib.sha256).digest()


def _announce(settings: Settings, background: bool) -> None:
    if settings.sandbox:
        logger.warning(
            "SANDBOX MODE: no AGORA_APP_ID is set, so agents are started on the local sandbox at "
            "%s with placeholder credentials. No real calls are made. Set AGORA_APP_ID and the "
            "other Agora settings (see .env.example) to run against Agora.",
            settings.convoai_api_url, extra={"mode": "sandbox"})
    else:
        logger.info("PRODUCTION MODE: agents are started on %s", settings.convoai_api_url,
                    extra={"mode": "production"})
    logger.info("service.ready", extra={
        "mode": settings.mode, "agent_start_mode": "background" if background else "inline",
        "database": settings.database_url.split(":", 1)[0]})


def _warn_if_lookup_closed(settings: Settings, store: Store) -> None:
    """Lines with no lookup credential: the hook answers 404, so the gateway turns away every
    call to them. Said once, at start-up, where an operator looks."""
    if settings.sip_lookup_on:
        return
    try:
        count = len(store.list_lines())
    except (StoreUnavailable, sa.exc.DBAPIError):
        return  # no store yet, or no schema (MIGRATE_ON_START=false before `flask db upgrade`)
    if count:
        logger.warning(
            "SIP LOOKUP CLOSED: %d line(s) are registered but neither SIP_LOOKUP_AUTH nor "
            "SIP_LOOKUP_TOKEN is set, so POST /sip/lookup answers 404 and the SIP gateway turns "
            "away every call to them. Set SIP_LOOKUP_AUTH to the Authorization header agreed "
            "with Agora (see docs/sip.md).", count, extra={"lines": count})
