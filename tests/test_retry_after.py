"""retrieval/retry_after.py: the one reading of Retry-After the sources and the model client share."""

from __future__ import annotations

import email.utils
import time

import pytest

from retrieval.retry_after import retry_after_seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7", 7.0), (" 3 ", 3.0), ("1.5", 1.5), ("-4", 0.0), ("", None), (None, None), ("soon", None)],
)
def test_delta_seconds_and_unreadable_values(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value) == seconds


@pytest.mark.parametrize("usegmt", [True, False])  # "GMT" and the "-0000" zone (a naive datetime)
def test_an_http_date_is_the_seconds_until_then(usegmt: bool) -> None:
    value = email.utils.formatdate(time.time() + 120, usegmt=usegmt)
    assert 100 < (retry_after_seconds(value) or 0) <= 120
    assert retry_after_seconds(email.utils.formatdate(time.time() - 60, usegmt=usegmt)) == 0.0
