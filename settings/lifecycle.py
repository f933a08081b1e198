"""A call's lifecycle: how agents start and stop, the work lease, the sweeper and its timings."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,23}$")


@dataclass(frozen=True)
class LifecycleSettings:
    """Agent naming and start mode, grace and budgets, the sweeper, the dialer's and the
    post-call timings."""

    agent_name_prefix: str = "phoneagent"
    rejoin_grace_s: int = 30
    agent_start_mode: str = "inline"
    join_budget_s: float = 7.0
    sweep_interval_s: float = 2.0
    run_sweeper: bool = True
    work_lease_s: float = 30.0
    #: How long a dialled outbound call may show no sign of a phone leg before the dialer
    #: gives it up as lost (outbound/dialer.py).
    dial_timeout_s: float = 300.0
    reconcile_interval_s: int = 60
    goodbye_wait_min_s: float = 3.0
    goodbye_wait_max_s: float = 20.0
    #: Seconds after a call ends before its post-call analysis is queued (calls/analysis.py),
    #: so ConvoAI's own history notification has arrived.
    analysis_delay_s: float = 15.0

    def problems(self) -> list[str]:
        found: list[str] = []
        if not _PREFIX.match(self.agent_name_prefix):
            found.append("AGENT_NAME_PREFIX must start with a letter and hold at most 24 "
                         "letters, digits, '-' or '_'")
        if self.agent_start_mode not in ("background", "inline"):
            found.append("AGENT_START_MODE must be 'background' or 'inline'")
        if not 0 <= self.rejoin_grace_s <= 3600:
            found.append("REJOIN_GRACE_S must be between 0 and 3600")
        # The lease must outlast a join's whole budget, or a second worker could take the
        # work over while the first is still starting the agent.
        if not self.join_budget_s < self.work_lease_s <= 3600:
            found.append("WORK_LEASE_S must be more than JOIN_BUDGET_S and at most 3600")
        if not 10 <= self.dial_timeout_s <= 3600:
            found.append("DIAL_TIMEOUT_S must be between 10 and 3600")
        if not 0 <= self.analysis_delay_s <= 3600:
            found.append("ANALYSIS_DELAY_S must be between 0 and 3600")
        if not 0 <= self.goodbye_wait_min_s <= self.goodbye_wait_max_s <= 600:
            found.append("GOODBYE_WAIT_MIN_S and GOODBYE_WAIT_MAX_S must satisfy "
                         "0 <= GOODBYE_WAIT_MIN_S <= GOODBYE_WAIT_MAX_S <= 600")
        if not 0 < self.join_budget_s <= 9:
            found.append("JOIN_BUDGET_S must be above 0 and at most 9 (NCS waits 10 s)")
        if self.sweep_interval_s <= 0:
            found.append("SWEEP_INTERVAL_S must be above 0")
        if not 10 <= self.reconcile_interval_s <= 86_400:
            found.append("RECONCILE_INTERVAL_S must be between 10 and 86400")
        return found
