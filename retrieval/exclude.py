"""Files and folders kept out of a root: the QWENBOT_EXCLUDE setting (every root) and a `.qwenbotignore`
file in the root's folder (that root), one glob per line.

Patterns are matched against a path inside the root, with `/` between folders, much as `.gitignore`
reads them:
- a pattern without `/` matches a file or folder name at any depth: `*.draft.md`, `drafts`;
- a pattern with `/` matches from the root's folder: `hr/old-policy.md`, `archive/2019/*` (a leading `/`
  is allowed);
- a trailing `/` matches folders only: `drafts/`; a matched folder excludes everything in it;
- `*` and `?` stay within one name, `**` crosses folders, `[abc]` is a set; `#` starts a comment line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILE = ".qwenbotignore"
SETTING = "QWENBOT_EXCLUDE"
_MAX_IGNORE_BYTES = 64 * 1024  # a list of patterns, not a document


@dataclass(frozen=True)
class Rule:
    pattern: str  # as written
    source: str  # where it is written: SETTING, or the ignore file's path
    regex: re.Pattern[str]
    anchored: bool  # matched against the whole path from the root, not against each name
    folders_only: bool


def _compile(pattern: str, source: str) -> Rule | None:
    text = pattern.strip()
    folders_only = text.endswith("/")
    body = text.strip("/")
    if not body or text.startswith("#"):
        return None
    parts = re.split(r"(\*\*/?|\*|\?|\[[^\]/]*\])", body)
    regex = "".join(_part(p) for p in parts)
    return Rule(text, source, re.compile(regex + r"\Z"), "/" in body or text.startswith("/"), folders_only)


def _part(part: str) -> str:
    if part.startswith("**"):
        return "(?:.*/)?" if part.endswith("/") else ".*"
    if part == "*":
        return "[^/]*"
    if part == "?":
        return "[^/]"
    if part.startswith("[") and part.endswith("]") and len(part) > 2:
        inner = part[1:-1]
        return "[" + ("^" + inner[1:] if inner.startswith("!") else inner) + "]"
    return re.escape(part)


@dataclass(frozen=True)
class Exclusions:
    rules: tuple[Rule, ...] = ()

    @classmethod
    def for_root(cls, folder: Path, configured: tuple[str, ...]) -> Exclusions:
        """The setting's patterns, then those of the root's ignore file (read now: an edit takes effect at
        the next run, no restart needed)."""
        rules = [_compile(p, SETTING) for p in configured]
        ignore = folder / IGNORE_FILE
        try:
            text = ignore.read_bytes()[:_MAX_IGNORE_BYTES].decode("utf-8", errors="replace")
        except OSError:
            text = ""
        rules.extend(_compile(line, str(ignore)) for line in text.splitlines())
        return cls(tuple(r for r in rules if r is not None))

    def match(self, rel: str, is_dir: bool = False) -> Rule | None:
        """The rule that excludes the file (or folder, with `is_dir`) at `rel` inside the root, if any:
        a rule matching it or one of the folders it is in."""
        parts = rel.split("/")
        for rule in self.rules:
            for end in range(1, len(parts) + 1):
                folder = end < len(parts) or is_dir
                if rule.folders_only and not folder:
                    continue
                subject = "/".join(parts[:end]) if rule.anchored else parts[end - 1]
                if rule.regex.match(subject):
                    return rule
        return None

    def describe(self) -> list[str]:
        """One entry per source: `'drafts/', '*.tmp' (QWENBOT_EXCLUDE)`."""
        by_source: dict[str, list[str]] = {}
        for rule in self.rules:
            by_source.setdefault(rule.source, []).append(repr(rule.pattern))
        return [f"{', '.join(patterns)} ({source})" for source, patterns in by_source.items()]
