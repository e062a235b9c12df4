"""The Notion connector against a fake Notion API over real HTTP, through the notion-client SDK."""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.fake_notion import TOKEN, FakeNotion, block, bullet, heading, paragraph, text
from support.servers import free_port
from support.wiki_sync import Indexed, Remembered

from retrieval.embeddings import Embedder
from retrieval.errors import (
    SourceAuthError,
    SourceConfigError,
    SourceNotFoundError,
    SourceRateLimitedError,
    SourceUnreachableError,
)
from retrieval.sources.notion import NotionConnector, notion_id
from retrieval.sources.registry import connector_for
from retrieval.sources.spec import SourceSpec


def spec(notion: FakeNotion, **settings: object) -> SourceSpec:
    return SourceSpec(
        "kb", "notion", {"token_env": "KB_TOKEN", "api_url": notion.url, **settings}, env={"KB_TOKEN": TOKEN}
    )


def unpaced(notion: FakeNotion, **settings: object) -> NotionConnector:
    """The connector without its 0.35 s between requests (the pacing test keeps it)."""
    return NotionConnector(spec(notion, **settings), pace=0.0)


@pytest.fixture
def notion():
    with FakeNotion() as server:
        yield server


def workspace(notion: FakeNotion) -> dict[str, str]:
    ids = {"handbook": notion.add_page("Handbook", [heading(1, "Welcome"), paragraph("Start here.")])}
    blocks = [
        heading(2, "Steps"),
        bullet("Build", [bullet("with make")]),
        block("numbered_list_item", rich_text=text("Ship")),
        block("to_do", rich_text=text("Tell the team"), checked=True),
        block("code", rich_text=text("make deploy\nmake verify"), language="shell"),
        block("quote", rich_text=text("Measure twice.")),
        block("callout", rich_text=text("Deploys freeze on Fridays."), icon={"emoji": "⚠️"}),
        block("toggle", [paragraph("Roll back with make rollback.")], rich_text=text("If it fails")),
        block(
            "table",
            [
                block("table_row", cells=[text("env"), text("url")]),
                block("table_row", cells=[text("prod"), text("p.io")]),
            ],
            table_width=2,
            has_column_header=True,
            has_row_header=False,
        ),
        block("paragraph", rich_text=text("Ask in ") + text("#deploys", bold=True)),
    ]
    ids["deploy"] = notion.add_page("Deploy", blocks, parent=ids["handbook"])
    ids["db"] = notion.add_database("Runbooks", ids["handbook"])
    row = {
        "Tags": {"id": "t", "type": "multi_select", "multi_select": [{"name": "ops"}, {"name": "db"}]},
        "Status": {"id": "s", "type": "status", "status": {"name": "Current"}},
        "Team": {"id": "o", "type": "rich_text", "rich_text": text("SRE")},
    }
    ids["row"] = notion.add_page("Restore a backup", [paragraph("Use pg_restore.")], parent=ids["db"], properties=row)
    return ids


def test_first_sync_renders_blocks_rows_and_hierarchy(notion: FakeNotion) -> None:
    ids = workspace(notion)
    state = Remembered(unpaced(notion))
    changes = state.sync()
    assert {d.title for d in changes.upserts} == {"Handbook", "Deploy", "Restore a backup"}
    deploy = state.by_title("Deploy").content.decode()
    expected = """# Handbook

### Steps

- Build
  - with make
1. Ship
- [x] Tell the team

```shell
make deploy
make verify
```

> Measure twice.

> Deploys freeze on Fridays.

- If it fails
  Roll back with make rollback.

| env | url |
| --- | --- |
| prod | p.io |

Ask in **#deploys**
"""
    assert deploy == expected
    handbook = state.by_title("Handbook")
    assert f"[Deploy](https://www.notion.so/Deploy-{ids['deploy'].replace('-', '')})" in handbook.content.decode()
    assert handbook.url == f"https://www.notion.so/Handbook-{ids['handbook'].replace('-', '')}"
    assert handbook.path == f"handbook-{ids['handbook'].replace('-', '')}.md"
    assert handbook.updated == "2026-01-05T10:00:00.000Z" and handbook.version.startswith(handbook.updated)
    row = state.by_title("Restore a backup")
    assert row.tags == ("ops", "db", "Current")
    assert row.content.decode() == "# Handbook / Runbooks\n\n- **Team**: SRE\n\nUse pg_restore.\n"
    assert changes.listed_all and changes.requests == len(notion.requests)


def test_unchanged_resync_of_1000_pages_costs_under_2_percent_of_the_first(notion: FakeNotion) -> None:
    root = notion.add_page("Root", [paragraph(f"line {i}") for i in range(250)])  # children paged by 100
    for i in range(999):
        notion.add_page(f"Page {i}", [paragraph(f"Body of page {i}.")], parent=root if i % 2 else None)
    state = Remembered(unpaced(notion))
    first = state.sync()
    assert state.by_title("Root").content.decode().count("line ") == 250
    again = state.sync()
    assert len(first.upserts) == 1000 and again.upserts == [] and len(again.unchanged) == 1000
    # 10 page searches + 1 data source search; the first sync also read 1,000 pages' blocks, Root's 749
    # (250 paragraphs, 499 subpages) in 8 requests of 100
    assert (first.requests, again.requests) == (11 + 999 + 8, 11)
    assert again.requests <= 0.02 * first.requests
    assert len(notion.requests) == first.requests + again.requests


def test_changed_moved_and_trashed_pages(notion: FakeNotion) -> None:
    ids = workspace(notion)
    other = notion.add_page("Operations", [paragraph("Ops home.")])
    state = Remembered(unpaced(notion))
    state.sync()
    notion.edit(ids["handbook"], blocks=[paragraph("Start here, then read Deploy.")])
    notion.move(ids["deploy"], other)
    notion.edit(ids["row"], in_trash=True)
    changes = state.sync()
    # the handbook changed, Deploy moved (new ancestors), Operations lists Deploy as a subpage now
    # (its own time is unchanged: only the moved page's marker says so), and the row went to the trash
    assert {d.title for d in changes.upserts} == {"Handbook", "Deploy"}
    assert "then read Deploy" in state.by_title("Handbook").content.decode()
    assert state.by_title("Deploy").content.decode().startswith("# Operations\n\n### Steps")
    assert ids["row"] not in state.known


def test_unshared_page_is_deleted_and_a_page_search_has_not_caught_up_with_is_kept(notion: FakeNotion) -> None:
    ids = workspace(notion)
    state = Remembered(unpaced(notion))
    state.sync()
    notion.pages[ids["deploy"]].shared = False
    notion.pages[ids["row"]].indexed = False
    before = len(notion.requests)
    changes = state.sync()
    assert ids["deploy"] not in state.known and ids["row"] in changes.unchanged and ids["row"] in state.known
    assert notion.requests[before : before + 2] == ["POST /v1/search", "POST /v1/search"]
    assert sorted(notion.requests[before + 2 :]) == sorted(f"GET /v1/pages/{ids[k]}" for k in ("deploy", "row"))


def test_a_page_deleted_while_the_sync_runs_is_skipped_not_an_error(notion: FakeNotion) -> None:
    ids = workspace(notion)
    notion.after_search = lambda: notion.pages[ids["deploy"]].__setattr__("shared", False)
    state = Remembered(unpaced(notion))
    changes = state.sync()
    assert {d.title for d in changes.upserts} == {"Handbook", "Restore a backup"}
    assert changes.notes == [f"page {ids['deploy']} vanished during the sync"]


def test_many_pages_missing_at_once_are_deleted_without_a_request_each(notion: FakeNotion) -> None:
    root = notion.add_page("Team space", [paragraph("Home.")])
    pages = [notion.add_page(f"Note {i}", [paragraph(f"Note {i}.")], parent=root) for i in range(60)]
    state = Remembered(unpaced(notion))
    state.sync()
    for page in [root, *pages]:
        notion.pages[page].shared = False  # the root was unshared: its subpages go with it
    before = len(notion.requests)
    state.sync()
    assert state.known == {} and notion.requests[before:] == ["POST /v1/search", "POST /v1/search"]


def test_requests_keep_notions_pace_by_default(notion: FakeNotion) -> None:
    workspace(notion)
    connector_for(spec(notion), Path("unused")).changes(None, {})
    gaps = [b - a for a, b in itertools.pairwise(notion.arrivals)]
    assert len(gaps) == 7 and min(gaps) >= 0.3  # three requests a second at most


def test_an_edit_in_the_minute_of_the_last_sync_is_not_missed(notion: FakeNotion) -> None:
    page = notion.add_page("Status", [paragraph("All good.")])
    minute = datetime.now(UTC).replace(second=0, microsecond=0).isoformat().replace("+00:00", ".000Z")
    notion.pages[page].edited = minute
    state = Remembered(unpaced(notion))
    state.sync()
    notion.pages[page].blocks = [paragraph("Degraded.")]  # same minute: the same last_edited_time
    assert [d.content for d in state.sync().upserts] == [b"Degraded.\n"]


def test_roots_limit_the_sync_to_their_pages_and_rows(notion: FakeNotion) -> None:
    ids = workspace(notion)
    notion.add_page("Elsewhere", [paragraph("Not under the handbook.")])
    nested = notion.add_page("Deeper", [paragraph("Under Deploy.")], parent=ids["deploy"])
    handbook_url = f"https://www.notion.so/Handbook-{ids['handbook'].replace('-', '')}"
    state = Remembered(unpaced(notion, pages=[handbook_url]))
    assert {d.title for d in state.sync().upserts} == {"Handbook", "Deploy", "Restore a backup", "Deeper"}
    assert state.by_title("Deeper").content.decode().startswith("# Handbook / Deploy\n")
    state = Remembered(unpaced(notion, databases=[ids["db"]]))
    assert [d.title for d in state.sync().upserts] == ["Restore a backup"]
    assert nested


def test_missing_root_names_it(notion: FakeNotion) -> None:
    missing = "0123456789abcdef0123456789abcdef"
    with pytest.raises(SourceNotFoundError) as err:
        connector_for(spec(notion, pages=[missing]), Path("unused")).changes(None, {})
    assert str(err.value).startswith(f"source 'kb' (notion): root page {notion_id(missing)} does not exist or is not")


def test_429_waits_as_asked_then_gives_up_beyond_the_budget(notion: FakeNotion) -> None:
    workspace(notion)
    waits: list[float] = []
    notion.throttle(2, retry_after="2")
    changes = Remembered(NotionConnector(spec(notion), sleep=waits.append, pace=0.0)).sync()
    assert waits == [2.0, 2.0] and len(changes.upserts) == 3
    # the refused two count; then 2 searches and 6 block listings (Deploy's list, toggle and table nest)
    assert changes.requests == len(notion.requests) == 2 + 8
    notion.throttle(100, retry_after="40")
    with pytest.raises(SourceRateLimitedError) as err:
        NotionConnector(spec(notion), sleep=waits.append, pace=0.0).changes(None, {})
    assert err.value.retry_after == 40.0 and waits[2:] == [40.0]
    assert str(err.value).startswith("source 'kb' (notion): rate limited (429)")


def test_revoked_token_is_one_line_naming_the_variable_never_the_token(notion: FakeNotion) -> None:
    workspace(notion)
    notion.expire()
    with pytest.raises(SourceAuthError) as err:
        connector_for(spec(notion), Path("unused")).changes(None, {})
    message = str(err.value)
    assert message.startswith("source 'kb' (notion): Notion refused the integration token in KB_TOKEN ('token_env')")
    assert "\n" not in message and TOKEN not in message
    assert len(notion.requests) == 1


def test_403_names_the_capability_and_server_errors_are_retried_then_reported(notion: FakeNotion) -> None:
    workspace(notion)
    notion.fail(1, 403)
    with pytest.raises(SourceAuthError, match="give the integration the 'Read content' capability"):
        unpaced(notion).changes(None, {})
    waits: list[float] = []
    notion.fail(2, 503)
    changes = NotionConnector(spec(notion), sleep=waits.append, pace=0.0).changes(None, {})
    assert len(changes.upserts) == 3 and waits == [0.5, 1.0]
    notion.fail(3, 500)
    with pytest.raises(SourceUnreachableError, match=r"Notion answered 500 for the search \(after 3 tries\)"):
        NotionConnector(spec(notion), sleep=waits.append, pace=0.0).changes(None, {})


def test_unreachable_api(notion: FakeNotion) -> None:
    with pytest.raises(SourceUnreachableError, match=r"^source 'kb' \(notion\): cannot reach 127.0.0.1"):
        connector_for(spec(notion, api_url=f"http://127.0.0.1:{free_port()}"), Path("unused")).changes(None, {})


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"database": ["x"]}, "unknown setting 'database'"),
        ({"pages": ["not-an-id"]}, "'pages' holds 'not-an-id': use a page id or its Notion URL"),
        ({"token_env": "UNSET_VAR"}, "UNSET_VAR ('token_env') is not set"),
        ({"api_url": "ftp://notion"}, "'api_url' must be an http(s) address"),
    ],
)
def test_bad_settings_are_one_line(notion: FakeNotion, settings: dict[str, object], expected: str) -> None:
    with pytest.raises(SourceConfigError, match=r"^source 'kb' \(notion\): ") as err:
        connector_for(spec(notion, **settings), Path("unused"))
    assert expected in str(err.value) and notion.requests == []


@pytest.mark.slow
def test_synced_pages_are_found_by_search_with_their_link_until_trashed(
    notion: FakeNotion, tmp_path: Path, embedder: Embedder
) -> None:
    ids = workspace(notion)
    text_ = "The parking garage closes at nine in the evening."
    parking = notion.add_page("Parking", [paragraph(text_)], parent=ids["handbook"])
    synced = Indexed(spec(notion), unpaced(notion), tmp_path, embedder)
    assert synced.sync().added == 4
    hit = synced.search("when does the parking garage close")[0]
    assert (hit.title, hit.url) == ("Parking", f"https://www.notion.so/Parking-{parking.replace('-', '')}")
    assert (hit.heading_path, hit.updated) == ("Handbook", "2026-01-05")
    row = synced.search("restore a backup with pg_restore")[0]
    assert (row.title, row.tags, row.heading_path) == (
        "Restore a backup",
        ("ops", "db", "Current"),
        "Handbook / Runbooks",
    )

    notion.edit(parking, in_trash=True)
    assert synced.sync().deleted == 1
    assert all(h.title != "Parking" for h in synced.search("when does the parking garage close"))


def test_no_log_line_holds_the_token_even_at_debug(notion: FakeNotion, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # the bot's logging quiets httpx (its INFO lines name URLs); a test run earlier in this process may have set it up
    caplog.set_level(logging.DEBUG, logger="httpx")
    workspace(notion)
    unpaced(notion).changes(None, {})
    notion.expire()
    with pytest.raises(SourceAuthError):
        unpaced(notion).changes(None, {})
    assert "/v1/search" in caplog.text and TOKEN not in caplog.text
