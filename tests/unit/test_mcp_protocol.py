"""MCP's JSON-RPC as tools/protocol.py answers it, without HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.protocol import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    LATEST_VERSION,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SUPPORTED_VERSIONS,
    RpcError,
    handle,
    tool_result,
)


class Host:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def list_tools(self) -> list[dict[str, Any]]:
        return [{"name": "echo", "description": "Echo", "inputSchema": {"type": "object"}}]

    def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        if name != "echo":
            raise RpcError(INVALID_PARAMS, f"Unknown tool: {name}")
        self.calls.append((name, arguments))
        return tool_result(json.dumps(arguments))


def ask(message: Any, version: str | None = None, host: Host | None = None):
    host = host or Host()
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return handle(body, version, lambda: host)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_initialize_agrees_on_a_version_the_client_asked_for(version: str) -> None:
    answer = ask({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": version, "capabilities": {},
                             "clientInfo": {"name": "t", "version": "1"}}})
    assert answer.status == 200
    result = answer.body["result"]
    assert result["protocolVersion"] == version
    assert result["capabilities"]["tools"] == {"listChanged": False}
    assert answer.body["id"] == 1


def test_an_unknown_version_is_offered_the_newest() -> None:
    answer = ask({"jsonrpc": "2.0", "id": "a", "method": "initialize",
                  "params": {"protocolVersion": "2024-11-05"}})
    assert answer.body["result"]["protocolVersion"] == LATEST_VERSION


def test_a_request_under_an_unsupported_version_header_is_refused() -> None:
    answer = ask({"jsonrpc": "2.0", "id": 1, "method": "ping"}, version="1999-01-01")
    assert answer.status == 400 and answer.body["error"]["code"] == INVALID_REQUEST


def test_notifications_are_accepted_with_no_body() -> None:
    answer = ask({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert (answer.status, answer.body) == (202, None)


def test_tools_are_listed_and_called() -> None:
    host = Host()
    listed = ask({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, host=host)
    assert [t["name"] for t in listed.body["result"]["tools"]] == ["echo"]
    called = ask({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                  "params": {"name": "echo", "arguments": {"x": 1}}}, host=host)
    assert called.body["result"]["isError"] is False
    assert json.loads(called.body["result"]["content"][0]["text"]) == {"x": 1}
    assert host.calls == [("echo", {"x": 1})]


@pytest.mark.parametrize(("message", "code"), [
    (b"{not json", PARSE_ERROR),
    ({"id": 1, "method": "ping"}, INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": 1}, INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": True, "method": "ping"}, INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": 1, "method": 5}, INVALID_REQUEST),
    ({"jsonrpc": "2.0", "id": 1, "method": "nope"}, METHOD_NOT_FOUND),
    ({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": []}, INVALID_PARAMS),
    ({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x"}},
     INVALID_PARAMS),
    ({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
      "params": {"name": "echo", "arguments": [1]}}, INVALID_PARAMS),
    ({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}, INVALID_PARAMS),
    ([], INVALID_REQUEST),
])
def test_malformed_messages_get_json_rpc_errors(message: Any, code: int) -> None:
    answer = ask(message)
    assert answer.status in (200, 400)
    assert answer.body["error"]["code"] == code


def test_a_batch_gets_one_answer_per_request() -> None:
    answer = ask([{"jsonrpc": "2.0", "id": 1, "method": "ping"},
                  {"jsonrpc": "2.0", "method": "notifications/initialized"},
                  {"jsonrpc": "2.0", "id": 2, "method": "nope"}])
    assert answer.status == 200
    assert [a["id"] for a in answer.body] == [1, 2]
    assert answer.body[1]["error"]["code"] == METHOD_NOT_FOUND


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)
messages = st.fixed_dictionaries(
    {}, optional={"jsonrpc": st.sampled_from(["2.0", "1.0", 2]) | json_values,
                  "id": json_values,
                  "method": st.sampled_from(["initialize", "ping", "tools/list", "tools/call",
                                             "notifications/initialized"]) | json_values,
                  "params": json_values | st.fixed_dictionaries(
                      {}, optional={"name": st.sampled_from(["echo"]) | json_values,
                                    "arguments": json_values,
                                    "protocolVersion": json_values,
                                    "cursor": json_values})})


@settings(max_examples=300, deadline=None)
@given(st.one_of(messages, json_values, st.lists(messages, max_size=3), st.binary(max_size=64)))
def test_any_body_gets_a_json_rpc_answer_never_an_exception(message: Any) -> None:
    answer = ask(message if isinstance(message, bytes) else json.dumps(message).encode())
    assert answer.status in (200, 202, 400)
    if answer.body is not None:
        for one in answer.body if isinstance(answer.body, list) else [answer.body]:
            assert one["jsonrpc"] == "2.0" and ("result" in one or "error" in one)


def test_nesting_deeper_than_the_parser_is_a_parse_error_not_a_crash() -> None:
    answer = ask(b"[" * 100_000)
    assert answer.status == 400 and answer.body["error"]["code"] == PARSE_ERROR
