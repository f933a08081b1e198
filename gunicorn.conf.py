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
    "formatters": {"json": {"()": "logs.gunicorn_formatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout",
                            "formatter": "json"}},
    # The app adds its own stdout handler to the root logger (logs.configure).
    "root": {"level": "INFO", "handlers": []},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}


def on_starting(server):  # noqa: ARG001 - gunicorn's hook signature
    """Check the configuration once, in the arbiter, before any worker starts."""
    from config import ConfigError, Settings

    try:
        Settings.from_env()
    except ConfigError as exc:
        sys.stderr.write(f"phone-agent: {exc}\n")
        raise SystemExit(1) from None


def post_worker_init(worker):  # noqa: ARG001 - gunicorn's hook signature
    """Move everything the app allocated while loading out of the garbage collector's sight:
    later collections then scan only per-request objects, which shortens their pauses."""
    import gc

    gc.collect()
    gc.freeze()
