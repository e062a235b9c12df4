"""The Slack Web API client every part of the bot uses (the bot itself and `qwenbot doctor`)."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.settings import Settings


def make_client(settings: Settings, timeout: int = 15) -> WebClient:
    """The Web API client: base URL from settings (GovSlack, proxies, the tests' fake) and 429s retried
    after Retry-After (slack_sdk does not do that by default)."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    base_url = settings.slack_api_url.rstrip("/") + "/"  # slack_sdk appends the method name as is
    client = WebClient(token=token, base_url=base_url, timeout=timeout)
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
    return client
