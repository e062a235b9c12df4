"""Settings: bad values named in one line, secrets never echoed, typos pointed out, docs in step."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot import cli
from bot.settings import SettingsError, load_settings
from bot.settings_check import unknown_settings

NO_ENV = os.devnull  # no settings file


@pytest.mark.parametrize("url", ["localhost:8000/v1", "gpu-box:8000", "ftp://x/v1"])
def test_an_llm_url_without_http_scheme_is_rejected_at_settings_time(url: str) -> None:
    with pytest.raises(SettingsError, match="QWENBOT_LLM_BASE_URL: must start with http:// or https://"):
        load_settings(NO_ENV, llm_base_url=url)


def test_a_channel_name_instead_of_an_id_is_rejected() -> None:
    with pytest.raises(SettingsError, match=r"QWENBOT_ALLOWED_CHANNELS: '#warehouse' is not a channel id"):
        load_settings(NO_ENV, allowed_channels="#warehouse")
    assert load_settings(NO_ENV, allowed_channels="C0123ABCD, G0ABCDEF1").allowed_channels == ["C0123ABCD", "G0ABCDEF1"]


@pytest.mark.parametrize(
    "name", ["EMBEDDING_BATCH_SIZE", "LLM_TEMPERATURE", "LLM_TOP_P", "LLM_TOP_K", "ABSTAIN_RERANK_MIN_LOCAL"]
)
def test_an_empty_number_means_its_default(name: str, tmp_path: Path) -> None:
    """.env.example shows these as `QWENBOT_LLM_TOP_K=  # empty: ...`: uncommented, that is the default."""
    env = tmp_path / ".env"
    env.write_text(f"QWENBOT_{name}=\n", encoding="utf-8")
    assert getattr(load_settings(str(env)), name.lower()) is None


def test_only_real_secrets_are_masked_in_errors() -> None:
    with pytest.raises(SettingsError) as plain:
        load_settings(NO_ENV, chunk_tokens="lots")
    assert "QWENBOT_CHUNK_TOKENS" in str(plain.value) and "'lots'" in str(plain.value)
    with pytest.raises(SettingsError) as secret:
        load_settings(NO_ENV, slack_bot_token=12345)
    assert "SLACK_BOT_TOKEN" in str(secret.value) and "12345" not in str(secret.value)


def test_an_unknown_setting_is_named_with_the_closest_real_one(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("QWENBOT_LLM_BASEURL=http://x/v1\n")
    warnings = unknown_settings(env_file, {"QWENBOT_CHUNK_TOKEN": "3", "QWENBOT_TOP_K": "5", "HOME": "/root"})
    assert warnings == [
        "QWENBOT_CHUNK_TOKEN is not a qwenbot setting and is ignored; did you mean QWENBOT_CHUNK_TOKENS?",
        "QWENBOT_LLM_BASEURL is not a qwenbot setting and is ignored; did you mean QWENBOT_LLM_BASE_URL?",
    ]


def test_cli_warns_about_a_typo_and_reports_version(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QWENBOT_LLM_BASE_URL", "localhost:8000")
    monkeypatch.setenv("QWENBOT_ABSTAIN_TRESHOLD", "0.5")
    assert cli.main(["--env-file", NO_ENV, "ask", "anything"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("qwenbot: warning: QWENBOT_ABSTAIN_TRESHOLD is not a qwenbot setting")
    assert err[1] == (
        "qwenbot ask: bad setting: QWENBOT_LLM_BASE_URL: must start with http:// or https:// (got 'localhost:8000')"
    )
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("qwenbot 0.")
