"""GET /metrics from outside: the service under gunicorn (2 gthread workers, multiprocess
metrics) against the sandbox, driven by signed NCS posts. A known set of things happens; every
scrape, whichever worker answers it, must report exactly that, and the open calls must be the
store's own count.

The stack is this module's own (the session's stack counts every other test's events too)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from store import Store
from tests.integration.conftest import SECRETS
from tests.integration.harness import (
    ROOT,
    Sandbox,
    Service,
    running_stack,
    stack_database,
    wait_until,
)

pytestmark = pytest.mark.integration

#: Calls that join and hang up, and calls whose caller is still on the line at the end.
FINISHED_CALLS = 3
LIVE_CALLS = 1
#: How many scrapes are compared: over fresh connections, so either worker may answer.
SCRAPES = 8


@dataclass
class MetricsStack:
    sandbox: Sandbox
    service: Service
    database_url: str
    metrics_dir: Path


def count_a_stale_duplicate(metrics_dir: Path) -> None:
    """Leave a file of an earlier run in the directory, as a crashed server would: the new run
    must start from zero (gunicorn.conf.py empties an operator's directory at start)."""
    code = "from observability import metrics; metrics.duplicate()"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "PYTHONPATH": str(ROOT),
           "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60,
                   capture_output=True)
    assert list(metrics_dir.glob("counter_*.db"))


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def metrics_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[MetricsStack]:
    log_dir = tmp_path_factory.mktemp(f"metrics-{request.param}")
    database_url = stack_database(request.param, log_dir, "phone_agent_metrics")
    # An operator's directory (rather than the one gunicorn.conf.py makes), so that the test
    # can leave a stale file in it first and read each worker's file afterwards.
    metrics_dir = Path(tempfile.mkdtemp(prefix="it-metrics-", dir=log_dir))
    count_a_stale_duplicate(metrics_dir)
    with running_stack(log_dir, database_url, SECRETS, name="metrics-service", notify=None,
                       env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}) as running:
        yield MetricsStack(running.sandbox, running.service, database_url, metrics_dir)
    shutil.rmtree(metrics_dir, ignore_errors=True)


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    # A new connection each time: gunicorn hands each to whichever worker accepts it first.
    response = requests.get(f"{url}/metrics", timeout=10, headers={"Connection": "close"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(response.text)


def webhooks_by_worker(metrics_dir: Path) -> list[float]:
    """How many deliveries each worker has counted, read from its own file alone."""
    counts = []
    for path in sorted(metrics_dir.glob("counter_*.db")):
        with tempfile.TemporaryDirectory() as one:
            shutil.copy(path, one)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=one)
            counts.append(sum(s.value for m in registry.collect() for s in m.samples
                              if s.name == "phone_agent_webhooks_total"))
    return counts


def test_every_scrape_reports_what_happened_across_both_workers(metrics_stack: MetricsStack):
    service, sandbox = metrics_stack.service, metrics_stack.sandbox
    sandbox.reset(concurrency_limit=200)
    channels = [f"metrics_{n}" for n in range(FINISHED_CALLS + LIVE_CALLS)]
    for channel in channels:
        fresh = requests.Session()  # each delivery on a new connection: either worker
        answer = service.event(103, channel=channel, seq=1, notice_id=f"{channel}-join",
                               session=fresh)
        assert answer.status_code == 200 and answer.json()["outcome"] == "call_started"
    wait_until(lambda: all(len(sandbox.agents(c)) == 1 for c in channels),
               message="one agent per call")
    # NCS delivers the first join again under its own notice id.
    again = service.event(103, channel=channels[0], seq=1, notice_id=f"{channels[0]}-join",
                          session=requests.Session())
    assert again.json()["outcome"] == "duplicate_notice"
    for channel in channels[:FINISHED_CALLS]:
        leave = service.event(104, channel=channel, seq=2, reason=1,
                              notice_id=f"{channel}-leave", session=requests.Session())
        assert leave.json()["outcome"] == "call_ending"
    forged = service.event(103, channel="metrics_forged", seq=1, secret="not-our-secret")
    assert forged.status_code == 401
    # Channel events (101: channel created) are acknowledged and ignored. Sent on fresh
    # connections until both workers have counted a delivery, so the sum is really a sum.
    ignored = 0
    while ignored == 0 or (ignored < 200
                           and min(webhooks_by_worker(metrics_stack.metrics_dir)) == 0):
        reply = service.event(101, channel="metrics_ignored", seq=1, session=requests.Session())
        assert reply.json()["status"] == "ignored"
        ignored += 1
    per_worker = webhooks_by_worker(metrics_stack.metrics_dir)
    assert len(per_worker) == 2 and min(per_worker) > 0, per_worker

    store = Store.from_url(metrics_stack.database_url)
    try:
        open_calls = store.count_open_calls()
    finally:
        store.engine.dispose()
    assert open_calls == LIVE_CALLS

    calls = FINISHED_CALLS + LIVE_CALLS
    expected = {
        ("phone_agent_webhooks_total", "1", "103", "call_started"): calls,
        ("phone_agent_webhooks_total", "1", "103", "duplicate_notice"): 1,
        ("phone_agent_webhooks_total", "1", "104", "call_ending"): FINISHED_CALLS,
        ("phone_agent_webhooks_total", "1", "101", "ignored"): ignored,
        ("phone_agent_webhooks_total", "unknown", "unknown", "bad_signature"): 1,
    }
    scrapes = [scrape(service.url) for _ in range(SCRAPES)]
    for samples in scrapes:
        webhooks = {("phone_agent_webhooks_total", labels["product"], labels["event"],
                     labels["outcome"]): value
                    for (name, labels_set), value in samples.items()
                    if name == "phone_agent_webhooks_total"
                    for labels in [dict(labels_set)]}
        assert webhooks == expected
        assert samples[("phone_agent_signature_failures_total", frozenset())] == 1
        # The stale file of the earlier run was removed at start: one, not two.
        assert samples[("phone_agent_duplicates_total", frozenset())] == 1
        assert samples[("phone_agent_agent_start_seconds_count", frozenset())] == calls
        assert samples[("phone_agent_orphans_stopped_total", frozenset())] == 0
        # Nothing failed upstream. (The transcript read before each leave may find no history
        # in the sandbox: a 404, AgentNotFound, which the service expects and moves past.)
        assert not [key for key in samples if key[0] == "phone_agent_upstream_errors_total"
                    and ("reason", "AgentNotFound") not in key[1]]
        # Read from the store once per scrape: not multiplied by the number of workers.
        assert samples[("phone_agent_calls_active", frozenset())] == open_calls
    assert sum(webhooks_by_worker(metrics_stack.metrics_dir)) == sum(expected.values())
