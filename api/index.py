"""Vercel's entry point: its Python runtime serves the WSGI callable named ``app`` in this file.

It is the same application that ``gunicorn app:app`` serves. On Vercel (VERCEL=1) the settings
enforce the serverless rules: PostgreSQL only, joins and leaves sent inside the request, no
sweeper thread (see config._on_vercel and docs/deploy.md).
"""

import sys
from pathlib import Path

# The repository root, so that `app` is the application module and not this folder's name.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import app  # noqa: E402

__all__ = ["app"]
