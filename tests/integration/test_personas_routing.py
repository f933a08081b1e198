"""Issue 4: channels matching different PERSONA_ROUTES get agents with different personas,
visible in the join bodies and in the call records."""

from __future__ import annotations

import pytest
import requests

from tests.integration.harness import wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("label", "persona"), [("tarot", "tarot"), ("orders", "orders"),
                                                ("plain", "support")])
def test_each_route_starts_its_persona(fresh, label, persona):
    channel = fresh.channel(label)
    answer = fresh.service.event(103, channel=channel, seq=1).json()
    join = wait_until(lambda: [r for r in fresh.sandbox.requests("join")
                               if r["body"]["properties"]["channel"] == channel],
                      message="the join")[0]
    properties = join["body"]["properties"]
    assert join["status"] == 200
    assert properties["labels"]["persona"] == persona
    assert properties["llm"]["template_variables"]["persona"] == persona
    record = requests.get(f"{fresh.service.url}/api/calls/{answer['call_id']}", timeout=5,
                          headers={"Authorization": "Bearer sandbox-admin-token"}).json()
    assert record["persona"] == persona
    fresh.service.event(104, channel=channel, seq=2, reason=1)


def test_the_tarot_line_asks_agora_not_to_keep_the_conversation(fresh):
    channel = fresh.channel("tarot")
    fresh.service.event(103, channel=channel, seq=1)
    join = wait_until(lambda: [r for r in fresh.sandbox.requests("join")
                               if r["body"]["properties"]["channel"] == channel],
                      message="the join")[0]
    assert join["body"]["properties"]["parameters"]["opt_out"] is True
    fresh.service.event(104, channel=channel, seq=2, reason=1)
