"""The Slack Web API client every part of the bot uses (the bot itself and `qwenbot doctor`)."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.config import SlackConfig

# The retry budget of one call: a 429 waits its Retry-After; a 5xx or a dropped connection waits
# 0.5-1.5 s, then 1-2 s, then 2-3 s (slack_sdk's backoff with jitter), so at most about 6.5 s in all.
# Retries of all kinds count together.
RETRIES = 3


class _AnyServerErrorRetryHandler(ServerErrorRetryHandler):
    """slack_sdk's handler retries 500 and 503 only; Slack's edge also answers 502 and 504."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and 500 <= response.status_code < 600


def retry_handlers() -> list[RetryHandler]:
    return [
        ConnectionErrorRetryHandler(max_retry_count=RETRIES),
        RateLimitErrorRetryHandler(max_retry_count=RETRIES),
        _AnyServerErrorRetryHandler(max_retry_count=RETRIES),
    ]


def make_client(config: SlackConfig, timeout: int = 15) -> WebClient:
    """The Web API client: base URL from the settings (GovSlack, proxies, the tests' fake); 5xx answers and
    dropped connections retried with backoff, 429s after Retry-After (slack_sdk does neither by default,
    and a Slack error at the end of an answer would cost the asker its sources). A timeout is not
    retried: Slack may have done what it was asked."""
    token = config.slack_bot_token.get_secret_value() if config.slack_bot_token else None
    base_url = config.slack_api_url.rstrip("/") + "/"  # slack_sdk appends the method name as is
    return WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=retry_handlers())
