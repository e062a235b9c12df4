"""The Slack app, the answer pipeline, the LLM client and the CLI."""
