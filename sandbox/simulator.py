"""A phone caller, simulated from outside: signed NCS events sent to any service URL.

``flask simulate call`` plays one call (the caller's join, a wait, the leave) with NCS's delivery
quirks on demand, follows the call through the service's admin API, prints a timeline and says
whether the service behaved: exactly one agent started, and stopped once the caller was gone.
``flask simulate storm`` drives many calls at once. Both sign with AGORA_NCS_SECRET, so they work
against a deployed service as well as a local one. When the target runs in sandbox mode, the
simulator also tells the sandbox where the caller is, so the sandbox's agents greet, talk and
time out as real ones would.

Neither leaves a call open: what they need (the service, the admin token, the NCS secret) is
checked before the first event, and once a caller's join is sent its leave is sent too, whatever
happens in between (an error, Ctrl-C).
"""

from __future__ import annotations

import json
import secrets
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from ncs.signature import sign

JOIN, LEAVE = 103, 104
#: RTC "channel created": signed, it tells whether the service takes our secret; the service
#: ignores it (it only acts on the caller's joins and leaves), so it starts nothing.
CHANNEL_CREATED = 101
FINAL_STATES = ("ended", "refused", "failed")


class SimulationError(Exception):
    """The simulation could not run (the service is unreachable, or refused our credentials)."""


class Refused(SimulationError):
    """The service refused what the simulator needs (the admin token, the NCS signature), or is
    not the service; found before anything was sent."""


@dataclass
class Target:
    """Where the events go, and what to sign and authenticate them with."""

    url: str
    ncs_secret: str
    admin_token: str = ""
    pstn_uid: int = 111
    sandbox_url: str | None = None
    timeout_s: float = 10.0
    session: requests.Session = field(default_factory=requests.Session)

    def webhook(self, event_type: int, channel: str, seq: int, *, notice_id: str,
                reason: int | None = None) -> requests.Response:
        payload: dict[str, Any] = {"channelName": channel, "uid": self.pstn_uid, "platform": 6,
                                   "clientSeq": seq, "ts": int(time.time())}
        if reason is not None:
            payload.update(reason=reason, duration=1)
        body = json.dumps({"noticeId": notice_id, "productId": 1, "eventType": event_type,
                           "notifyMs": int(time.time() * 1000), "sid": secrets.token_hex(8),
                           "payload": payload}, separators=(",", ":")).encode()
        try:
            return self.session.post(
                f"{self.url.rstrip('/')}/webhook", data=body, timeout=self.timeout_s,
                headers={"Content-Type": "application/json", **sign(self.ncs_secret, body)})
        except requests.RequestException as exc:
            raise SimulationError(f"cannot reach {self.url}: {type(exc).__name__}") from None

    def check(self, *, admin: bool = True) -> None:
        """Before the first event: the service answers, takes the admin token that follows the
        call (``admin``) and the NCS secret. Raises Refused, or SimulationError when the service
        cannot be reached; either way no caller has joined."""
        base = self.url.rstrip("/")
        if admin:
            if not self.admin_token:
                raise Refused("no admin token to follow the call with: set ADMIN_TOKEN (or "
                              "--token) to the service's. Nothing was sent.")
            try:
                response = self.session.get(
                    f"{base}/api/calls", params={"limit": 1}, timeout=self.timeout_s,
                    headers={"Authorization": f"Bearer {self.admin_token}"})
            except requests.RequestException as exc:
                raise SimulationError(f"cannot reach {self.url}: {type(exc).__name__}") from None
            if response.status_code in (401, 403):
                raise Refused(f"the service refused the admin token ({_said(response)}): set "
                              "ADMIN_TOKEN (or --token) to the service's. Nothing was sent.")
            if response.status_code != 200:
                raise Refused(f"{base} answered {response.status_code} to GET /api/calls: is it "
                              "the phone-agent service? Nothing was sent.")
        probe = self.webhook(CHANNEL_CREATED, f"sim_check_{secrets.token_hex(4)}", 0,
                             notice_id=secrets.token_hex(8))
        if probe.status_code == 401:
            raise Refused(f"the service refused the NCS signature ({_said(probe)}): set "
                          "AGORA_NCS_SECRET (or --secret) to the service's. No caller joined.")
        if probe.status_code != 200:
            raise Refused(f"{base}/webhook answered {probe.status_code} to a signed event it "
                          f"should ignore ({_said(probe)}). No caller joined.")

    def call_record(self, call_id: str) -> dict[str, Any] | None:
        try:
            response = self.session.get(
                f"{self.url.rstrip('/')}/api/calls/{call_id}", timeout=self.timeout_s,
                headers={"Authorization": f"Bearer {self.admin_token}"})
        except requests.RequestException:
            return None
        if response.status_code == 401:
            raise SimulationError("the service refused the admin token: set ADMIN_TOKEN (or "
                                  "--token) to the service's")
        return response.json() if response.status_code == 200 else None

    def presence(self, channel: str, present: bool, *, scripted: bool = False) -> None:
        if not self.sandbox_url:
            return
        try:
            self.session.post(f"{self.sandbox_url.rstrip('/')}/_sandbox/presence", timeout=5,
                              json={"channel": channel, "uid": self.pstn_uid,
                                    "present": present, "scripted": scripted})
        except requests.RequestException:
            pass  # the sandbox only adds realism; the service's behaviour is what we check

    def sandbox_agents(self, channel: str) -> list[dict[str, Any]] | None:
        if not self.sandbox_url:
            return None
        try:
            data = self.session.get(f"{self.sandbox_url.rstrip('/')}/_sandbox/agents",
                                    timeout=5).json()
        except (requests.RequestException, ValueError):
            return None
        return [a for a in data.get("agents", []) if a.get("channel") == channel]


def _said(response: requests.Response) -> str:
    """The service's own words for a refusal: its JSON error message, or the start of the body."""
    try:
        message = response.json().get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or response.text[:120].strip() or response.reason)


@dataclass
class CallReport:
    ok: bool
    lines: list[str]
    problems: list[str]
    call_id: str | None = None
    agent_id: str | None = None


def simulate_call(target: Target, *, duration_s: float = 3.0, duplicates: int = 0,
                  reorder: bool = False, drop_leave: bool = False, wait_s: float = 20.0,
                  channel: str | None = None, echo: Callable[[str], None] = lambda _: None,
                  conversation: Callable[[str], None] | None = None) -> CallReport:
    """Play one call and check the service's behaviour; ``echo`` receives each timeline line.

    Raises Refused before sending anything the service would act on when it refuses the admin
    token or the NCS secret. Once the join is sent, the leave is sent whatever happens next (an
    exception, KeyboardInterrupt); only a ``drop_leave`` run that got as far as the hang-up
    leaves the call to the agent's idle timeout, as it is asked to.

    ``conversation`` (a scripted caller: sandbox/conversation.py) is called with the agent's id
    once the agent has started, instead of waiting ``duration_s``; the sandbox's agent then
    takes no automatic turns. Whatever it raises comes out after the leave has been sent.
    """
    target.check()
    channel = channel or f"sim_{secrets.token_hex(5)}"
    started = time.monotonic()
    lines: list[str] = []
    problems: list[str] = []

    def say(text: str) -> None:
        line = f"  +{time.monotonic() - started:6.3f}s  {text}"
        lines.append(line)
        echo(line)

    def send(event_type: int, seq: int, notice_id: str, label: str,
             reason: int | None = None) -> dict[str, Any]:
        response = target.webhook(event_type, channel, seq, notice_id=notice_id, reason=reason)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        outcome = answer.get("outcome") or answer.get("reason") or answer.get("error", "")
        say(f"-> {event_type} {label} (notice {notice_id[:8]})  <- {response.status_code} "
            f"{answer.get('status', '')} {outcome}".rstrip())
        if response.status_code != 200:
            problems.append(f"the service answered {response.status_code} to a signed "
                            f"{event_type}: {answer.get('message', response.text[:120])}")
        return answer

    def hang_up(seq: int, copies: int) -> None:
        """The caller's leave (and ``copies`` duplicates); a failure is reported, not raised,
        so that it never hides the error that brought us here."""
        notice = secrets.token_hex(8)
        try:
            send(LEAVE, seq, notice, "caller left, reason 1", reason=1)
            for _ in range(copies):
                send(LEAVE, seq, notice, "duplicate of the leave", reason=1)
        except SimulationError as exc:
            problems.append(f"the leave could not be sent ({exc}): the call may still be open")
            say(f"the leave could not be sent: {exc}")

    echo(f"simulated call into channel {channel} (caller uid {target.pstn_uid}) -> "
         f"{target.url.rstrip('/')}/webhook")
    join_seq = int(time.time() * 1000)
    leave_seq = join_seq + 1 + duplicates
    call_id = agent_id = None
    hung_up = False
    target.presence(channel, True, scripted=conversation is not None)
    try:
        call_id, agent_id = _talk(target, send, say, problems, join_seq=join_seq,
                                  duplicates=duplicates, reorder=reorder, wait_s=wait_s)
        if conversation is not None and agent_id:
            conversation(agent_id)
        else:
            time.sleep(duration_s)
        hung_up = True
    finally:
        target.presence(channel, False)
        if drop_leave and hung_up:
            say("caller hung up; the leave event is dropped (NCS never delivers it)")
        else:
            hang_up(leave_seq, duplicates)
    if reorder:
        late = send(JOIN, join_seq, secrets.token_hex(8), "late copy of the join, after the "
                    "leave")
        if late.get("outcome") == "call_started":
            problems.append("a join delivered after the leave started a new call")
            if not drop_leave:
                hang_up(leave_seq + 1, 0)  # and end the call it should not have started

    if call_id and agent_id:
        # With the leave dropped only the agent's own idle timeout can end the call.
        limit = wait_s + (90 if drop_leave else 0)
        record = _wait_for(target, call_id, lambda r: r["state"] in FINAL_STATES, limit)
        if record and record["state"] in FINAL_STATES:
            say(f"agent stopped: call {record['state']} ({record.get('end_reason')})")
            for event in record.get("timeline", []):
                if event["kind"] == "agent_left":
                    message = (event.get("detail") or {}).get("message")
                    say(f"  ConvoAI: agent left ({message})")
        else:
            problems.append(f"the agent was not stopped within {limit:.0f} s")
    agents = target.sandbox_agents(channel)
    if agents is not None and call_id:
        running = [a for a in agents if a.get("state") in ("STARTING", "RUNNING")]
        if len(agents) != 1:
            problems.append(f"the sandbox saw {len(agents)} agents in the channel, not 1")
        if running:
            problems.append(f"{len(running)} agent(s) still running in the sandbox")
    ok = not problems
    return CallReport(ok=ok, lines=lines, problems=problems, call_id=call_id, agent_id=agent_id)


def _talk(target: Target, send: Callable[..., dict[str, Any]], say: Callable[[str], None],
          problems: list[str], *, join_seq: int, duplicates: int, reorder: bool,
          wait_s: float) -> tuple[str | None, str | None]:
    """The caller's join (with the copies asked for), then the wait for the call's agent.
    Returns the call's id and its agent's, when the service gave them."""
    join_notice = secrets.token_hex(8)
    first = send(JOIN, join_seq, join_notice, "caller joined")
    call_id = first.get("call_id")
    if first.get("outcome") != "call_started" or not call_id:
        problems.append(f"the first join did not start a call (outcome {first.get('outcome')})")
    for _ in range(duplicates):
        copy = send(JOIN, join_seq, join_notice, "duplicate of the join")
        if copy.get("outcome") == "call_started":
            problems.append("a duplicate join started another call")
    if reorder:
        copy = send(JOIN, join_seq, secrets.token_hex(8), "redundant copy (new notice id)")
        if copy.get("outcome") == "call_started":
            problems.append("a redundant copy of the join started another call")
    if not call_id:
        return None, None
    record = _wait_for(target, call_id, lambda r: r.get("agent_id") or r["state"] in
                       FINAL_STATES, wait_s)
    if record and record.get("agent_id"):
        say(f"agent started: {record['agent_id']} (time to agent "
            f"{record.get('time_to_agent_ms')} ms)")
        return call_id, record["agent_id"]
    if record:
        problems.append(f"no agent: the call is {record['state']} "
                        f"({record.get('last_error') or record.get('end_reason')})")
    else:
        problems.append(f"no agent within {wait_s:.0f} s (or the admin API is unreachable)")
    return call_id, None


def _wait_for(target: Target, call_id: str, done: Callable[[dict[str, Any]], Any],
              limit_s: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + limit_s
    record = None
    while time.monotonic() < deadline:
        record = target.call_record(call_id)
        if record and done(record):
            return record
        time.sleep(0.1)
    return record


@dataclass
class StormReport:
    calls: int
    events: int
    statuses: dict[int, int]
    answer_ms_p50: float
    answer_ms_p99: float
    elapsed_s: float
    errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors and set(self.statuses) <= {200}


def simulate_storm(target: Target, *, calls: int, concurrency: int, duration_s: float = 1.0,
                   duplicates: int = 0) -> StormReport:
    """Many calls at once: each sends its join (plus copies), waits, and sends its leave.

    Checks the service and the NCS secret first (Refused, SimulationError). Interrupted (an
    exception or KeyboardInterrupt in the calling thread), it starts no more calls, and those
    in progress hang up at once: every join sent gets its leave.
    """
    target.check(admin=False)
    statuses: dict[int, int] = {}
    answer_ms: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    local = threading.local()
    stopping = threading.Event()

    def post(event_type: int, channel: str, seq: int, notice_id: str,
             reason: int | None = None) -> None:
        if not hasattr(local, "target"):
            local.target = Target(target.url, target.ncs_secret, target.admin_token,
                                  target.pstn_uid, None, target.timeout_s)
        began = time.monotonic()
        try:
            response = local.target.webhook(event_type, channel, seq, notice_id=notice_id,
                                            reason=reason)
        except SimulationError as exc:
            with lock:
                errors.append(str(exc))
            return
        with lock:
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            answer_ms.append((time.monotonic() - began) * 1000)

    def one_call(index: int) -> None:
        if stopping.is_set():
            return
        channel = f"storm_{secrets.token_hex(4)}_{index}"
        seq = int(time.time() * 1000)
        notice = secrets.token_hex(8)
        try:
            for _ in range(1 + duplicates):
                post(JOIN, channel, seq, notice)
            stopping.wait(duration_s)
        finally:
            notice = secrets.token_hex(8)
            for _ in range(1 + duplicates):
                post(LEAVE, channel, seq + 1, notice, reason=1)

    started = time.monotonic()
    with ThreadPoolExecutor(max(1, concurrency)) as pool:
        try:
            list(pool.map(one_call, range(calls)))
        finally:
            stopping.set()  # on an interruption: the pool's exit waits for the calls' leaves
    elapsed = time.monotonic() - started
    ordered = sorted(answer_ms) or [0.0]
    return StormReport(
        calls=calls, events=len(answer_ms), statuses=statuses,
        answer_ms_p50=statistics.median(ordered),
        answer_ms_p99=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        elapsed_s=elapsed, errors=sorted(set(errors))[:5])
