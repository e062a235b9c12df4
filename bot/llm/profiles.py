"""Per-server wire rules: what a chat request may carry for each OpenAI-compatible provider.

Servers differ in how Qwen3's thinking is switched and in which non-OpenAI sampling fields they take;
some reject fields they do not know, so a request carries only what its profile lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bot.errors import ConfigError

ThinkingSwitch = Literal["chat_template_kwargs", "enable_thinking", "reasoning_effort", "none"]


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    top_k: int
    min_p: float = 0.0


# Qwen3 model cards: non-thinking 0.7 / 0.8 / 20, thinking 0.6 / 0.95 / 20, min_p 0 for both.
QWEN_SAMPLING = {False: Sampling(0.7, 0.8, 20), True: Sampling(0.6, 0.95, 20)}


@dataclass(frozen=True)
class Profile:
    name: str
    thinking_switch: ThinkingSwitch
    extra_sampling: tuple[str, ...]  # non-OpenAI sampling fields the server takes (sent in extra_body)
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    stream_usage: bool = True  # the server honours stream_options.include_usage

    def thinking_fields(self, thinking: bool) -> dict[str, Any]:
        """The extra_body fields that switch thinking on or off (empty where the server has no switch)."""
        if self.thinking_switch == "chat_template_kwargs":
            return {"chat_template_kwargs": {"enable_thinking": thinking}}
        if self.thinking_switch == "enable_thinking":
            return {"enable_thinking": thinking}
        if self.thinking_switch == "reasoning_effort":
            # Ollama thinks by default for Qwen3; "none" is its documented off switch.
            return {} if thinking else {"reasoning_effort": "none"}
        return {}


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("vllm", "chat_template_kwargs", ("top_k", "min_p")),
        Profile("sglang", "chat_template_kwargs", ("top_k", "min_p")),
        Profile("llamacpp", "chat_template_kwargs", ("top_k", "min_p")),
        Profile("ollama", "reasoning_effort", ()),
        Profile("dashscope", "enable_thinking", ("top_k",)),
        Profile("openai", "none", (), max_tokens_field="max_completion_tokens"),
    )
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"QWENBOT_LLM_PROVIDER: unknown LLM provider {name!r}; expected one of {', '.join(PROFILES)}"
        ) from None
