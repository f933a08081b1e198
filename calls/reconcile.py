"""The reconciler: it makes ConvoAI's list of agents and the call records agree, so that no
agent of this service talks to nobody, and no call outlives its persona's limit.

It runs in three ways: periodically inside the service (`PeriodicRunner`, a thread in each
gunicorn worker; a lease in the store lets one worker at a time list the agents, at most once per
RECONCILE_INTERVAL_S), from `flask calls reconcile`, and from `/api/reconcile` for platforms with
cron instead of threads. A run:

1. does the sweeper's due work (grace windows, failed stops, starts left half done);
2. ends calls past their persona's ``max_call_s``: the agent says the persona's goodbye first,
   and a few seconds later the call is ended, the agent stopped (ConvoAI's graceful farewell is
   on, so it finishes its sentence) and the phone leg hung up at the gateway;
3. (under the lease) lists ConvoAI's agents in STARTING and RUNNING since 72 hours ago (the
   list's defaults are RUNNING only and two hours, and its items carry no name, so each agent
   the store does not know is queried for its name): agents named ``<AGENT_NAME_PREFIX>-...``
   whose call has ended or is unknown are stopped, agents with any other name are never touched,
   and open calls whose agent is gone are closed;
4. (under the lease) erases records older than RETENTION_DAYS;
5. runs due post-call analyses (calls/analysis.py);
6. delivers due operator events (calls/outbox.py).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from calls import lifecycle
from calls.analysis import Analyzer
from calls.outbox import EventSender
from calls.service import CallService
from config import Settings
from convoai.client import ConvoAIClient
from convoai.errors import AgentNotFound, ConvoAIError
from convoai.models import AgentStatus
from observability import metrics
from store import CallRecord, Store, StoreUnavailable
from upstream.errors import UpstreamFailure

logger = logging.getLogger(__name__)

#: ConvoAI keeps an agent at most 72 hours: nothing older can still be running.
LIST_WINDOW_S = 72 * 3600
#: An open call's agent missing from the list is only checked once it has had time to appear.
LIST_LAG_S = 120.0
#: Seconds of speech per character of the goodbye, roughly (a TTS voice says ~14 a second). The
#: wait between the goodbye and the hang-up is kept within GOODBYE_WAIT_MIN_S..GOODBYE_WAIT_MAX_S.
GOODBYE_S_PER_CHAR = 1 / 14
LEASE_NAME = "reconciler"
#: ConvoAI statuses of an agent that is (or is about to be) in its channel.
LIVE_AGENT_STATUSES = frozenset({"STARTING", "RUNNING", "RECOVERING", "IDLE"})


@dataclass
class Report:
    """What one run did."""

    swept: int = 0
    goodbyes: int = 0
    ended_over_length: int = 0
    listed: int = 0
    orphans_stopped: int = 0
    foreign_agents: int = 0
    calls_closed: int = 0
    records_erased: int = 0
    events_delivered: int = 0
    analysed: int = 0
    dialled: int = 0
    listed_agents: bool = False

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


def goodbye_wait_s(text: str, low: float, high: float) -> float:
    """How long to let the goodbye play before hanging up, kept between ``low`` and ``high``."""
    return min(high, max(low, 1.5 + len(text) * GOODBYE_S_PER_CHAR))


class Reconciler:
    def __init__(self, settings: Settings, store: Store, service: CallService,
                 convoai: ConvoAIClient, *,
                 hang_up_leg: Callable[..., None] | None = None,
                 events: EventSender | None = None,
                 analyzer: Analyzer | None = None,
                 dial_due: Callable[[], int] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.service = service
        self.convoai = convoai
        #: Hangs up a call's phone leg, at the SIP gateway or ConvoAI's telephony, and puts
        #: the outcome on its timeline (sip.service.SipService.hang_up_leg; None: no legs).
        self.hang_up_leg = hang_up_leg
        self.events = events
        self.analyzer = analyzer
        #: The outbound dialer's round (outbound/dialer.py), handed in: it sits above this
        #: module (it dials through sip.service), so it is called, not imported.
        self.dial_due = dial_due
        self.clock = clock
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.prefix = f"{settings.agent_name_prefix}-"

    # -- a whole run -----------------------------------------------------------------------

    def run(self, *, force: bool = False) -> Report:
        """One run. Without ``force``, the agent listing and retention happen only when this
        worker takes the store's lease (so at most once per RECONCILE_INTERVAL_S in all)."""
        report = Report()
        report.swept = self.service.sweep()
        self.enforce_max_call_length(report)
        ttl = float(self.settings.reconcile_interval_s)
        if force or self.store.take_lease(LEASE_NAME, self.holder, ttl):
            report.listed_agents = True
            self.reconcile_agents(report)
            self.apply_retention(report)
        if self.dial_due is not None:
            report.dialled = self.dial_due()
        if self.analyzer is not None:
            report.analysed = self.analyzer.run_due()
        if self.events is not None:
            report.events_delivered = self.events.deliver_due()
        if any(v for k, v in report.as_dict().items() if k not in ("listed_agents", "listed")):
            logger.info("reconcile.run", extra=report.as_dict())
        return report

    # -- the longest a call may last -------------------------------------------------------

    def enforce_max_call_length(self, report: Report) -> None:
        now = self.clock()
        for call in self.store.calls_in_states((lifecycle.ACTIVE, lifecycle.GRACE)):
            persona = self.service.persona_of(call)
            began = call.caller_joined_at or call.created_at
            if call.goodbye_at is None:
                if now - began >= persona.max_call_s and call.agent_id and \
                        self.store.mark_goodbye(call.id):
                    self._say_goodbye(call, persona.goodbye)
                    report.goodbyes += 1
            elif now - call.goodbye_at >= goodbye_wait_s(
                    persona.goodbye, self.settings.goodbye_wait_min_s,
                    self.settings.goodbye_wait_max_s):
                if self._end(call, "max_call_length"):
                    report.ended_over_length += 1

    def _say_goodbye(self, call: CallRecord, text: str) -> None:
        try:
            self.convoai.speak(call.agent_id or "", text, priority="INTERRUPT",
                               interruptable=False)
        except ConvoAIError as exc:
            # The call still ends on time; it just ends without the goodbye.
            logger.warning("reconcile.goodbye_failed", extra={
                "call_id": call.id, "reason": exc.reason, "status": exc.status})
        logger.info("reconcile.goodbye", extra={"call_id": call.id, "persona": call.persona})

    def _end(self, call: CallRecord, reason: str) -> bool:
        """End a call now: the agent stopped, the phone leg hung up. False if already over."""
        ended, agent_id = self.store.end_call(call.id, reason)
        if not ended:
            return False
        if agent_id:
            self.service.stop_agent(call.id, agent_id)
        if self.hang_up_leg is not None:
            try:
                self.hang_up_leg(call, source="reconciler", agent_id=agent_id)
            except (UpstreamFailure, StoreUnavailable) as exc:  # the call is over either way
                logger.warning("reconcile.hangup_failed", extra={
                    "call_id": call.id, "error": type(exc).__name__})
        logger.info("reconcile.call_ended", extra={"call_id": call.id, "reason": reason})
        return True

    # -- ConvoAI's agents against the records ----------------------------------------------

    def reconcile_agents(self, report: Report) -> None:
        now = self.clock()
        listed: set[str] = set()
        try:
            summaries = list(self.convoai.iter_agents(
                states=("STARTING", "RUNNING"), from_time=int(now - LIST_WINDOW_S)))
        except ConvoAIError as exc:
            logger.warning("reconcile.list_failed", extra={"reason": exc.reason,
                                                           "status": exc.status})
            return
        report.listed = len(summaries)
        for summary in summaries:
            listed.add(summary.agent_id)
            self._check_agent(summary.agent_id, report)
        self._close_calls_without_agent(listed, now, report)

    def _check_agent(self, agent_id: str, report: Report) -> None:
        call = self.store.call_by_agent_id(agent_id)
        status: AgentStatus | None = None
        if call is None:
            status = self._query(agent_id)
            if status is None:
                return
            name = status.name or ""
            if not name.startswith(self.prefix):
                report.foreign_agents += 1  # not ours: never touched
                return
            call = self.store.get_call(name[len(self.prefix):])
            # An open call under this name owns the agent even if the store does not have its
            # id yet: a start still in flight (or recorded since the list was taken), or one
            # whose worker died, which the sweeper finishes once its lease runs out (joining
            # again adopts this agent on 409). Names are unique, so it cannot be another's.
        if call is not None and call.state in lifecycle.OPEN_STATES:
            return
        if status is None:
            # The call may have ended, and its agent been stopped by its worker, since the
            # list was taken: only an agent that is still live now is an orphan.
            status = self._query(agent_id)
            if status is None:
                return
        if status.status not in LIVE_AGENT_STATUSES:
            return
        self._stop_orphan(agent_id, call, report)

    def _query(self, agent_id: str) -> AgentStatus | None:
        """The agent's state now; None when it is gone or cannot be read this run."""
        try:
            return self.convoai.query(agent_id)
        except AgentNotFound:
            return None  # gone since the list was taken
        except ConvoAIError as exc:
            logger.warning("reconcile.query_failed", extra={"agent_id": agent_id,
                                                            "reason": exc.reason})
            return None

    def _stop_orphan(self, agent_id: str, call: CallRecord | None, report: Report) -> None:
        try:
            self.convoai.leave(agent_id)
        except AgentNotFound:
            return
        except ConvoAIError as exc:
            logger.warning("reconcile.stop_failed", extra={"agent_id": agent_id,
                                                           "reason": exc.reason})
            return
        report.orphans_stopped += 1
        metrics.orphan_stopped()
        if call is not None:
            self.store.record_event(call.id, "reconciler", "orphan_agent_stopped",
                                    {"agent_id": agent_id})
        logger.warning("reconcile.orphan_stopped", extra={
            "agent_id": agent_id, "call_id": call.id if call else None,
            "call_state": call.state if call else "unknown"})

    def _close_calls_without_agent(self, listed: set[str], now: float, report: Report) -> None:
        for call in self.store.calls_in_states((lifecycle.ACTIVE, lifecycle.GRACE)):
            if not call.agent_id or call.agent_id in listed:
                continue
            if call.agent_started_at is None or now - call.agent_started_at < LIST_LAG_S:
                continue
            try:
                status = self.convoai.query(call.agent_id).status
            except AgentNotFound:
                status = "GONE"
            except ConvoAIError:
                continue
            if status in LIVE_AGENT_STATUSES:
                continue
            # Its agent is gone (an idle timeout, an error, a lost notification): a caller
            # still on the line would hear nothing, so the phone leg is hung up too.
            if self._end(call, "agent_gone"):
                report.calls_closed += 1

    # -- retention ---------------------------------------------------------------------------

    def apply_retention(self, report: Report) -> None:
        if self.settings.retention_days:
            cutoff = self.clock() - self.settings.retention_days * 86_400
            report.records_erased = self.store.delete_calls_older_than(cutoff)


class PeriodicRunner(threading.Thread):
    """The reconciler's periodic run inside each worker: every SWEEP_INTERVAL_S it sweeps and
    enforces call lengths (the store's claims keep two workers off one call); the agent listing
    runs when this worker takes the store's lease. It also does the store's upkeep off the
    request path: pruning old notices, and (SQLite) folding the write-ahead log back."""

    def __init__(self, reconciler: Reconciler, interval_s: float, *,
                 notice_retention_s: float) -> None:
        super().__init__(name="reconciler", daemon=True)
        self.reconciler = reconciler
        self.interval_s = interval_s
        self.notice_retention_s = notice_retention_s
        self.stopped = threading.Event()

    def run(self) -> None:
        rounds = 0
        store = self.reconciler.store
        while not self.stopped.wait(self.interval_s):
            rounds += 1
            try:
                self.reconciler.run()
                store.checkpoint()
                if rounds % 300 == 1:
                    store.prune_notices(older_than_s=self.notice_retention_s)
            except Exception:  # keep running; the failure is logged with its cause
                logger.exception("reconciler.failed")
