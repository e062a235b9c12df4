"""Each part's slice of the settings (bot/config.py) carries exactly the values read into `Settings`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import AnswerConfig, GapsConfig, HealthConfig, LLMConfig, SlackConfig, StateConfig
from bot.settings import Settings, load_settings

Slice = LLMConfig | AnswerConfig | SlackConfig | StateConfig | GapsConfig | HealthConfig
SLICES: dict[str, Callable[[Settings], Slice]] = {
    "llm": Settings.llm_config,
    "answer": Settings.answer_config,
    "slack": Settings.slack_config,
    "state": Settings.state_config,
    "gaps": Settings.gaps_config,
    "health": Settings.health_config,
}


@pytest.mark.parametrize("part", SLICES, ids=list(SLICES))
def test_a_slice_holds_the_settings_of_its_names(part: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QWENBOT_ALLOWED_CHANNELS", "C0123ABCD,C0456EFGH")
    monkeypatch.setenv("QWENBOT_LLM_MODEL", "Qwen/Qwen3-32B")
    monkeypatch.setenv("QWENBOT_TOP_K", "9")
    settings = load_settings(None)
    config = SLICES[part](settings)
    for field in dataclasses.fields(config):
        value = getattr(settings, field.name)
        assert getattr(config, field.name) == (tuple(value) if isinstance(value, list) else value), field.name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, dataclasses.fields(config)[0].name, None)


def test_the_slices_carry_the_values_read() -> None:
    settings = load_settings(None, allowed_channels="C0123ABCD", llm_model="Qwen/Qwen3-32B", top_k=9)
    assert settings.slack_config().allowed_channels == ("C0123ABCD",)  # a tuple: the slice is frozen
    assert settings.llm_config().llm_model == "Qwen/Qwen3-32B"
    assert settings.answer_config().top_k == 9


def test_the_indexing_slice_carries_the_docs_folder_the_index_and_what_the_bot_shares(tmp_path: Path) -> None:
    settings = load_settings(None, docs_dir=tmp_path, index_dir=tmp_path / "index", drain_seconds=7)
    config = settings.indexing_config()
    assert (config.docs_dir, config.index, config.drain_seconds) == (tmp_path, settings.index_config(), 7)
    assert dict(config.shared_with_bot) == settings.shared_with_bot()


def test_the_user_hash_key_is_the_salt_else_the_bot_token() -> None:
    token = load_settings(None, slack_bot_token="xoxb-1").log_config().user_hash_key
    salt = load_settings(None, slack_bot_token="xoxb-1", log_user_salt="s").log_config().user_hash_key
    assert isinstance(token, SecretStr) and token.get_secret_value() == "xoxb-1"
    assert isinstance(salt, SecretStr) and salt.get_secret_value() == "s"
    assert load_settings(None).log_config().user_hash_key is None
