"""The index as an MCP server (issue 25): server.py (the SDK's server: tools, resources, a log line and
metrics per call), tools.py (the tools' work over the index, protocol-free), auth.py (bearer tokens,
scopes, rate limits)."""
