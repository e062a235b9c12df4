"""The sources file (retrieval/sources/config.py): what it declares, and one line per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.errors import SourceConfigError
from retrieval.sources.config import load_sources

GOOD = """
sources:
  - name: handbook
    type: git
    interval_minutes: 15
    answer_in: [C0ENGINEER, default]
    url: https://git.example.com/eng/handbook.git
    branch: main
    token_env: HANDBOOK_GIT_TOKEN
  - name: docs-site
    type: website
    start_url: https://docs.example.com/
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yml"
    path.write_text(text)
    return path


def test_a_sources_file_gives_one_spec_per_source(tmp_path: Path) -> None:
    handbook, site = load_sources(write(tmp_path, GOOD), {"HANDBOOK_GIT_TOKEN": "s3cret"})
    assert (handbook.name, handbook.kind, handbook.interval_minutes) == ("handbook", "git", 15.0)
    assert handbook.answer_in == ("C0ENGINEER", "default")
    assert dict(handbook.settings) == {
        "url": "https://git.example.com/eng/handbook.git",
        "branch": "main",
        "token_env": "HANDBOOK_GIT_TOKEN",
    }
    assert handbook.secret("token_env") == "s3cret"
    assert (site.interval_minutes, site.answer_in) == (60.0, None)


def test_no_file_or_an_empty_one_is_no_sources(tmp_path: Path) -> None:
    assert load_sources(None, {}) == []
    assert load_sources(write(tmp_path, "# nothing yet\n"), {}) == []
    assert load_sources(write(tmp_path, "sources: []\n"), {}) == []


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("- type: git\n", "source #1: 'name' is missing: use 1 to 64 letters"),
        ("- name: ../up\n  type: git\n", "source #1: 'name' is '../up'"),
        (
            "- name: a\n  type: svn\n",
            "source 'a': 'type' is 'svn': use one of confluence, gdrive, git",
        ),
        ("- name: a\n  type: git\n  interval_minutes: 0\n", "source 'a' (git): 'interval_minutes' must be a number"),
        ("- name: a\n  type: git\n  answer_in: []\n", "source 'a' (git): 'answer_in' must list channel ids"),
        (
            "- name: a\n  type: git\n  token: ghp_abcdef123\n",
            "source 'a' (git): 'token' would put a secret",
        ),
        (
            "- name: a\n  type: git\n  token_env: [X]\n",
            "source 'a' (git): 'token_env' must name",
        ),
        ("- just text\n", "source #1: expected 'name: ...'"),
        ("- name: learned\n  type: git\n", "source #1: 'name' 'learned' is the bot's own"),
    ],
)
def test_each_mistake_is_one_line_naming_the_file_the_source_and_the_key(
    tmp_path: Path, entry: str, message: str
) -> None:
    path = write(tmp_path, "sources:\n" + "".join("  " + line + "\n" for line in entry.splitlines()))
    with pytest.raises(SourceConfigError) as err:
        load_sources(path, {})
    assert str(err.value).startswith(f"{path}: {message}")
    assert "\n" not in str(err.value) and "ghp_abcdef123" not in str(err.value)


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    text = "sources:\n  - {name: a, type: git}\n  - {name: a, type: git}\n  - {name: b, type: ftp}\n"
    with pytest.raises(SourceConfigError) as err:
        load_sources(write(tmp_path, text), {})
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and "'a': the name is used twice" in lines[0] and "'b': 'type' is 'ftp'" in lines[1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: [\n", "bad YAML in"),
        ("a: &x [1]\nb: *x\n", "aliases (*name) are not allowed"),
        ("source:\n  - name: a\n", "expected one top-level key, 'sources'"),
        ("sources: {name: a}\n", "'sources' must be a list"),
        ("x" * (1024 * 1024 + 1), "larger than 1024 KB"),
    ],
)
def test_a_file_that_is_not_a_sources_list_says_so(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SourceConfigError, match=r"^" + str(path).replace(".", r"\.")) as err:
        load_sources(path, {})
    assert message in str(err.value)


def test_a_missing_file_says_which(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match="nope.yml: cannot read the sources file"):
        load_sources(tmp_path / "nope.yml", {})
