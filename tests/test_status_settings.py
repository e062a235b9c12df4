"""`/qwenbot status` says when the settings file changed under a running bot (issue 21, item 3): a
bot reads its settings once, so an edited .env needs a restart, and the status must not stay healthy."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fake_slack import BOT_TOKEN, FakeSlack

from bot.runtime import BotRuntime
from bot.settings import load_settings


def test_status_names_the_settings_changed_since_the_bot_started(
    corpus_index: Path, tmp_path: Path, no_settings: pytest.MonkeyPatch
) -> None:
    old_docs, new_docs = tmp_path / "docs", tmp_path / "moved-docs"
    old_docs.mkdir()
    new_docs.mkdir()
    env = tmp_path / ".env"
    env.write_text(f"QWENBOT_DOCS_DIR={old_docs}\nQWENBOT_LLM_MODEL=qwen3\n", encoding="utf-8")
    with FakeSlack() as slack:
        settings = load_settings(
            env,
            slack_api_url=slack.api_url,
            slack_bot_token=BOT_TOKEN,
            index_dir=corpus_index,
            state_db=tmp_path / "state.sqlite3",
            index_on_start=False,
        )
        runtime = BotRuntime(settings)
        try:
            assert "restart" not in runtime.status_report()
            # the admin moves the docs folder and edits .env; the bot still runs with the old one
            env.write_text(f"QWENBOT_DOCS_DIR={new_docs}\nQWENBOT_LLM_MODEL=qwen3\n", encoding="utf-8")
            report = runtime.status_report()
            assert ":x: degraded" in report.splitlines()[0]
            assert "Settings changed since this bot started (QWENBOT_DOCS_DIR): restart the bot" in report
        finally:
            runtime.close()


def test_settings_given_in_code_are_not_changes(tmp_path: Path, no_settings: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("QWENBOT_CHUNK_TOKENS=200\n", encoding="utf-8")
    settings = load_settings(env, docs_dir=tmp_path)  # overridden in code: not what the file says
    assert settings.changed_since_read() == []
    env.write_text("QWENBOT_CHUNK_TOKENS=300\n", encoding="utf-8")
    assert settings.changed_since_read() == ["QWENBOT_CHUNK_TOKENS"]
