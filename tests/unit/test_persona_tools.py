"""Persona tools: builtin_tools, [transfer.destinations] and [[tools]] (issue 17), as files
declare them, as the loader checks and resolves them, and as the built-in personas use them."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from flask import Flask

from config import SANDBOX_TOOLS_SECRET, ConfigError, Settings
from factory.app import create_app
from personas import inspect_personas, load_registry
from personas.loader import parse
from personas.model import BUILTIN_TOOL_NAMES, OperatorTool, Persona
from personas.tools_shape import secret_problem, url_problem

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HEX = "0123456789abcdef0123456789abcdef"
PRODUCTION = dict(agora_app_id=HEX, agora_app_certificate=HEX, agora_customer_id="cid",
                  agora_customer_secret="customer-secret-1", agora_ncs_secret="ncs-secret-1",
                  openai_api_key="sk-live-1", elevenlabs_api_key="el-live-1",
                  elevenlabs_voice_id="voice-live-1")

HEAD = '''
name = "shop"
description = "A test persona."
prompt = "You are a test agent. You are an AI assistant."
greeting = "Hi, I'm an AI assistant. How can I help?"
failure_message = "Sorry, one moment."
'''
VENDORS = '''
[llm]
url = "https://llm.example.com/v1/chat/completions"
model = "test-model"

[tts]
vendor = "elevenlabs"

[tts.params]
base_url = "wss://api.elevenlabs.io/v1"
model_id = "eleven_flash_v2_5"
key_env = "TEST_TTS_KEY"
voice_id = "v1"
'''
#: The issue's example, verbatim.
LOOKUP_ORDER = '''
[[tools]]
name = "lookup_order"                 # letters, digits, _ ; unique in the persona
description = "Look up an order by its number"
url = "https://shop.example.com/agent-tools/lookup_order"
secret_env = "SHOP_TOOLS_SECRET"      # a whsec_ Standard Webhooks secret, in the environment
timeout_s = 5
side_effects = false                  # true: exactly once per request (item 5)
[tools.parameters]                    # JSON Schema of the arguments
type = "object"
required = ["order_number"]
[tools.parameters.properties.order_number]
type = "string"
'''
TRANSFER = '''
builtin_tools = ["transfer_call", "end_call"]
'''
DESK = '''
[transfer.destinations]
desk = "+18005550199"
'''


def environment(values: dict[str, str]):
    """A production resolver: what ``values`` holds is set, anything else missing."""
    return lambda var: (values[var], "set") if var in values else ("", "missing")


def sandbox(var: str) -> tuple[str, str]:
    return f"sandbox-{var.lower()}", "placeholder"


def load(top: str = "", tables: str = "", *, env: dict[str, str] | None = None,
         resolve=None) -> tuple[Persona | None, list[str]]:
    """The persona of a file with ``top`` among its top-level keys and ``tables`` after them."""
    data = tomllib.loads(HEAD + top + VENDORS + tables)
    resolve = resolve or environment({"TEST_TTS_KEY": "tts-key", "SHOP_TOOLS_SECRET": SECRET,
                                      **(env or {})})
    persona, problems = parse(data, source="shop.toml", stem="shop", builtin=False,
                              resolve=resolve, sandbox_url="http://sandbox.test:8090")
    return persona, [str(p) for p in problems]


# -- a good file ---------------------------------------------------------------------------------


def test_the_issues_example_loads_into_an_operator_tool():
    persona, problems = load(TRANSFER, DESK + LOOKUP_ORDER)
    assert problems == []
    assert persona.builtin_tools == ("transfer_call", "end_call")
    assert persona.transfer_destinations == {"desk": "+18005550199"}
    assert persona.tool_names == ("transfer_call", "end_call", "lookup_order")
    assert persona.tools == (OperatorTool(
        name="lookup_order", description="Look up an order by its number",
        url="https://shop.example.com/agent-tools/lookup_order", secret_env="SHOP_TOOLS_SECRET",
        secret=SECRET, timeout_s=5.0, side_effects=False,
        parameters={"type": "object", "required": ["order_number"],
                    "properties": {"order_number": {"type": "string"}}}),)


def test_a_persona_without_tools_has_none():
    persona, problems = load()
    assert problems == []
    assert (persona.builtin_tools, persona.transfer_destinations, persona.tools,
            persona.tool_names) == ((), {}, (), ())


def test_defaults_of_a_tool_entry():
    minimal = ('[[tools]]\nname = "ping"\ndescription = "Ping"\n'
               'url = "http://localhost:9000/ping"\nsecret_env = "SHOP_TOOLS_SECRET"\n')
    persona, problems = load(tables=minimal)
    assert problems == []
    (tool,) = persona.tools
    assert (tool.timeout_s, tool.side_effects) == (5.0, False)
    assert tool.parameters == {"type": "object", "properties": {}}


def test_destinations_may_be_sip_uris_and_numbers_are_kept_in_e164():
    persona, problems = load(TRANSFER, '[transfer.destinations]\n'
                                       'desk = "+1 (800) 555-0199"\n'
                                       'pbx = "sip:desk@pbx.example.com:5060"\n')
    assert problems == []
    assert persona.transfer_destinations == {"desk": "+18005550199",
                                             "pbx": "sip:desk@pbx.example.com:5060"}


def test_the_secret_is_redacted_everywhere_and_never_in_a_repr():
    persona, _ = load(TRANSFER, DESK + LOOKUP_ORDER)
    assert SECRET in persona.secret_values()
    assert SECRET not in repr(persona) and SECRET not in repr(persona.tools[0])
    assert [(ref.field, ref.var, ref.status) for ref in persona.env
            if ref.var == "SHOP_TOOLS_SECRET"] == [
        ("tools.lookup_order.secret_env", "SHOP_TOOLS_SECRET", "set")]


# -- every rule, one bad thing at a time ---------------------------------------------------------

ONE_TOOL = '''
[[tools]]
name = "lookup_order"
description = "Look up an order"
url = "https://shop.example.com/lookup"
secret_env = "SHOP_TOOLS_SECRET"
'''


def tool(**changes: str | None) -> str:
    """ONE_TOOL with lines replaced (``url='url_env = "X"'``) or dropped (``url=None``)."""
    lines = []
    for line in ONE_TOOL.strip().splitlines():
        key = line.split(" = ")[0]
        if key in changes:
            if changes[key] is not None:
                lines.append(changes[key])
        else:
            lines.append(line)
    return "\n" + "\n".join(lines) + "\n" + changes.get("extra", "") + "\n"


@pytest.mark.parametrize(("top", "tables", "problem"), [
    # builtin_tools
    ('builtin_tools = "end_call"', "", "builtin_tools: must be a list of tool names"),
    ('builtin_tools = ["end_call", 3]', "", "builtin_tools: must be a list of tool names"),
    ('builtin_tools = ["hang_up"]', "", "builtin_tools: unknown built-in tool 'hang_up'; the "
                                        "built-ins are end_call, transfer_call, flag_urgent, "
                                        "draw_tarot_cards"),
    ('builtin_tools = ["end_call", "end_call"]', "", "builtin_tools: end_call is listed twice"),
    ('builtin_tools = ["transfer_call"]', "", "builtin_tools: transfer_call needs at least one "
                                              "destination under [transfer.destinations]"),
    # [transfer.destinations]
    ("", DESK, "transfer.destinations: destinations are only used by transfer_call"),
    (TRANSFER, '[transfer]\ndestinations = "desk"', "transfer.destinations: must be a table"),
    (TRANSFER, '[transfer]\ntimeout = 3' + DESK, "transfer.timeout: unknown field"),
    (TRANSFER, DESK + 'Desk2 = "+18005550100"', "transfer.destinations.Desk2: a destination "
                                                "name is a lower-case letter"),
    (TRANSFER, DESK + 'home = "08005550100"', "transfer.destinations.home: must be a phone "
                                              "number in E.164"),
    (TRANSFER, DESK + 'home = "+1"', "transfer.destinations.home: a phone number is + and "
                                     "6 to 15 digits"),
    (TRANSFER, DESK + 'home = 18005550100', "transfer.destinations.home: must be a phone "
                                            "number in E.164"),
    (TRANSFER, DESK + 'pbx = "sip:pbx.example.com"', "transfer.destinations.pbx: must be a "
                                                     "phone number in E.164"),
    # [[tools]]
    ("", tool(name=None), "tools[1].name: missing"),
    ("", tool(name='name = "look-up"'), "tools[1].name: a tool name is 1 to 64 letters"),
    ("", tool(name=f'name = "{"x" * 65}"'), "tools[1].name: a tool name is 1 to 64 letters"),
    ("", tool(name='name = "end_call"'), "tools.end_call.name: is the name of a built-in tool"),
    ("", tool() + tool(), "tools.lookup_order.name: another [[tools]] entry has this name"),
    ("", tool(description=None), "tools.lookup_order.description: missing"),
    ("", tool(description='description = "  "'), "tools.lookup_order.description: must be "
                                                 "text, not empty"),
    ("", tool(description=f'description = "{"x" * 1025}"'), "tools.lookup_order.description: "
                                                            "must be at most 1024 characters"),
    ("", tool(url=None), "tools.lookup_order.url: set either url or url_env (exactly one)"),
    ("", tool(extra='url_env = "SHOP_TOOLS_URL"'), "tools.lookup_order.url: set either url or "
                                                   "url_env (exactly one)"),
    ("", tool(url='url = "http://shop.example.com/lookup"'), "tools.lookup_order.url: must be "
                                                             "an https URL"),
    ("", tool(url='url = "ftp://localhost/lookup"'), "tools.lookup_order.url: must be an https"),
    ("", tool(url='url_env = "shop url"'), "tools.lookup_order.url_env: must be the name of an "
                                           "environment variable"),
    ("", tool(secret_env=None), "tools.lookup_order.secret_env: missing"),
    ("", tool(secret_env='secret_env = 5'), "tools.lookup_order.secret_env: must be the name "
                                            "of an environment variable"),
    ("", tool(extra='secret = "whsec_abc"'), "tools.lookup_order.secret: a key must not be "
                                             "written in the file"),
    ("", tool(extra='method = "GET"'), "tools.lookup_order.method: unknown field"),
    ("", tool(extra="timeout_s = 0.5"), "tools.lookup_order.timeout_s: must be a number of "
                                        "seconds from 1 to 30"),
    ("", tool(extra="timeout_s = 31"), "tools.lookup_order.timeout_s: must be a number"),
    ("", tool(extra='timeout_s = "5"'), "tools.lookup_order.timeout_s: must be a number"),
    ("", tool(extra="timeout_s = true"), "tools.lookup_order.timeout_s: must be a number"),
    ("", tool(extra='side_effects = "no"'), "tools.lookup_order.side_effects: must be true or "
                                            "false"),
    ("", tool(extra='parameters = "order_number"'), "tools.lookup_order.parameters: must be a "
                                                   "table"),
    ("", tool(extra='parameters = { type = "array" }'), "tools.lookup_order.parameters.type: "
                                                        'must be "object"'),
    ("", tool(extra='parameters = { properties = {} }'), "tools.lookup_order.parameters.type: "
                                                         'must be "object"'),
    ("", tool(extra='parameters = { type = "object", required = "order_number" }'),
     "tools.lookup_order.parameters: not a valid JSON Schema: 'order_number' is not of type "
     "'array'"),
    ("", '[tools]\nname = "x"', "tools: must be [[tools]] tables"),
])
def test_each_rule_reports_its_file_and_field(top, tables, problem):
    persona, problems = load(top, tables)
    assert persona is None
    assert any(line.startswith(f"shop.toml: {problem}") for line in problems), problems


def test_every_problem_is_listed_at_once():
    _, problems = load('builtin_tools = ["hang_up", "transfer_call"]',
                       tool(url=None, description=None, extra="timeout_s = 99"))
    assert [line.split(": ")[1] for line in problems] == [
        "builtin_tools", "builtin_tools", "tools.lookup_order.description",
        "tools.lookup_order.url", "tools.lookup_order.timeout_s"]


@pytest.mark.parametrize(("url", "ok"), [
    ("https://shop.example.com/agent-tools/x", True),
    ("http://localhost:9000/x", True),
    ("http://127.0.0.1:9000/x", True),
    ("http://[::1]:9000/x", True),
    ("http://LOCALHOST/x", True),
    ("http://127.0.0.2/x", False),
    ("http://shop.example.com/x", False),
    ("http://localhost.example.com/x", False),
    ("https:///x", False),
    ("http://[::1/x", False),
    ("shop.example.com/x", False),
])
def test_https_or_http_to_a_loopback_host(url, ok):
    assert (url_problem(url) is None) is ok


@pytest.mark.parametrize(("value", "ok"), [
    (SECRET, True),
    (SANDBOX_TOOLS_SECRET, True),
    ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", False),   # no prefix
    ("whsec_", False),                             # nothing after it
    ("whsec_not base64!", False),
    ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", False),  # bad padding
])
def test_a_secret_is_whsec_then_base64(value, ok):
    assert (secret_problem(value) is None) is ok


def test_a_secret_set_to_something_else_is_a_problem_that_never_shows_it():
    _, problems = load(tables=tool(), env={"SHOP_TOOLS_SECRET": "hunter2-hunter2"})
    assert problems == ["shop.toml: tools.lookup_order.secret_env: SHOP_TOOLS_SECRET is not a "
                        "Standard Webhooks secret (whsec_ followed by base64)"]


def test_a_url_env_set_to_a_plain_http_url_is_a_problem():
    _, problems = load(tables=tool(url='url_env = "SHOP_TOOLS_URL"'),
                       env={"SHOP_TOOLS_URL": "http://shop.example.com/lookup"})
    assert problems == ["shop.toml: tools.lookup_order.url_env: SHOP_TOOLS_URL must be an https "
                        "URL (http only for localhost, 127.0.0.1 or ::1)"]


def test_an_unset_secret_or_url_is_a_missing_key_not_a_file_problem():
    persona, problems = load(tables=tool(url='url_env = "SHOP_TOOLS_URL"'),
                             resolve=environment({"TEST_TTS_KEY": "k"}))
    assert problems == []
    assert persona.tools[0].secret == "" and persona.tools[0].url == ""
    assert {(ref.field, ref.var) for ref in persona.missing_keys} == {
        ("tools.lookup_order.url_env", "SHOP_TOOLS_URL"),
        ("tools.lookup_order.secret_env", "SHOP_TOOLS_SECRET")}


def test_in_sandbox_mode_unset_tool_variables_point_at_the_sandboxs_demo_shop():
    persona, problems = load(tables=tool(url='url_env = "SHOP_TOOLS_URL"'), resolve=sandbox)
    assert problems == []
    (shop,) = persona.tools
    assert shop.url == "http://sandbox.test:8090/shop/agent-tools/lookup_order"
    assert shop.secret == SANDBOX_TOOLS_SECRET and SANDBOX_TOOLS_SECRET in \
        persona.secret_values()
    assert {ref.status for ref in persona.env if ref.field.startswith("tools.")} == \
        {"placeholder"}


# -- the built-ins -------------------------------------------------------------------------------


def test_the_built_ins_load_with_their_tools_in_sandbox_mode():
    registry = load_registry(Settings.for_tests())
    tools = {persona.name: persona.tool_names for persona in registry}
    assert tools == {"appointments": ("end_call", "opt_out", "find_slots", "book_appointment",
                                      "find_booking", "reschedule_appointment",
                                      "cancel_appointment"),
                     "orders": ("lookup_order",),
                     "support": ("transfer_call", "end_call", "search_knowledge"),
                     "tarot": ("draw_tarot_cards", "end_call"),
                     "triage": ("transfer_call", "flag_urgent")}
    assert registry.get("support").transfer_destinations == {"desk": "+18005550123"}
    assert registry.get("triage").transfer_destinations == {"responder": "+18005550199"}
    (lookup,) = registry.get("orders").tools
    assert lookup.url == "http://127.0.0.1:8090/shop/agent-tools/lookup_order"
    assert (lookup.secret_env, lookup.secret) == ("SHOP_TOOLS_SECRET", SANDBOX_TOOLS_SECRET)
    assert lookup.side_effects is False
    assert lookup.parameters["required"] == ["order_number"]
    assert lookup.parameters["properties"]["order_number"]["type"] == "string"
    assert set(BUILTIN_TOOL_NAMES) == {name for p in registry for name in p.builtin_tools}


def test_the_demo_shop_follows_sandbox_url():
    registry = load_registry(Settings.for_tests(sandbox_url="http://10.0.0.7:9090"))
    assert registry.get("orders").tools[0].url == \
        "http://10.0.0.7:9090/shop/agent-tools/lookup_order"


def test_the_built_in_prompts_say_when_to_use_their_tools():
    registry = load_registry(Settings.for_tests())
    for persona in registry:
        for name in persona.tool_names:
            assert name in persona.prompt, (persona.name, name)
    assert "Read only the cards the tool drew" in registry.get("tarot").prompt


def test_production_needs_the_shop_variables_only_when_orders_is_in_use():
    load_registry(Settings.for_tests(**PRODUCTION))  # support is the default: no shop variables
    with pytest.raises(ConfigError) as info:
        load_registry(Settings.for_tests(**PRODUCTION, default_persona="orders"))
    assert sorted(line for line in info.value.problems if "SHOP" in line) == [
        "personas/orders.toml: tools.lookup_order.secret_env: SHOP_TOOLS_SECRET is required "
        "when AGORA_APP_ID is set (this persona is in use)",
        "personas/orders.toml: tools.lookup_order.url_env: SHOP_TOOLS_URL is required when "
        "AGORA_APP_ID is set (this persona is in use)"]
    settings = Settings.for_tests(**PRODUCTION, default_persona="orders", persona_keys={
        "SHOP_TOOLS_URL": "https://shop.example.com/agent-tools/lookup_order",
        "SHOP_TOOLS_SECRET": SECRET})
    assert SECRET in settings.secret_values()
    assert inspect_personas(settings, strict=True).problems == []


# -- flask personas check -------------------------------------------------------------------------


@pytest.fixture
def cli_app(tmp_path: Path) -> Flask:
    (tmp_path / "personas").mkdir()
    settings = Settings.for_tests(database_url=f"sqlite:///{tmp_path / 'cli.db'}",
                                  log_level="WARNING", personas_dir=str(tmp_path / "personas"))
    app = create_app(settings)
    if "personas" not in app.cli.commands:
        from personas import cli

        cli.init_app(app)
    return app


def test_personas_check_reports_every_tool_and_destination_problem(cli_app, tmp_path):
    path = tmp_path / "personas" / "shop.toml"
    path.write_text(HEAD + 'builtin_tools = ["transfer_call"]\n' + VENDORS
                    + '[transfer.destinations]\nDesk = "+18005550199"\n'
                    + tool(url='url = "http://shop.example.com/lookup"'), "utf-8")
    result = cli_app.test_cli_runner().invoke(args=["personas", "check"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"{path}: transfer.destinations.Desk: a destination name is a lower-case letter, then "
        "up to 31 lower-case letters, digits, '-' or '_'",
        f"{path}: tools.lookup_order.url: must be an https URL (http only for localhost, "
        "127.0.0.1 or ::1)"]


def test_personas_check_passes_the_built_ins_and_names_the_shop_placeholders(cli_app):
    result = cli_app.test_cli_runner().invoke(args=["personas", "check"])
    assert result.exit_code == 0, result.output
    assert "5 personas OK (sandbox mode)" in result.output
    assert "SHOP_TOOLS_SECRET" in result.output and "SHOP_TOOLS_URL" in result.output


def test_personas_show_lists_the_tools_destinations_and_endpoints(cli_app):
    runner = cli_app.test_cli_runner()
    orders = runner.invoke(args=["personas", "show", "orders"])
    assert orders.exit_code == 0, orders.output
    assert "tools" in orders.output and "lookup_order" in orders.output
    assert "http://127.0.0.1:8090/shop/agent-tools/lookup_order (no side effects, 5 s)" in \
        orders.output
    assert "SHOP_TOOLS_SECRET (sandbox placeholder)" in orders.output
    assert SANDBOX_TOOLS_SECRET not in orders.output
    triage = runner.invoke(args=["personas", "show", "triage"])
    assert "transfer_call, flag_urgent" in triage.output
    assert "transfer responder" in triage.output and "+18005550199" in triage.output


def test_the_tools_example_in_the_docs_loads():
    text = (Path(__file__).resolve().parents[2] / "docs" / "personas.md").read_text("utf-8")
    tools = text.split("### Built-in tools", 1)[1]
    builtin, operator = (block.split("```", 1)[0] for block in tools.split("```toml\n")[1:3])
    persona, problems = load(builtin.split("\n\n")[0], "\n" + builtin.split("\n\n", 1)[1]
                             + operator)
    assert problems == []
    assert persona.tool_names == ("transfer_call", "end_call", "lookup_order")
    assert set(persona.transfer_destinations) == {"desk", "pbx"}
