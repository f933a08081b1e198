"""Gunicorn settings for `gunicorn app:app` (gunicorn reads this file from the working directory).

gthread workers: a webhook verifies, records, and sends the join or leave within its request, so
a slow ConvoAI holds only that caller's thread, never the callers behind it.
"""

import os
import sys

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
# Joins run inside the webhook request (AGENT_START_MODE=inline), so threads bound how many
# callers can be joining at once per worker: size it as peak calls per second x join seconds
# (a hotline read out on air: 200 calls/s x 2 s slow joins, over 2 workers). A thread waiting
# on ConvoAI costs little memory and no CPU.
threads = int(os.environ.get("GUNICORN_THREADS", "256"))
# NCS waits 10 s for an answer; a request still running after 30 s is stuck.
timeout = 30
graceful_timeout = 20
# Agora recommends keep-alive of at least 10 s for NCS deliveries.
keepalive = 15
# gunicorn 27's control socket defaults to one path per user; several servers on one machine
# (tests, benchmarks) would fight over it, and the service does not use it.
control_socket_disable = True
accesslog = "-"
# %(U)s is the path without the query string.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "factory.gunicorn.formatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout",
                            "formatter": "json"}},
    # The app adds its own stdout handler to the root logger (logs.configure).
    "root": {"level": "INFO", "handlers": []},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}


#: The prefix of the metrics directory on_starting makes when the operator set none.
METRICS_DIR_PREFIX = "phone-agent-metrics-"
#: Libraries the app imports, imported once in the arbiter: every worker forked from it starts
#: with them, and builds its app in about 0.2 s of CPU instead of 0.55 s (a start, a restart
#: after a crash or after max_requests). Of the app's own modules only those the configuration
#: check and the log formatter need are loaded here (settings, personas); the rest load in each
#: worker. A library upgrade, like a change to those modules, needs a restart rather than a
#: reload (SIGHUP). None of these starts a thread or opens a connection when imported.
LIBRARIES = ("flask", "flask_cors", "flask_wtf", "jsonschema", "prometheus_client", "requests",
             "sqlalchemy", "agoraiotools")


def on_starting(server):  # noqa: ARG001 - gunicorn's hook signature
    """Check the configuration once, in the arbiter, before any worker starts; give the
    workers a fresh directory to share their metrics through; import the libraries."""
    from config import ConfigError
    from personas.startup import settings_from_environment

    try:
        settings_from_environment()  # cached: the formatter read them already, workers inherit
    except ConfigError as exc:
        sys.stderr.write(f"phone-agent: {exc}\n")
        raise SystemExit(1) from None
    _prepare_metrics_dir()
    # After the metrics directory: prometheus_client reads PROMETHEUS_MULTIPROC_DIR on import.
    import importlib

    for name in LIBRARIES:
        importlib.import_module(name)


def _prepare_metrics_dir():
    """prometheus_client's multiprocess mode: every worker writes its counters to files in
    PROMETHEUS_MULTIPROC_DIR and a scrape sums them. The variable must be set before a worker
    imports prometheus_client (workers load the app after the fork, so setting it here in the
    arbiter is early enough; preload_app would load it before this hook and must stay off).
    The files must not outlive the run: counters start again from zero, as Prometheus expects
    of a restarted target. An operator's own directory is emptied of our files, not removed."""
    import contextlib
    import glob
    import tempfile

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            # Another instance started on the same directory may have removed it first.
            with contextlib.suppress(FileNotFoundError):
                os.remove(stale)
    else:
        path = tempfile.mkdtemp(prefix=METRICS_DIR_PREFIX)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path


def on_reload(server):  # noqa: ARG001 - gunicorn's hook signature
    """A reload (SIGHUP) reads the settings again, `.env` included: the workers it starts must
    not inherit what the arbiter read at start-up."""
    from personas.startup import settings_from_environment

    settings_from_environment.cache_clear()


def child_exit(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    """A worker is gone (restarted, or killed): its counters stay in the sum, as counters
    must, and only its live-gauge files (none today) are dropped."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # noqa: ARG001 - gunicorn's hook signature
    """Remove the metrics directory if on_starting made it. Told apart by its place and name,
    not by a variable of this module: a reload (SIGHUP) runs this file again."""
    import shutil
    import tempfile

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if (os.path.dirname(path) == tempfile.gettempdir()
            and os.path.basename(path).startswith(METRICS_DIR_PREFIX)):
        shutil.rmtree(path, ignore_errors=True)


def pre_request(worker, req):  # noqa: ARG001 - gunicorn's hook signature
    """A request declaring a body too large for the app to drain (web/keepalive.py) is answered
    with `Connection: close` and its connection closed: gunicorn drops an application's own
    Connection header, so the request itself is marked."""
    from web.keepalive import too_large_to_drain

    length = next((value for name, value in req.headers if name == "CONTENT-LENGTH"), None)
    if too_large_to_drain(length):
        req.force_close()


def post_worker_init(worker):  # noqa: ARG001 - gunicorn's hook signature
    """Move everything the app allocated while loading out of the garbage collector's sight:
    later collections then scan only per-request objects, which shortens their pauses."""
    import gc

    gc.collect()
    gc.freeze()
