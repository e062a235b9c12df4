"""Safety: a URL's `user:password@` (or an API key in its query) is never shown (defect 13).

`qwenbot doctor` printed QWENBOT_LLM_BASE_URL as configured, credentials and all."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from support.fake_openai import closed_port_url
from support.fake_slack import BOT_TOKEN
from support.slack_bot import Bot

from bot.commands import doctor
from bot.settings import SettingsError, load_settings
from bot.text import redact_url

SECRETS = ("s3cret", "k3y", "pw0rd")


def _with_credentials(url: str) -> str:
    return url.replace("http://", "http://bob:s3cret@", 1) + "?api_key=k3y"


def test_safety_redact_url_keeps_where_and_drops_who() -> None:
    assert redact_url("https://bob:s3cret@llm.internal:8443/v1?api_key=k3y#f") == "https://llm.internal:8443/v1"
    assert redact_url("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
    assert redact_url("http://host:notaport/v1") == "(unparsable URL)"


def test_safety_doctor_never_prints_url_credentials() -> None:
    settings = load_settings(
        None,
        llm_base_url=_with_credentials(closed_port_url()),
        slack_api_url=closed_port_url().replace("http://", "http://ann:pw0rd@") + "/api/",
        slack_bot_token=BOT_TOKEN,
        llm_retries=0,
        llm_total_timeout=5,
    )
    out = io.StringIO()
    checks = [doctor._settings_check(settings), *doctor._llm_checks(settings), doctor._slack_check(settings)]
    for check in checks:
        doctor.print_row(check, out)
    printed = out.getvalue()
    assert "127.0.0.1" in printed and "LLM endpoint" in printed and "cannot reach" in printed
    assert not [s for s in SECRETS if s in printed], printed


def test_safety_a_bad_url_setting_is_reported_without_its_credentials() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(None, llm_base_url="ftp://bob:s3cret@llm.internal/v1")
    assert "QWENBOT_LLM_BASE_URL" in str(caught.value) and "s3cret" not in str(caught.value)


def test_safety_status_report_never_shows_url_credentials(make_bot: Callable[..., Bot], evil_index: Path) -> None:
    bot = make_bot(index_dir=evil_index, llm_base_url=_with_credentials(closed_port_url()))  # a small index: any does
    ok, line = bot.runtime.model_health()
    assert not ok and "127.0.0.1" in line
    assert not [s for s in SECRETS if s in bot.runtime.status_report()], line
