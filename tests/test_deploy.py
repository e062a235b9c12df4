"""What deploy/ hands an admin: the compose file and the Slack app manifest, read as Docker Compose and
Slack read them (YAML), since neither Docker nor Slack runs here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yml").read_text(encoding="utf-8"))["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    return env if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def test_compose_keeps_the_env_file_settings_and_mounts_the_docs_through_a_variable() -> None:
    services = compose()
    assert services["bot"]["env_file"] == "../.env"
    for name, service in services.items():
        assert not any(key.startswith("QWENBOT_REINDEX") for key in environment(service)), name
        docs = [v for v in service.get("volumes", []) if v.split(":")[1] == "/docs"]
        assert all(v.startswith("${DOCS_DIR:-") for v in docs), (name, docs)


def test_compose_brings_up_replicas_on_shared_state_and_the_model_by_profile() -> None:
    services = compose()
    for bot in ("bot-http", "bot-socket"):
        assert services[bot]["deploy"]["replicas"] == 3
        env = environment(services[bot])
        assert env["QWENBOT_STATE_URL"].startswith("postgresql://") and env["QWENBOT_CHROMA_HOST"] == "chroma"
    assert "replicas" in services["proxy"]["profiles"] and "replicas" in services["postgres"]["profiles"]
    assert services["vllm"]["profiles"] == ["vllm"] and services["ollama"]["profiles"] == ["ollama"]
    gpu = services["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]


def test_the_manifest_asks_for_what_the_bot_uses() -> None:
    manifest = yaml.safe_load((DEPLOY / "manifest.yml").read_text(encoding="utf-8"))
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"app_mention", "message.im", "assistant_thread_started", "assistant_thread_context_changed"} <= events
    assert "reaction_added" in events  # ✅ marks a thread resolved (resolved_threads in the scopes file)
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"assistant:write", "chat:write", "commands", "reactions:read"} <= scopes
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/qwenbot" and "reindex" in command["usage_hint"]
    assert "assistant_view" in manifest["features"]
