"""Prometheus metrics: the registry, every ``phone_agent_*`` metric, and the scrape's text.

Code elsewhere calls the small functions below (``webhook``, ``signature_failure``, ...); none of
them ever raises, because a broken counter must not fail a webhook or a join. No Flask here:
health.py serves ``GET /metrics`` with :func:`exposition`.

Several gunicorn workers each count in their own process. gunicorn.conf.py sets
``PROMETHEUS_MULTIPROC_DIR`` in the arbiter before any worker imports this module; prometheus_client
then keeps every worker's values in files in that directory, and a scrape (answered by any one
worker) sums them. Without that variable (``flask run``, tests in one process) the values live
in this process's own registry. ``phone_agent_calls_active`` and
``phone_agent_cost_estimated_total`` are neither: they are read from the store at scrape time,
so they are right across workers and instances, each call counted once, never summed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from functools import wraps
from typing import ParamSpec, Protocol

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from store import StoreUnavailable
from upstream.errors import MALFORMED_RESPONSE, UpstreamFailure

logger = logging.getLogger(__name__)

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "phone_agent"

#: Label values for what could not be read (a body whose signature failed is never parsed)
#: and for values outside the known sets, which keep every label's cardinality bounded.
UNKNOWN = "unknown"
OTHER = "other"

UPSTREAM_SERVICES = frozenset({"convoai", "sip_gateway"})
REFUSAL_REASONS = frozenset({"max_concurrent_calls", "daily_agent_minutes", "daily_budget",
                             "convoai_limit"})
#: Outcomes are names chosen in code (lifecycle decisions, store results); the pattern only
#: guards against a free-text value ever reaching a label.
_OUTCOME = re.compile(r"[a-z][a-z0-9_]{0,39}")

#: Seconds from the caller's join to ConvoAI accepting the agent's join. A join usually takes
#: one to three seconds; the tail reaches JOIN_BUDGET_S and, for starts the sweeper finished
#: after a worker died, the work lease (30 s) and beyond.
AGENT_START_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0)


def upstream_reasons() -> frozenset[str]:
    """The typed errors the upstream clients raise, by class name, and MalformedResponse.
    Read when counting, not at import: the clients' error classes need not be imported yet
    (and this module imports no feature package)."""
    names = {MALFORMED_RESPONSE}
    pending: list[type[Exception]] = [UpstreamFailure]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return frozenset(names)


def multiprocess_dir() -> str | None:
    """The directory the workers share their values through, or None in single-process mode."""
    return os.environ.get(MULTIPROCESS_DIR_ENV) or None


#: Read once: prometheus_client chose its mode from the same variable when it was imported,
#: and the scrape must read the values from where they are written.
MULTIPROCESS_DIR = multiprocess_dir()
if MULTIPROCESS_DIR:
    # Normally made by gunicorn.conf.py; made here too so a hand-set variable naming a directory
    # that does not exist yet cannot stop the service at import.
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)

# The *_created series say when a process first counted; multiprocess mode has none, and one
# process's start time says nothing about the service. Off, so both modes expose the same.
disable_created_metrics()

#: This process's registry. In multiprocess mode the metrics also write to the shared files,
#: and scrapes read those instead.
REGISTRY = CollectorRegistry()

WEBHOOKS = Counter(
    f"{PREFIX}_webhooks", "POST /webhook deliveries by NCS productId, eventType and outcome.",
    ["product", "event", "outcome"], registry=REGISTRY)
SIGNATURE_FAILURES = Counter(
    f"{PREFIX}_signature_failures",
    "Webhook deliveries refused because their signature was missing, wrong, or made with a "
    "secret not allowed for their product.", registry=REGISTRY)
DUPLICATES = Counter(
    f"{PREFIX}_duplicates", "Webhook deliveries whose noticeId had already been processed.",
    registry=REGISTRY)
AGENT_START = Histogram(
    f"{PREFIX}_agent_start_seconds",
    "Seconds from the caller's join (or the call's creation) to ConvoAI accepting the agent.",
    buckets=AGENT_START_BUCKETS, registry=REGISTRY)
UPSTREAM_ERRORS = Counter(
    f"{PREFIX}_upstream_errors",
    "Failed upstream requests (after their retries) by service and error class.",
    ["service", "reason"], registry=REGISTRY)
ORPHANS_STOPPED = Counter(
    f"{PREFIX}_orphans_stopped", "Agents of this service found running without a live call, "
    "and stopped by the reconciler.", registry=REGISTRY)
CALLS_REFUSED = Counter(
    f"{PREFIX}_calls_refused", "Calls refused before an agent was started, by reason.",
    ["reason"], registry=REGISTRY)
TOOL_CALLS = Counter(
    f"{PREFIX}_tool_calls", "Tool calls from agents through the MCP endpoint, by tool and outcome "
    "(repeat: answered from the ledger without running again).", ["tool", "outcome"],
    registry=REGISTRY)
TOOL_CALL_SECONDS = Histogram(
    f"{PREFIX}_tool_call_seconds", "Seconds to answer an agent's tool call, by tool.",
    ["tool"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY)
OUTBOUND_ATTEMPTS = Counter(
    f"{PREFIX}_outbound_attempts", "Outbound dial attempts (campaigns and scheduled calls) by "
    "disposition, counted when each is settled.", ["disposition"], registry=REGISTRY)
#: The dispositions of outbound/rules.py (the label stays bounded).
DISPOSITIONS = frozenset({"answered", "no_answer", "busy", "failed", "voicemail", "refused",
                          "opted_out", "suppressed"})
CALLS_ACTIVE = f"{PREFIX}_calls_active"
COST_ESTIMATED = f"{PREFIX}_cost_estimated"

P = ParamSpec("P")


def _never_raises(record: Callable[P, None]) -> Callable[P, None]:
    """Counting is never worth a failed request: an error is logged and the request goes on."""

    @wraps(record)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            record(*args, **kwargs)
        except Exception as exc:  # a metric must never fail the request that records it
            logger.warning("metrics.record_failed", extra={"metric": record.__name__,
                                                           "error": type(exc).__name__})

    return guarded


# -- label values ---------------------------------------------------------------------------


def outcome_label(outcome: str) -> str:
    return outcome if isinstance(outcome, str) and _OUTCOME.fullmatch(outcome) else OTHER


# -- what other code records ----------------------------------------------------------------


@_never_raises
def webhook(product: str, event: str, outcome: str) -> None:
    """One POST /webhook, answered with ``outcome`` (the answer's outcome, or bad_signature,
    bad_request, unavailable, ignored, error). ``product`` and ``event`` are bounded labels
    (ncs.events.delivery_labels): UNKNOWN for what was not read, OTHER for the rest."""
    WEBHOOKS.labels(product, event, outcome_label(outcome)).inc()


@_never_raises
def signature_failure() -> None:
    SIGNATURE_FAILURES.inc()


@_never_raises
def duplicate() -> None:
    """A delivery whose noticeId was already processed."""
    DUPLICATES.inc()


@_never_raises
def agent_start(seconds: float) -> None:
    """An agent's join accepted ``seconds`` after its caller joined. Hosts' clocks may disagree
    by a little (the join may be recorded by another machine): below zero counts as zero."""
    AGENT_START.observe(max(0.0, float(seconds)))


@_never_raises
def upstream_error(service: str, reason: str) -> None:
    """A request to ``service`` ("convoai" or "sip_gateway") failed for good; ``reason`` is the
    client's error class name (or MalformedResponse)."""
    UPSTREAM_ERRORS.labels(service if service in UPSTREAM_SERVICES else OTHER,
                           reason if reason in upstream_reasons() else OTHER).inc()


@_never_raises
def orphan_stopped() -> None:
    """The reconciler stopped an agent of ours that had no live call."""
    ORPHANS_STOPPED.inc()


@_never_raises
def call_refused(reason: str) -> None:
    """A call refused before its agent: max_concurrent_calls, daily_agent_minutes,
    daily_budget or convoai_limit."""
    CALLS_REFUSED.labels(reason if reason in REFUSAL_REASONS else OTHER).inc()


@_never_raises
def tool_call(tool: str, outcome: str, seconds: float) -> None:
    """One tools/call answered. ``tool`` is a name from a persona's catalog (the caller of this
    passes "unknown" for names that are not), so the label stays bounded."""
    TOOL_CALLS.labels(tool, outcome_label(outcome)).inc()
    TOOL_CALL_SECONDS.labels(tool).observe(max(0.0, float(seconds)))


@_never_raises
def outbound_attempt(disposition: str) -> None:
    """One outbound attempt settled with ``disposition``."""
    OUTBOUND_ATTEMPTS.labels(disposition if disposition in DISPOSITIONS else OTHER).inc()


# -- the scrape -----------------------------------------------------------------------------


class OpenCallCounter(Protocol):
    def count_open_calls(self) -> int: ...


class _OpenCalls:
    """``phone_agent_calls_active``, read from the store when scraped. The store is shared by
    every worker and instance, so this is the real number, reported once per scrape."""

    def __init__(self, store: OpenCallCounter) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        try:
            count = self.store.count_open_calls()
        except (StoreUnavailable, sa.exc.SQLAlchemyError) as exc:
            # The counters are still worth scraping; an absent series is what alerts can see.
            logger.warning("metrics.calls_active_skipped", extra={"error": type(exc).__name__})
            return
        yield GaugeMetricFamily(
            CALLS_ACTIVE, "Calls not yet over (pending, starting, active, grace or stopping), "
            "from the store.", value=count)


class _Costs:
    """``phone_agent_cost_estimated_total{persona}``: the estimated cost of the ended calls the
    store holds, from ``totals`` (persona -> money) when scraped."""

    def __init__(self, totals: Callable[[], Mapping[str, float]]) -> None:
        self.totals = totals

    def collect(self) -> Iterator[Metric]:
        try:
            totals = self.totals()
        except (StoreUnavailable, sa.exc.SQLAlchemyError) as exc:
            logger.warning("metrics.cost_skipped", extra={"error": type(exc).__name__})
            return
        family = CounterMetricFamily(
            COST_ESTIMATED, "Estimated cost of ended calls (in COST_CURRENCY) by persona, from "
            "the store: calls erased by RETENTION_DAYS leave it.", labels=["persona"])
        for persona, value in sorted(totals.items()):
            family.add_metric([persona], value)
        yield family


def scrape_registry(store: OpenCallCounter,
                    costs: Callable[[], Mapping[str, float]] | None = None) -> CollectorRegistry:
    """Everything one scrape reports: every worker's counters (or this process's), the open
    calls from the store and, given ``costs``, the ended calls' estimated cost."""
    registry = CollectorRegistry(auto_describe=False)
    if MULTIPROCESS_DIR:
        MultiProcessCollector(registry, path=MULTIPROCESS_DIR)
    else:
        registry.register(_Registered(REGISTRY))
    registry.register(_OpenCalls(store))
    if costs is not None:
        registry.register(_Costs(costs))
    return registry


class _Registered:
    """This process's registry, as one collector of the scrape's."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        return self.registry.collect()


def exposition(store: OpenCallCounter, accept: str | None = None,
               costs: Callable[[], Mapping[str, float]] | None = None) -> tuple[bytes, str]:
    """The scrape's body and content type: OpenMetrics when ``accept`` asks for it, else the
    Prometheus text format."""
    encode, content_type = choose_encoder(accept or "")
    return encode(scrape_registry(store, costs)), content_type
