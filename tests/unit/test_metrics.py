"""metrics.py: the recording functions, their bounded labels, GET /metrics through Flask's test
client, the clients' upstream error counts, and several processes summed in multiprocess mode.

The registry belongs to the process and other tests record into it too, so each test compares
a series before and after what it does."""

from __future__ import annotations

import logging
import os
import runpy
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import responses
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from calls.lifecycle import CallerJoined
from calls.service import CallService, count_convoai_failure
from config import Settings
from convoai.client import ConvoAIClient
from convoai.errors import LimitExceeded, UpstreamError, UpstreamUnavailable
from factory.app import create_app
from ncs.events import delivery_labels
from observability import metrics
from personas.startup import settings_from_environment
from sip.client import GatewayClient
from sip.errors import GatewayUnavailable
from sip.service import count_gateway_failure
from store import StoreUnavailable
from tests.fakes import FakeConvoAI
from upstream.retry import RetryPolicy

ROOT = Path(__file__).resolve().parents[2]
SignedPost = Callable[..., tuple[bytes, dict[str, str]]]


def value(name: str, **labels: str) -> float:
    """This process's current value of one series (0 when it has not been counted yet)."""
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by name and labels."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


# -- label values -------------------------------------------------------------------------------


@pytest.mark.parametrize(("product", "event", "labels"), [
    (1, 103, ("1", "103")),
    (1, 108, ("1", "108")),
    (17, 101, ("17", "101")),
    (17, 111, ("17", "111")),
    (1, 10, ("1", "other")),  # Agora's sample eventType: not an RTC channel event
    (17, 105, ("17", "other")),  # not one of ConvoAI's
    (3, 103, ("other", "other")),
    (999_999, 123_456, ("other", "other")),
    (None, None, ("unknown", "unknown")),  # a body never read: its signature failed
])
def test_product_and_event_labels_are_bounded(product, event, labels):
    assert delivery_labels(product, event) == labels


@pytest.mark.parametrize(("outcome", "label"), [
    ("call_started", "call_started"),
    ("duplicate_notice", "duplicate_notice"),
    ("bad_signature", "bad_signature"),
    ("Call Started!", "other"),
    ("x" * 41, "other"),
    ("", "other"),
])
def test_outcome_labels_are_names_chosen_in_code(outcome, label):
    assert metrics.outcome_label(outcome) == label


# -- recording ------------------------------------------------------------------------------


def test_each_function_counts_its_own_series():
    cases = [
        (lambda: metrics.webhook("1", "104", "call_ending"), "phone_agent_webhooks_total",
         {"product": "1", "event": "104", "outcome": "call_ending"}),
        (metrics.signature_failure, "phone_agent_signature_failures_total", {}),
        (metrics.duplicate, "phone_agent_duplicates_total", {}),
        (metrics.orphan_stopped, "phone_agent_orphans_stopped_total", {}),
        (lambda: metrics.call_refused("daily_agent_minutes"), "phone_agent_calls_refused_total",
         {"reason": "daily_agent_minutes"}),
        (lambda: metrics.upstream_error("convoai", "RateLimited"),
         "phone_agent_upstream_errors_total", {"service": "convoai", "reason": "RateLimited"}),
    ]
    for record, name, labels in cases:
        before = value(name, **labels)
        record()
        record()
        assert value(name, **labels) == before + 2, name


def test_free_text_never_becomes_a_label_value():
    refused = value("phone_agent_calls_refused_total", reason="other")
    upstream = value("phone_agent_upstream_errors_total", service="other", reason="other")
    metrics.call_refused("caller +14155550123 is over the limit")
    metrics.upstream_error("billing", "Busy, try later")
    assert value("phone_agent_calls_refused_total", reason="other") == refused + 1
    assert value("phone_agent_upstream_errors_total", service="other",
                 reason="other") == upstream + 1
    assert metrics.REGISTRY.get_sample_value(
        "phone_agent_calls_refused_total", {"reason": "caller +14155550123 is over the limit"}
    ) is None


def test_agent_start_is_observed_in_seconds_and_clock_skew_counts_as_zero():
    count = value("phone_agent_agent_start_seconds_count")
    total = value("phone_agent_agent_start_seconds_sum")
    fastest = value("phone_agent_agent_start_seconds_bucket", le="0.25")
    under_two = value("phone_agent_agent_start_seconds_bucket", le="2.0")
    metrics.agent_start(1.5)
    metrics.agent_start(-0.3)  # the join was recorded by a host whose clock runs ahead
    assert value("phone_agent_agent_start_seconds_count") == count + 2
    assert value("phone_agent_agent_start_seconds_sum") == pytest.approx(total + 1.5)
    assert value("phone_agent_agent_start_seconds_bucket", le="0.25") == fastest + 1
    assert value("phone_agent_agent_start_seconds_bucket", le="2.0") == under_two + 2


def test_a_failing_metric_is_logged_and_never_raised(monkeypatch, caplog):
    class Broken:
        def labels(self, *_: object) -> None:
            raise OSError("the metrics directory is gone")

        def inc(self) -> None:
            raise OSError("the metrics directory is gone")

    monkeypatch.setattr(metrics, "WEBHOOKS", Broken())
    monkeypatch.setattr(metrics, "DUPLICATES", Broken())
    with caplog.at_level(logging.WARNING, logger="observability.metrics"):
        metrics.webhook("1", "103", "call_started")
        metrics.duplicate()
    failed = [r for r in caplog.records if r.getMessage() == "metrics.record_failed"]
    assert [(r.metric, r.error) for r in failed] == [("webhook", "OSError"),
                                                     ("duplicate", "OSError")]


# -- GET /metrics ---------------------------------------------------------------------------


@pytest.fixture
def app(app: Flask) -> Flask:
    """The shared app, its ConvoAI faked."""
    app.extensions["calls"].convoai = FakeConvoAI()
    return app


def scrape(app: Flask, **headers: str) -> dict:
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=")
    return scraped(response.get_data(as_text=True))


def test_the_scrape_has_every_metric_and_the_open_calls_from_the_store(app: Flask):
    store = app.extensions["store"]
    for n in range(3):
        store.apply_caller_event(CallerJoined(f"ch{n}", 111, 1, f"join-{n}"), grace_s=30,
                                 agent_name_prefix="t", new_id=lambda n=n: f"call-{n}")
    assert store.count_open_calls() == 3
    response = app.test_client().get("/metrics")
    families = {f.name for f in text_string_to_metric_families(response.get_data(as_text=True))}
    assert families >= {
        "phone_agent_webhooks", "phone_agent_signature_failures", "phone_agent_duplicates",
        "phone_agent_agent_start_seconds", "phone_agent_upstream_errors",
        "phone_agent_orphans_stopped", "phone_agent_calls_refused", "phone_agent_calls_active"}
    assert sample(scraped(response.get_data(as_text=True)), "phone_agent_calls_active") == 3
    assert response.headers["Cache-Control"] == "no-store"


def test_webhook_deliveries_are_counted_by_outcome(app: Flask, signed_post: SignedPost):
    client = app.test_client()
    before = scrape(app)
    join = signed_post(1, 103, notice_id="n-join", channelName="metrics_ch", uid=111,
                       clientSeq=1)
    assert client.post("/webhook", data=join[0], headers=join[1]).json["outcome"] == \
        "call_started"
    again = client.post("/webhook", data=join[0], headers=join[1])
    assert again.json["outcome"] == "duplicate_notice"
    forged = signed_post(1, 103, secret="not-our-secret", notice_id="n-forged")
    assert client.post("/webhook", data=forged[0], headers=forged[1]).status_code == 401
    signed_for_another_body = signed_post(1, 103)[1]
    assert client.post("/webhook", data=b'{"noticeId": ',
                       headers=signed_for_another_body).status_code == 401
    other = signed_post(3, 103, notice_id="n-other", channelName="metrics_ch", uid=111,
                        clientSeq=1)
    assert client.post("/webhook", data=other[0], headers=other[1]).json["status"] == "ignored"
    after = scrape(app)

    def delta(name: str, **labels: str) -> float:
        return (sample(after, name, **labels) or 0) - (sample(before, name, **labels) or 0)

    webhooks = "phone_agent_webhooks_total"
    assert delta(webhooks, product="1", event="103", outcome="call_started") == 1
    assert delta(webhooks, product="1", event="103", outcome="duplicate_notice") == 1
    assert delta(webhooks, product="other", event="other", outcome="ignored") == 1
    assert delta(webhooks, product="unknown", event="unknown", outcome="bad_signature") == 2
    assert delta("phone_agent_signature_failures_total") == 2
    assert delta("phone_agent_duplicates_total") == 1
    assert delta("phone_agent_agent_start_seconds_count") == 1
    assert sample(after, "phone_agent_calls_active") == 1


def test_a_malformed_signed_body_is_a_bad_request(app: Flask):
    from ncs.signature import sign
    from sandbox.defaults import SANDBOX_NCS_SECRET

    body = b'{"noticeId": "x", "productId": 1,'
    before = value("phone_agent_webhooks_total", product="unknown", event="unknown",
                   outcome="bad_request")
    response = app.test_client().post("/webhook", data=body, headers={
        "Content-Type": "application/json", **sign(SANDBOX_NCS_SECRET, body)})
    assert response.status_code == 400
    assert value("phone_agent_webhooks_total", product="unknown", event="unknown",
                 outcome="bad_request") == before + 1


def test_a_store_outage_is_counted_and_the_scrape_still_answers(
        app: Flask, signed_post: SignedPost, monkeypatch, caplog):
    store = app.extensions["store"]

    def down(*_: object, **__: object) -> None:
        raise StoreUnavailable("database is locked")

    monkeypatch.setattr(store, "apply_caller_event", down)
    monkeypatch.setattr(store, "count_open_calls", down)
    before = value("phone_agent_webhooks_total", product="1", event="103", outcome="unavailable")
    body, headers = signed_post(1, 103, notice_id="n-down", channelName="down_ch", uid=111,
                                clientSeq=1)
    assert app.test_client().post("/webhook", data=body, headers=headers).status_code == 503
    with caplog.at_level(logging.WARNING, logger="observability.metrics"):
        samples = scrape(app)
    assert sample(samples, "phone_agent_webhooks_total", product="1", event="103",
                  outcome="unavailable") == before + 1
    assert not any(name == "phone_agent_calls_active" for name, _ in samples)
    assert "metrics.calls_active_skipped" in [r.getMessage() for r in caplog.records]


def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(app: Flask):
    response = app.test_client().get("/metrics", headers={
        "Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).endswith("# EOF\n")


@pytest.mark.parametrize(("authorization", "status"), [
    (None, 401),
    ("Bearer wrong-metrics-token", 401),
    ("Basic bWV0cmljcy10b2tlbi0xMjM0", 401),
    ("Bearer metrics-token-1234", 200),
])
def test_metrics_token_when_set_is_required(settings: Settings, authorization, status):
    app = create_app(settings.replace(metrics_token="metrics-token-1234"))
    headers = {"Authorization": authorization} if authorization else {}
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == status
    assert "metrics-token-1234" not in response.get_data(as_text=True)
    if status == 401:
        assert response.json["error"] == "unauthorized"


# -- where the other code records -----------------------------------------------------------


def test_the_agent_start_is_timed_from_the_callers_join(settings: Settings, store, clock):
    convoai = FakeConvoAI(on_join=lambda _agent_id: clock.advance(2.5))
    service = CallService(settings, store, convoai)
    count = value("phone_agent_agent_start_seconds_count")
    total = value("phone_agent_agent_start_seconds_sum")
    service.handle_caller_event(CallerJoined("timed_ch", 111, 1, "n-timed"), event_type=103)
    assert convoai.count("join") == 1
    assert value("phone_agent_agent_start_seconds_count") == count + 1
    assert value("phone_agent_agent_start_seconds_sum") == pytest.approx(total + 2.5)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def convoai_client() -> ConvoAIClient:
    return ConvoAIClient("https://convoai.test", "app-id", "customer", "secret",
                         retry=RetryPolicy(max_attempts=3), sleep=lambda _s: None,
                         on_failure=count_convoai_failure)


def test_a_convoai_request_is_counted_once_however_many_times_it_was_tried(rsps):
    join_url = "https://convoai.test/v2/projects/app-id/join"
    for _ in range(3):
        rsps.post(join_url, json={"reason": "ServiceUnavailable"}, status=503)
    labels = {"service": "convoai", "reason": "UpstreamError"}
    before = value("phone_agent_upstream_errors_total", **labels)
    with pytest.raises(UpstreamError):
        convoai_client().join("phoneagent-x", {"channel": "c"})
    assert len(rsps.calls) == 3
    assert value("phone_agent_upstream_errors_total", **labels) == before + 1


@pytest.mark.parametrize(("reply", "error", "reason"), [
    ({"status": 422, "json": {"reason": "LimitExceeded"}}, LimitExceeded, "LimitExceeded"),
    ({"status": 200, "json": {"agent_id": "a1"}}, UpstreamError, "MalformedResponse"),
    ({"body": requests.ConnectionError("refused")}, UpstreamUnavailable, "UpstreamUnavailable"),
])
def test_convoai_failures_are_counted_by_error_class(rsps, reply, error, reason):
    rsps.post("https://convoai.test/v2/projects/app-id/join", **reply)
    if error is UpstreamUnavailable:  # retried: the policy allows three attempts
        rsps.post("https://convoai.test/v2/projects/app-id/join", **reply)
        rsps.post("https://convoai.test/v2/projects/app-id/join", **reply)
    before = value("phone_agent_upstream_errors_total", service="convoai", reason=reason)
    with pytest.raises(error):
        convoai_client().join("phoneagent-x", {"channel": "c"})
    assert value("phone_agent_upstream_errors_total", service="convoai",
                 reason=reason) == before + 1


def test_a_gateway_action_is_counted_once_after_its_retry(rsps):
    gateway = GatewayClient("https://sip.test/pstn", "c2lwLWF1dGg=", "app-id",
                            sleep=lambda _s: None, on_failure=count_gateway_failure)
    rsps.post("https://sip.test/pstn", json={"error": "No resource"}, status=503)
    rsps.post("https://sip.test/pstn", json={"error": "No resource"}, status=503)
    labels = {"service": "sip_gateway", "reason": "GatewayUnavailable"}
    before = value("phone_agent_upstream_errors_total", **labels)
    with pytest.raises(GatewayUnavailable):
        gateway.end_call("call-1")
    assert len(rsps.calls) == 2
    assert value("phone_agent_upstream_errors_total", **labels) == before + 1


def test_a_gateway_answer_missing_its_result_is_a_malformed_response(rsps):
    gateway = GatewayClient("https://sip.test/pstn", "c2lwLWF1dGg=", "app-id",
                            on_failure=count_gateway_failure)
    rsps.post("https://sip.test/pstn", json={"success": True})
    labels = {"service": "sip_gateway", "reason": "MalformedResponse"}
    before = value("phone_agent_upstream_errors_total", **labels)
    with pytest.raises(Exception, match="missing callid"):
        gateway.outbound(channel="c", region="NA", to="+14155550123",
                         caller_id="+18005559876")
    assert value("phone_agent_upstream_errors_total", **labels) == before + 1


# -- several processes ----------------------------------------------------------------------


WORKER = textwrap.dedent("""
    import sys
    from observability import metrics
    for _ in range(int(sys.argv[1])):
        metrics.webhook("1", "103", "call_started")
    metrics.duplicate()
    metrics.agent_start(float(sys.argv[1]))
""")

SCRAPER = textwrap.dedent("""
    import sys
    from observability import metrics

    class Store:
        def count_open_calls(self):
            return 7

    sys.stdout.write(metrics.exposition(Store())[0].decode())
""")


def run_python(code: str, env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_in_multiprocess_mode_a_scrape_sums_every_process_and_reads_open_calls_once(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
           "PYTHONPATH": str(ROOT)}
    run_python(WORKER, env, "2")
    run_python(WORKER, env, "3")
    samples = scraped(run_python(SCRAPER, env))
    assert sample(samples, "phone_agent_webhooks_total", product="1", event="103",
                  outcome="call_started") == 5
    assert sample(samples, "phone_agent_duplicates_total") == 2
    assert sample(samples, "phone_agent_agent_start_seconds_count") == 2
    assert sample(samples, "phone_agent_agent_start_seconds_sum") == 5
    assert sample(samples, "phone_agent_calls_active") == 7
    # One file of counters per process: each wrote its own, and the scrape read them all.
    assert len(list((tmp_path / "metrics").glob("counter_*.db"))) == 3


# -- gunicorn.conf.py's hooks ---------------------------------------------------------------


@pytest.fixture
def gunicorn_hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    # What on_starting then sets is undone by tests/conftest.py's environment_restored.
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    yield runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    # on_starting read the settings through the per-process cache.
    settings_from_environment.cache_clear()


def test_gunicorn_makes_a_fresh_metrics_directory_and_removes_it_at_exit(gunicorn_hooks):
    gunicorn_hooks["on_starting"](None)
    made = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert made.is_dir() and list(made.iterdir()) == []
    (made / "gauge_livesum_4242.db").write_bytes(b"")
    (made / "counter_4242.db").write_bytes(b"")
    gunicorn_hooks["child_exit"](None, SimpleNamespace(pid=4242))
    # A dead worker's counters stay in the sum; only its live gauges go.
    assert sorted(p.name for p in made.iterdir()) == ["counter_4242.db"]
    gunicorn_hooks["on_exit"](None)
    assert not made.exists()


def test_an_operators_metrics_directory_is_emptied_of_stale_files_and_kept(
        gunicorn_hooks, monkeypatch, tmp_path):
    mine = tmp_path / "prometheus"
    mine.mkdir()
    (mine / "counter_1.db").write_bytes(b"stale")
    (mine / "README").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(mine))
    gunicorn_hooks["on_starting"](None)
    gunicorn_hooks["on_exit"](None)
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(mine)
    assert sorted(p.name for p in mine.iterdir()) == ["README"]
