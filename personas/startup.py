"""The settings a process starts with: the environment's settings (config) and the keys the
personas' ``*_env`` fields name, read together so that start-up reports every problem of both
in one message.

This sits in personas/, above config: config reads the settings groups and knows nothing of
personas; the persona files say which further variables to read.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import replace

from config import ConfigError, Settings
from personas.registry import inspect_personas


def load_settings(env: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
    """Read and validate the settings from ``env`` (default: os.environ plus `.env`) with the
    keys the personas name; raises ConfigError listing every problem of both."""
    settings, problems = Settings.read(env, dotenv=dotenv)
    inspection = inspect_personas(settings, os.environ if env is None else env)
    problems += inspection.problems
    if problems:
        raise ConfigError(problems)
    return replace(settings, persona_keys=inspection.keys)


@functools.cache
def settings_from_environment() -> Settings:
    """``load_settings()``, once per process: gunicorn's arbiter reads them for its hooks and
    its log formatter, and the workers it forks inherit the result instead of parsing again.
    A ConfigError is not cached (the process is stopping anyway)."""
    return load_settings()
