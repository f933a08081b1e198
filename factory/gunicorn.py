"""The log formatter gunicorn.conf.py gives gunicorn's own loggers: it redacts the same secrets
as the service's. It reads the settings through the per-process cache, which on_starting then
reuses and the workers inherit when the arbiter forks them.

It is loaded in the arbiter before on_starting, so it must not import the app (factory.app):
prometheus_client, imported by the app, picks its multiprocess mode when first imported, and
on_starting sets PROMETHEUS_MULTIPROC_DIR only later (gunicorn.conf.py)."""

from __future__ import annotations

from config import ConfigError
from observability.logs import JsonFormatter, redactable
from personas.startup import settings_from_environment


def formatter() -> JsonFormatter:
    """A JSON formatter redacting every configured secret."""
    try:
        settings = settings_from_environment()
    except ConfigError:
        return JsonFormatter()  # the arbiter reports the problem and stops
    return JsonFormatter(redactable(settings))
