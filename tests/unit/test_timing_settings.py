"""The durations tests used to wait out are settings, and the app hands them to what uses them."""

from __future__ import annotations

from calls.reconcile import goodbye_wait_s
from factory.app import create_app


def test_the_work_lease_and_the_rate_limit_window_reach_the_store_and_the_limiter(settings):
    app = create_app(settings.replace(work_lease_s=12.0, rate_limit_window_s=3600))
    assert app.extensions["store"].work_lease_s == 12.0
    assert app.extensions["rate_limiter"].window_s == 3600
    app.extensions["store"].engine.dispose()


def test_the_defaults_are_unchanged(settings):
    assert (settings.work_lease_s, settings.rate_limit_window_s) == (30.0, 60)
    assert (settings.goodbye_wait_min_s, settings.goodbye_wait_max_s) == (3.0, 20.0)


def test_the_goodbye_wait_follows_the_text_within_its_bounds():
    assert goodbye_wait_s("Bye.", 3.0, 20.0) == 3.0
    assert goodbye_wait_s("x" * 1000, 3.0, 20.0) == 20.0
    assert goodbye_wait_s("Bye.", 0.5, 20.0) == 1.5 + 4 / 14
