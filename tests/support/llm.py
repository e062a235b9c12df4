"""An LLM client on a scripted server's URL, with the tests' short timeouts."""

from __future__ import annotations

from bot.llm.client import LLMClient
from bot.settings import load_settings

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]


def make_client(url: str, **overrides: object) -> LLMClient:
    values: dict[str, object] = {
        "llm_base_url": url,
        "llm_retries": 2,
        "llm_total_timeout": 10.0,
        "llm_read_timeout": 5.0,
        "llm_connect_timeout": 2.0,
    }
    values.update(overrides)
    return LLMClient(load_settings(None, **values).llm_config())
