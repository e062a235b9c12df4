"""The OpenAI-compatible Qwen client and the per-provider wire profiles."""

from bot.llm.client import (
    Finished,
    LLMClient,
    LLMError,
    LLMEvent,
    ReasoningDelta,
    TextDelta,
    UsageReport,
    build_client,
)
from bot.llm.profiles import PROFILES, Profile, get_profile

__all__ = [
    "PROFILES",
    "Finished",
    "LLMClient",
    "LLMError",
    "LLMEvent",
    "Profile",
    "ReasoningDelta",
    "TextDelta",
    "UsageReport",
    "build_client",
    "get_profile",
]
