"""Hypothesis profiles for the fuzz suite, and the fuzzed service on SQLite and PostgreSQL.

`make test` runs the small, derandomised profile (the same examples on every run, so CI is
reproducible); `make fuzz` sets HYPOTHESIS_PROFILE=fuzz for a long random run of this folder.
The profiles are applied per test (see strategies.fuzz_profile) rather than loaded globally,
so other property tests keep their own settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.conftest import fresh_database, postgres_url_or_skip
from tests.fuzz.harness import FuzzedService, fuzzed_service

#: Checks that are about the strategies' speed or size, not about the service.
_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile("fuzz-ci", max_examples=40, deadline=None, derandomize=True,
                          database=None, print_blob=True, suppress_health_check=_SLOW_IS_FINE)
settings.register_profile("fuzz", max_examples=2000, deadline=None, print_blob=True,
                          suppress_health_check=_SLOW_IS_FINE)


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def service(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzedService]:
    """One service per test module and database, shared by its examples: state piles up as it
    would in production, which is part of what is being fuzzed."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("fuzz") / "calls.db"
        url = f"sqlite:///{path}"
    else:
        url = fresh_database(postgres_url_or_skip(), name="phone_agent_fuzz")
    with fuzzed_service(url) as fuzzed:
        yield fuzzed
