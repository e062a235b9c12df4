"""What the test modules share: the fakes (Slack, an OpenAI-compatible model), the real servers some
tests start (PostgreSQL, Chroma, llama.cpp), bot builders and helpers, each in a module named for what
it holds. Shared fixtures are in tests/support/fixtures.py (registered by tests/conftest.py); a test
module imports from here, never from another test module."""
