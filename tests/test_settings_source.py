"""Which settings file a command read, and what its relative paths mean: said at the start of each
command, a missing --env-file refused, SLACK_ typos named, values matched without regard to case."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot import cli
from bot.settings import load_settings
from bot.settings_check import unknown_settings


def settings_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("qwenbot: settings")]


def test_a_missing_env_file_is_one_clear_error(
    no_settings: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--env-file", "prod.env", "index", "--list"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"qwenbot index: bad setting: --env-file prod.env: no such file in {Path.cwd()} "
        "(give an existing settings file, or /dev/null for none)"
    ]


def test_each_command_says_which_settings_file_it_read(
    no_settings: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_settings.setenv("QWENBOT_INDEX_DIR", str(tmp_path / "index"))
    cli.main(["ask", "anything"])
    assert settings_lines(capsys.readouterr().err) == [
        f"qwenbot: settings: no .env in {tmp_path}: the environment and the defaults only"
    ]
    (tmp_path / ".env").write_text("QWENBOT_TOP_K=4\n")
    cli.main(["ask", "anything"])
    assert settings_lines(capsys.readouterr().err) == [
        f"qwenbot: settings: {tmp_path / '.env'}, overridden by the environment"
    ]
    no_settings.setenv("QWENBOT_LOG_LEVEL", "warning")  # an INFO line: quiet when the log level says so
    cli.main(["ask", "anything"])
    assert settings_lines(capsys.readouterr().err) == []


def test_relative_paths_in_a_settings_file_are_relative_to_its_folder(
    no_settings: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project = tmp_path / "srv" / "qwenbot"
    project.mkdir(parents=True)
    env_file = project / ".env"
    env_file.write_text("QWENBOT_DOCS_DIR=docs\nQWENBOT_INDEX_DIR=/var/index\nQWENBOT_STATE_DB=data/state.db\n")
    no_settings.setenv("QWENBOT_STATE_DB", "mine.db")  # the environment's own: relative to the current folder
    no_settings.chdir(tmp_path)
    settings = load_settings(env_file)
    assert settings.docs_dir == project / "docs"
    assert settings.index_dir == Path("/var/index")
    assert settings.state_db == Path("mine.db")
    assert settings.embedding_cache_dir is None
    assert load_settings(env_file, docs_dir="here").docs_dir == Path("here")  # given in code: as given


def test_a_missing_docs_folder_leaves_no_index_behind_and_says_where_the_setting_came_from(
    no_settings: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run from another folder: no .env here, so the default docs_corpus is looked for here."""
    assert cli.main(["index", "--no-progress"]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("qwenbot: settings")]
    assert line == (
        f"qwenbot index: bad setting: QWENBOT_DOCS_DIR: no such folder {tmp_path / 'docs_corpus'} (the default, "
        f"relative to the current folder; no .env in {tmp_path}): nothing indexed"
    )
    assert not (tmp_path / ".qwenbot").exists()
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "qwenbot.env").write_text("QWENBOT_DOCS_DIR=handbook\n")
    assert cli.main(["--env-file", "app/qwenbot.env", "index", "--no-progress"]) == 2
    assert (
        f"QWENBOT_DOCS_DIR: no such folder {tmp_path / 'app' / 'handbook'} (set in {tmp_path / 'app' / 'qwenbot.env'}, "
        "relative to its folder): nothing indexed"
    ) in capsys.readouterr().err
    assert not (tmp_path / ".qwenbot").exists() and not (tmp_path / "app" / ".qwenbot").exists()


def test_slack_typos_are_named_in_the_file_and_in_the_environment(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SLACK_BOT_TOKN=xoxb-1\nSLACK_EXTRA=1\n")
    environ = {"SLACK_SIGNING_SECRT": "s", "SLACK_WEBHOOK_URL": "https://hooks.example/x", "SLACK_BOT_TOKEN": "x"}
    assert unknown_settings(env_file, environ) == [
        "SLACK_BOT_TOKN is not a qwenbot setting and is ignored; did you mean SLACK_BOT_TOKEN?",
        "SLACK_EXTRA is not a qwenbot setting and is ignored",  # in qwenbot's own file: named anyway
        "SLACK_SIGNING_SECRT is not a qwenbot setting and is ignored; did you mean SLACK_SIGNING_SECRET?",
    ]  # another tool's SLACK_WEBHOOK_URL in the environment is none of qwenbot's business


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("QWENBOT_LOG_FORMAT", "JSON", "log_format", "json"),
        ("QWENBOT_LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("QWENBOT_LLM_PROVIDER", "LlamaCpp", "llm_provider", "llamacpp"),
        ("QWENBOT_FEEDBACK_STYLE", " Buttons ", "feedback_style", "buttons"),
    ],
)
def test_choices_are_matched_without_regard_to_case(
    no_settings: pytest.MonkeyPatch, variable: str, value: str, field: str, expected: str
) -> None:
    no_settings.setenv(variable, value)
    assert getattr(load_settings(os.devnull), field) == expected


def test_questions_without_a_flag_is_a_usage_error_naming_its_flags(
    no_settings: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--env-file", os.devnull, "questions"]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("qwenbot: settings")]
    assert line.startswith("qwenbot questions: ") and "bad setting" not in line, line
    assert "--unanswered" in line and "--since" in line and "--json" in line
