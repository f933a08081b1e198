"""Agent tools: what an agent can do during a call, served to ConvoAI by this service's MCP
endpoint (``POST /mcp``).

``protocol`` speaks MCP's JSON-RPC (framework-free); ``catalog`` lists a persona's tools and
their input schemas; ``service`` runs a tool call exactly once where it has side effects (the
ledger lives in the store); ``builtin`` holds the call-control tools (end, transfer, flag,
tarot) and ``relay`` forwards operator tools to the operator's endpoint, signed; ``views`` is
the HTTP endpoint and its per-call bearer tokens.
"""
