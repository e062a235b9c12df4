"""The sources' commands (`qwenbot sources`, `qwenbot sync`, doctor's check), the example files, and the
secrets: a source whose token is refused (401 from a local site) or whose host cannot be reached is
reported everywhere by its name and its variable's name, and its secret reaches no log line (DEBUG
included), no command's output, no `/qwenbot` reply and no Slack message."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.docs import one_doc_index
from support.docs_site import DocsSite, docs_site, page
from support.fake_gdrive import FakeDrive
from support.fake_slack import command_form, post_form
from support.processes import wait_until
from support.servers import free_port
from support.slack_bot import GENERAL, Bot

from bot import cli
from bot.slack.policy import load_channel_scopes
from retrieval.embeddings import Embedder
from retrieval.sources.config import load_sources
from retrieval.sources.registry import connector_for

REPO = Path(__file__).resolve().parent.parent
SECRET = "sk-live-4f8a2b9c1d7e6f5a3b2c1d0e9f8a7b6c"  # recognisable anywhere it might leak
ADMIN = "U0ADMIN01"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["--env-file", os.devnull, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def site() -> Iterator[DocsSite]:
    with docs_site() as served:
        served.put("/docs/", page("Index", "<p>The team's pages.</p>", ["parking.html"]))
        served.put("/docs/parking.html", page("Parking", "<p>Bicycles go in the basement of building C.</p>"))
        yield served


def test_the_example_files_load_and_each_connector_takes_its_settings(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text(json.dumps(FakeDrive().service_account_key()))
    names = ["HANDBOOK_GIT_TOKEN", "DOCS_SITE_TOKEN", "CONFLUENCE_TOKEN", "NOTION_TOKEN"]
    env = dict.fromkeys(names, "token") | {"HR_DRIVE_KEY_FILE": str(key)}
    specs = load_sources(REPO / "deploy/sources.example.yml", env)
    assert [s.kind for s in specs] == ["git", "website", "confluence", "notion", "gdrive"]
    for spec in specs:
        connector_for(spec, tmp_path / spec.name)  # checks the settings; makes no request
    scopes_file = REPO / "deploy/channel_scopes.example.yml"
    scopes = load_channel_scopes(scopes_file).with_sources(specs, scopes_file)
    restricted = [s for s in specs if s.kind == "confluence"][0]
    assert restricted.answer_in == ("C0FINANCE1",)
    assert all(f"{restricted.name}/" in flt.exclude_prefixes for c, flt in scopes.channels.items() if c != "C0FINANCE1")
    assert f"{restricted.name}/" in scopes.default.exclude_prefixes


def test_sources_lists_the_docs_folder_first_and_sync_runs_here_without_a_bot(
    no_settings: pytest.MonkeyPatch, tmp_path: Path, embedder: Embedder, site: DocsSite, capsys
) -> None:
    docs, index_dir = one_doc_index(tmp_path, embedder)
    sources = tmp_path / "sources.yml"
    sources.write_text(f"sources:\n  - name: team-site\n    type: website\n    start_url: {site.url('/docs/')}\n")
    for name, value in {"DOCS_DIR": docs, "INDEX_DIR": index_dir, "SOURCES_FILE": sources}.items():
        no_settings.setenv(f"QWENBOT_{name}", str(value))
    code, out, _ = run(capsys, "sources")
    assert code == 0
    header, docs_line, never = out.splitlines()
    assert header.split()[:3] == ["name", "type", "documents"]
    assert docs_line.split()[:3] == ["docs", "folder", "1"]
    assert never.split()[:4] == ["team-site", "website", "0", "never"] and "as soon as the bot runs" in never

    code, out, err = run(capsys, "sync", "team-sit")
    assert code == 2 and "unknown source 'team-sit': the sources are team-site" in err
    code, out, err = run(capsys, "sync")
    assert code == 0, err
    assert "team-site (website): 2 added, 0 changed, 0 deleted, 0 unchanged; 2 documents" in out
    code, out, _ = run(capsys, "sources")
    synced = out.splitlines()[2].split()
    assert synced[:4] == ["team-site", "website", "2", "20" + synced[3][2:]] and synced[-1] == "-"


@pytest.fixture
def failing(
    no_settings: pytest.MonkeyPatch, tmp_path: Path, embedder: Embedder
) -> Iterator[tuple[Path, Path, Path, DocsSite]]:
    """A site refusing the configured token (401) and a Confluence on a port nobody listens on, both
    with SECRET in their token variables: (docs, index, sources file, the site)."""
    docs, index_dir = one_doc_index(tmp_path, embedder)
    with docs_site(token="the-right-token") as guarded:
        guarded.put("/docs/", page("Index", "<p>Behind a login.</p>"))
        sources = tmp_path / "sources.yml"
        sources.write_text(
            "sources:\n"
            f"  - name: intranet\n    type: website\n    start_url: {guarded.url('/docs/')}\n"
            "    token_env: INTRANET_TOKEN\n"
            f"  - name: wiki\n    type: confluence\n    url: http://127.0.0.1:{free_port()}/wiki\n"
            "    spaces: [ENG]\n    token_env: WIKI_TOKEN\n"
        )
        no_settings.setenv("INTRANET_TOKEN", SECRET)
        no_settings.setenv("WIKI_TOKEN", SECRET)
        yield docs, index_dir, sources, guarded


def assert_no_secret(caplog: pytest.LogCaptureFixture, *texts: str) -> None:
    for record in caplog.records:
        assert SECRET not in record.getMessage() and SECRET not in (record.exc_text or ""), record.getMessage()
    for text in texts:
        assert SECRET not in text


@pytest.mark.slow
def test_a_failing_sources_secret_is_nowhere(
    failing: tuple[Path, Path, Path, DocsSite],
    no_settings: pytest.MonkeyPatch,
    make_bot: Callable[..., Bot],
    caplog: pytest.LogCaptureFixture,
    capsys,
) -> None:
    caplog.set_level(logging.DEBUG)
    docs, index_dir, sources, guarded = failing
    for name, value in {"DOCS_DIR": docs, "INDEX_DIR": index_dir, "SOURCES_FILE": sources}.items():
        no_settings.setenv(f"QWENBOT_{name}", str(value))
    code, out, err = run(capsys, "sync")
    assert code == 1
    assert guarded.hits[0].headers["authorization"] == f"Bearer {SECRET}"  # the secret was in play
    assert "error: source 'intranet' (website): " in err and "401" in err, err
    assert "error: source 'wiki' (confluence): " in err, err
    _, listed, _ = run(capsys, "sources")
    [row] = [line for line in listed.splitlines() if line.startswith("intranet")]
    assert "never" in row and "source 'intranet' (website): " in row and "401" in row, row
    _, doctor, _ = run(capsys, "doctor")
    assert "PASS  source intranet" in doctor and "secrets set: INTRANET_TOKEN" in doctor, doctor
    assert_no_secret(caplog, out, err, listed, doctor)

    bot = make_bot(index_dir=index_dir, docs_dir=docs, sources_file=sources, admin_users=[ADMIN])
    recorded = bot.runtime.state.sources.all_status
    wait_until(lambda: [s.source for s in recorded() if s.last_error] == ["intranet", "wiki"], "both failures")
    for text in ("status", "sync", "sync wiki"):
        form = command_form(
            text, user=ADMIN, channel=GENERAL, response_url=bot.slack.response_url(text.replace(" ", "-"))
        )
        assert post_form(bot.url, form).status == 200
    replies = bot.slack.wait_for(lambda s: s.calls_to("response_url")[2:], timeout=120)
    assert replies
    status = bot.slack.calls_to("response_url")[0].args["text"]
    assert "intranet (website): 0 documents, last synced never, next 20" in status, status
    assert "last error: source 'intranet' (website): " in status and "401" in status, status
    bot.wait_idle(60)
    assert_no_secret(caplog, json.dumps([c.args for c in bot.slack.calls]), capsys.readouterr().err)


def test_a_bad_sources_file_is_one_line_and_exit_2(no_settings: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    sources = tmp_path / "sources.yml"
    sources.write_text("sources:\n  - name: wiki\n    type: sharepoint\n")
    no_settings.setenv("QWENBOT_SOURCES_FILE", str(sources))
    for command in ("sources", "sync"):
        code, _, err = run(capsys, command)
        [line] = [e for e in err.splitlines() if e.startswith(f"qwenbot {command}: ")]
        assert code == 2 and "source 'wiki': 'type' is 'sharepoint': use one of confluence" in line, err
