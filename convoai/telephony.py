"""ConvoAI's own telephony: place an outbound call, read its status, hang it up.

Mixed into :class:`~convoai.client.ConvoAIClient`, so these calls share its upstream base
(session, Basic auth, timeouts, retry policy, typed errors). Reference: convoai-api.md 5.1 and
ncs-sip-token.md B.4.

Confirmed by Agora's docs and SDK: the paths (``POST /call``, ``GET /calls/{agent_id}``,
``POST /calls/{agent_id}/hangup``), the body's ``name``, ``sip.to_number``,
``sip.from_number`` and ``properties`` (a full join ``properties`` without a pipeline), the
``{"agent_id"}`` answer, the status fields, and the ``{"error_type", "description"}`` error
body (read by convoai/errors.py). ASSUMED: the gateway leg's uid and token are named
``sip.rtc_uid`` / ``sip.rtc_token`` as in the generated SDK and one copy of the page; another
copy names them ``sip_rtc_uid`` / ``sip_rtc_token`` (UNCONFIRMED which is current).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .errors import AgentNotFound
from .models import CallStatus, opt_int, opt_str

if TYPE_CHECKING:
    import requests

    from upstream.errors import UpstreamFailure


class TelephonyCalls:
    """The telephony endpoints, on top of ConvoAIClient's ``_request`` and readers."""

    if TYPE_CHECKING:  # provided by ConvoAIClient and its upstream base
        def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response: ...
        def _json_object(self, resp: requests.Response, what: str) -> dict[str, Any]: ...
        def _malformed(self, what: str, problem: str,
                       resp: requests.Response | None = None) -> UpstreamFailure: ...

    def place_call(self, name: str, *, to_number: str, from_number: str, rtc_uid: str,
                   rtc_token: str, properties: dict[str, Any]) -> str:
        """Dial ``to_number`` from ``from_number`` (both E.164; the caller id must be a number
        imported into Agora) and start an agent called ``name`` with ``properties``; the
        gateway joins the channel as ``rtc_uid`` with ``rtc_token``. Returns the agent id.

        Not retried: whether Agora refuses a second call with the same name (as ``/join`` does,
        409) is not documented, and a retry that dials twice rings the callee twice."""
        body = {
            "name": name,
            "sip": {"to_number": to_number, "from_number": from_number,
                    "rtc_uid": rtc_uid, "rtc_token": rtc_token},
            "properties": properties,
        }
        resp = self._request("POST", "/call", json=body, retry=False)
        agent_id = self._json_object(resp, "call").get("agent_id")
        if not isinstance(agent_id, str) or not agent_id:
            raise self._malformed("call", "missing agent_id", resp)
        return agent_id

    def call_status(self, agent_id: str) -> CallStatus:
        """The state of the call whose agent is ``agent_id``; AgentNotFound on 404."""
        resp = self._request("GET", _call_path(agent_id))
        body = self._json_object(resp, "call status")
        return CallStatus(
            agent_id=opt_str(body.get("agent_id")) or agent_id,
            state=opt_str(body.get("state")), channel=opt_str(body.get("channel")),
            to_number=opt_str(body.get("to_number")),
            from_number=opt_str(body.get("from_number")), call_type=opt_str(body.get("type")),
            create_ts=opt_int(body.get("create_ts")), stop_ts=opt_int(body.get("stop_ts")),
            reason=opt_str(body.get("reason")),
        )

    def hang_up_call(self, agent_id: str) -> bool:
        """Hang the call up (its agent leaves too). Retried: hanging up twice is harmless.
        Returns False when the call was already gone (404), which is what we wanted anyway."""
        try:
            self._request("POST", f"{_call_path(agent_id)}/hangup", json={})
        except AgentNotFound:
            return False
        return True


def _call_path(agent_id: str) -> str:
    if not agent_id:
        raise ValueError("agent_id is required")
    return f"/calls/{quote(agent_id, safe='')}"
