"""``gunicorn app:app`` serves the module-level ``app`` (the Procfile, the Dockerfile and
api/index.py all do). The factory is factory.create_app; tests build their own apps with it and
never import this module."""

import sys

from config import ConfigError
from factory.app import create_app

# A configuration problem is one clear message on stderr, not a traceback. Exit status 4 is
# gunicorn's "application failed to load": the arbiter stops instead of restarting workers forever.
try:
    app = create_app()
except ConfigError as exc:
    sys.stderr.write(f"phone-agent: {exc}\n")
    raise SystemExit(4) from None
