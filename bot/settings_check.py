"""What the command line checks about settings before it reads them: which file to read, the line
naming it, and variables that look like settings but are none (typos)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path

from bot.settings import Settings, SettingsError, file_values


def env_names() -> dict[str, str]:
    """Every setting's environment variable name -> field name."""
    names = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        names[alias if isinstance(alias, str) else f"QWENBOT_{field.upper()}"] = field
    return names


def unknown_settings(env_file: str | Path | None, environ: Mapping[str, str]) -> list[str]:
    """A warning line for each QWENBOT_ or SLACK_ variable that is no setting, naming the closest real
    one: a typo would otherwise be ignored silently. A SLACK_ name in the environment may be another
    tool's (SLACK_WEBHOOK_URL): it is named only when it is a near miss of one of ours."""
    in_file = {name for name in file_values(env_file) if name.startswith(("QWENBOT_", "SLACK_"))}
    known = env_names()
    warnings = []
    for name in sorted(({n for n in environ if n.startswith(("QWENBOT_", "SLACK_"))} | in_file) - set(known)):
        theirs = name.startswith("SLACK_") and name not in in_file
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.85 if theirs else 0.6)
        if theirs and not close:
            continue
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.append(f"{name} is not a qwenbot setting and is ignored{hint}")
    return warnings


def find_env_file(given: str | None) -> Path | None:
    """The settings file to read: `given` (--env-file), which must exist, or ./.env when there is one."""
    if given is None:
        return Path(".env") if Path(".env").is_file() else None
    path = Path(given)
    if not path.exists() or path.is_dir():
        where = "" if path.is_absolute() else f" in {Path.cwd()}"
        problem = "is a folder" if path.is_dir() else f"no such file{where}"
        raise SettingsError(f"--env-file {given}: {problem} (give an existing settings file, or /dev/null for none)")
    return path


def source_line(settings: Settings) -> str:
    """Which settings file was read, for the line each command starts with."""
    if settings.settings_file is None:
        return f"settings: no .env in {Path.cwd()}: the environment and the defaults only"
    return f"settings: {settings.settings_file.absolute()}, overridden by the environment"
