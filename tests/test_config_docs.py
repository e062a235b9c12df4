"""The README's configuration table and .env.example say what the code does: every setting is in both,
with the default the code uses (they once disagreed on an abstain threshold, and on what it was)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^\| (`(?:QWENBOT|SLACK)_[^|]*) \| ([^|]*) \|", re.MULTILINE)
# a default cell that states no value: the code's default is "nothing set"
NO_VALUE = ("unset", "empty", "model-card", "(from")


def env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"QWENBOT_{field.upper()}"


NAMES = {env_name(field): field for field in Settings.model_fields}


def readme_defaults() -> dict[str, str]:
    """Setting name -> its default cell, with rows like "`QWENBOT_LLM_MAX_TOKENS` / `_CONTEXT_WINDOW`"
    (a suffix: the setting of the same family ending so) split into one entry each."""
    table: dict[str, str] = {}
    for names, defaults in ROW.findall((ROOT / "README.md").read_text(encoding="utf-8")):
        parts = [n.strip(" `") for n in names.split(" / ")]
        cells = [d.strip() for d in defaults.split(" / ")] if len(parts) > 1 else [defaults.strip()]
        family = "_".join(parts[0].split("_")[:2]) + "_"
        for i, part in enumerate(parts):
            name = part
            if part.startswith("_"):
                [name] = [n for n in NAMES if n.startswith(family) and n.endswith(part)]
            table[name] = cells[i] if i < len(cells) else cells[-1]
    return table


def example_values() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        match = re.match(r"#?\s*((?:QWENBOT|SLACK)_[A-Z0-9_]+)=(.*)", line)
        if match:
            values.setdefault(match.group(1), re.split(r"\s+#", match.group(2))[0].strip())
    return values


def same(cell: str, default: Any) -> bool:
    """Whether a documented default (`30` s, `true`, `docs_corpus`, unset...) is the code's."""
    text = re.sub(r"\s*\(.*\)$", "", cell.replace("`", "").strip()).removesuffix(" s").strip()
    if default is None or default == "" or default == []:
        return not text or text.startswith(NO_VALUE) or text == "empty = all"
    if isinstance(default, bool):
        return text == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(text) == float(default)
        except ValueError:
            return False
    return text == str(default)


def code_default(field: str) -> Any:
    info = Settings.model_fields[field]
    value = info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


@pytest.mark.parametrize("name", sorted(NAMES))
def test_every_setting_is_documented_with_the_codes_default(name: str) -> None:
    default = code_default(NAMES[name])
    readme = readme_defaults()
    assert name in readme, f"{name} is missing from the README's configuration table"
    assert same(readme[name], default), f"README says {name} defaults to {readme[name]!r}; the code: {default!r}"
    example = example_values()
    assert name in example, f"{name} is missing from .env.example"
    if not name.startswith("SLACK_") and name != "QWENBOT_LLM_BASE_URL":  # placeholders to fill in
        assert same(example[name], default), f".env.example has {name}={example[name]!r}; the code: {default!r}"
