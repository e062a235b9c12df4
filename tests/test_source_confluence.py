"""The Confluence connector against a fake Confluence REST API over real HTTP, through atlassian-python-api."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from support.fake_confluence import EMAIL, TOKEN, FakeConfluence
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
from retrieval.sources.confluence import ConfluenceConnector
from retrieval.sources.registry import connector_for
from retrieval.sources.spec import SourceSpec


def spec(fake: FakeConfluence, **settings: object) -> SourceSpec:
    base: dict[str, object] = {"url": fake.url, "cloud": fake.cloud, "spaces": ["ENG"], "token_env": "WIKI_TOKEN"}
    if fake.cloud:
        base["username"] = EMAIL
    return SourceSpec("wiki", "confluence", base | settings, env={"WIKI_TOKEN": TOKEN})


@pytest.fixture
def fake():
    with FakeConfluence(cloud=True) as server:
        server.add_space("ENG")
        yield server


def tree(fake: FakeConfluence) -> dict[str, str]:
    ids = {"eng": fake.add_page("ENG", "Engineering", "<p>Welcome to engineering.</p>")}
    ids["runbooks"] = fake.add_page("ENG", "Runbooks", "<p>How we operate.</p>", parent=ids["eng"])
    body = "<h1>Steps</h1><p>Run <code>deploy.sh</code> from the release branch.</p>"
    ids["deploy"] = fake.add_page("ENG", "Deploy", body, parent=ids["runbooks"], labels=["ops", "release"])
    ids["old"] = fake.add_page("ENG", "Legacy VPN", "<p>Use the old VPN.</p>", status="archived")
    return ids


def test_first_sync_mirrors_pages_with_their_hierarchy_labels_and_links(fake: FakeConfluence) -> None:
    tree(fake)
    state = Remembered(connector_for(spec(fake), Path("unused")))
    changes = state.sync()
    assert {d.title for d in changes.upserts} == {"Engineering", "Runbooks", "Deploy", "Legacy VPN"}
    deploy = state.by_title("Deploy")
    assert deploy.path.startswith("ENG/deploy-") and deploy.path.endswith(".md")
    # the ancestors are the leading heading; the page's own headings nest below it
    assert deploy.content.decode().startswith("# Engineering / Runbooks\n\n## Steps\n\nRun `deploy.sh`")
    assert deploy.tags == ("ops", "release")
    assert deploy.url == f"{fake.url}/spaces/ENG/pages/{deploy.doc_id}/Deploy"
    assert (deploy.updated, deploy.owner, deploy.status) == ("2026-01-05T10:00:00.000Z", "Ada Lovelace", None)
    assert state.by_title("Legacy VPN").status == "archived"
    assert state.by_title("Engineering").content == b"Welcome to engineering.\n"
    assert changes.listed_all and changes.requests == len(fake.requests)


def test_unchanged_resync_of_1000_pages_costs_under_2_percent_of_the_first(fake: FakeConfluence) -> None:
    parent = None
    for i in range(1000):
        page = fake.add_page("ENG", f"Page {i}", f"<p>Body of page {i}.</p>", parent=parent if i % 10 else None)
        parent = page if i % 10 == 0 else parent
    state = Remembered(connector_for(spec(fake), Path("unused")))
    first = state.sync()
    again = state.sync()
    assert len(first.upserts) == 1000 and again.upserts == [] and len(again.unchanged) == 1000
    # space check + 5 listings of 200 + 1 (empty) archived listing; the first sync also fetched 1,000 bodies
    assert (first.requests, again.requests) == (1007, 7)
    assert again.requests <= 0.02 * first.requests
    assert len(fake.requests) == first.requests + again.requests  # counted as the server saw them


@pytest.mark.parametrize("site_links", [False, True])
def test_listing_follows_next_links_relative_to_the_context_or_the_site(site_links: bool) -> None:
    with FakeConfluence(cloud=True, site_links=site_links) as fake:
        fake.add_space("ENG")
        for i in range(401):
            fake.add_page("ENG", f"Page {i}", "<p>text</p>")
        changes = connector_for(spec(fake, include_archived=False), Path("unused")).changes(None, {})
        assert len(changes.upserts) == 401
        assert [r.split("start=")[1].split("&")[0] for r in fake.requests if "/content?" in r] == ["0", "200", "400"]


def test_changed_moved_and_deleted_pages(fake: FakeConfluence) -> None:
    ids = tree(fake)
    state = Remembered(connector_for(spec(fake), Path("unused")))
    state.sync()
    fake.edit(ids["runbooks"], body="<p>How we operate, now with on-call.</p>")
    fake.pages[ids["deploy"]].parent = ids["eng"]  # a move is not a new version in Confluence
    del fake.pages[ids["old"]]
    before = len(fake.requests)
    changes = state.sync()
    assert {d.title for d in changes.upserts} == {"Runbooks", "Deploy"}
    assert "on-call" in state.by_title("Runbooks").content.decode()
    assert state.by_title("Deploy").content.decode().startswith("# Engineering\n\n## Steps")
    assert ids["old"] not in state.known and ids["old"] not in changes.unchanged
    assert len(fake.requests) - before == 3 + 2  # check, two listings, and the two changed bodies


def test_a_page_deleted_while_the_sync_runs_is_skipped_not_an_error(fake: FakeConfluence) -> None:
    ids = tree(fake)
    fake.after_listing = lambda: fake.pages.__delitem__(ids["deploy"]) if ids["deploy"] in fake.pages else None
    changes = Remembered(connector_for(spec(fake), Path("unused"))).sync()
    assert {d.title for d in changes.upserts} == {"Engineering", "Runbooks", "Legacy VPN"}
    assert changes.notes == [f"page {ids['deploy']} vanished during the sync"]


def test_renamed_ancestor_and_new_label_refresh_the_pages_below(fake: FakeConfluence) -> None:
    ids = tree(fake)
    state = Remembered(connector_for(spec(fake), Path("unused")))
    state.sync()
    fake.edit(ids["eng"], title="Platform Engineering")
    fake.pages[ids["runbooks"]].labels = ["handbook"]  # labels are not a new version either
    changes = state.sync()
    assert {d.title for d in changes.upserts} == {"Platform Engineering", "Runbooks", "Deploy"}
    assert state.by_title("Deploy").content.decode().startswith("# Platform Engineering / Runbooks\n")
    assert state.by_title("Runbooks").tags == ("handbook",)


def test_label_filter_and_archived_pages_left_out(fake: FakeConfluence) -> None:
    tree(fake)
    state = Remembered(connector_for(spec(fake, labels=["OPS"]), Path("unused")))
    assert [d.title for d in state.sync().upserts] == ["Deploy"]
    state = Remembered(connector_for(spec(fake, include_archived=False), Path("unused")))
    assert "Legacy VPN" not in {d.title for d in state.sync().upserts}


def test_data_center_with_a_personal_access_token() -> None:
    with FakeConfluence(cloud=False) as fake:
        fake.add_space("ENG")
        tree(fake)
        state = Remembered(connector_for(spec(fake), Path("unused")))  # no username: bearer token
        state.sync()
        assert state.by_title("Deploy").url == f"{fake.url}/display/ENG/Deploy"


def test_429_waits_as_asked_then_gives_up_beyond_the_budget(fake: FakeConfluence) -> None:
    tree(fake)
    waits: list[float] = []
    fake.throttle(2, retry_after="3")
    state = Remembered(ConfluenceConnector(spec(fake), sleep=waits.append))
    changes = state.sync()
    assert waits == [3.0, 3.0] and len(changes.upserts) == 4
    assert changes.requests == len(fake.requests) == 2 + 7  # the two refused requests count

    fake.throttle(100, retry_after="45")
    with pytest.raises(SourceRateLimitedError) as err:
        ConfluenceConnector(spec(fake), sleep=waits.append).changes(None, {})
    assert err.value.retry_after == 45.0 and waits[2:] == [45.0]  # the second 45 s would exceed the 60 s budget
    assert str(err.value).startswith("source 'wiki' (confluence): rate limited (429)")


def test_expired_token_is_one_line_naming_the_variable_never_the_token(fake: FakeConfluence) -> None:
    tree(fake)
    fake.expire()
    with pytest.raises(SourceAuthError) as err:
        connector_for(spec(fake), Path("unused")).changes(None, {})
    message = str(err.value)
    assert message.startswith("source 'wiki' (confluence): Confluence refused the API token in WIKI_TOKEN")
    assert "\n" not in message and TOKEN not in message and "id.atlassian.com" in message


def test_403_names_the_permission_and_server_errors_are_retried_then_reported(fake: FakeConfluence) -> None:
    tree(fake)
    fake.fail(1, 403)
    with pytest.raises(SourceAuthError) as err:
        connector_for(spec(fake), Path("unused")).changes(None, {})
    assert str(err.value).startswith(
        "source 'wiki' (confluence): Confluence refused access to space 'ENG' (403): give the account the 'View'"
    )
    waits: list[float] = []
    fake.fail(2, 503)
    changes = ConfluenceConnector(spec(fake), sleep=waits.append).changes(None, {})
    assert len(changes.upserts) == 4 and waits == [0.5, 1.0]
    fake.fail(3, 502)
    with pytest.raises(SourceUnreachableError, match=r"answered 502 \(after 3 tries\)"):
        ConfluenceConnector(spec(fake), sleep=waits.append).changes(None, {})


def test_missing_space_and_unreachable_host(fake: FakeConfluence) -> None:
    with pytest.raises(SourceNotFoundError, match=r"^source 'wiki' \(confluence\): space 'OPS' not found"):
        connector_for(spec(fake, spaces=["ENG", "OPS"]), Path("unused")).changes(None, {})
    dead = spec(fake, url=f"http://127.0.0.1:{free_port()}/wiki")
    with pytest.raises(SourceUnreachableError, match="cannot reach 127.0.0.1"):
        connector_for(dead, Path("unused")).changes(None, {})


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"space": ["ENG"]}, "unknown setting 'space'"),
        ({"username": None}, "Confluence Cloud needs 'username'"),
        ({"url": "https://bot:secret@wiki.example.com"}, "without credentials"),
        ({"token_env": "NOT_SET"}, "NOT_SET ('token_env') is not set"),
        ({"body_format": "wiki"}, "'body_format' must be storage or view"),
    ],
)
def test_bad_settings_are_one_line(fake: FakeConfluence, settings: dict[str, object], expected: str) -> None:
    raw = {k: v for k, v in {**spec(fake).settings, **settings}.items() if v is not None}
    with pytest.raises(SourceConfigError, match=r"^source 'wiki' \(confluence\): ") as err:
        connector_for(SourceSpec("wiki", "confluence", raw, env={"WIKI_TOKEN": TOKEN}), Path("unused"))
    assert expected in str(err.value)
    assert fake.requests == []  # validating makes no request


@pytest.mark.slow
def test_synced_pages_are_found_by_search_with_their_link_until_deleted(
    fake: FakeConfluence, tmp_path: Path, embedder: Embedder
) -> None:
    ids = tree(fake)
    parking = fake.add_page(
        "ENG", "Parking", "<p>The parking garage closes at nine in the evening.</p>", parent=ids["eng"]
    )
    synced = Indexed(spec(fake), connector_for(spec(fake), tmp_path / "work"), tmp_path, embedder)
    assert synced.sync().added == 5
    hit = synced.search("when does the parking garage close")[0]
    assert (hit.title, hit.url) == ("Parking", f"{fake.url}/spaces/ENG/pages/{parking}/Parking")
    assert (hit.path, hit.heading_path, hit.updated) == (f"wiki/ENG/parking-{parking}.md", "Engineering", "2026-01-05")
    assert any(h.title == "Legacy VPN" and h.archived for h in synced.search("old VPN", k=5))

    del fake.pages[parking]
    assert synced.sync().deleted == 1
    assert all(h.title != "Parking" for h in synced.search("when does the parking garage close"))


@pytest.mark.parametrize("cloud", [True, False])
def test_no_log_line_holds_the_token_even_at_debug(cloud: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeConfluence(cloud=cloud) as fake:
        fake.add_space("ENG")
        tree(fake)
        connector_for(spec(fake), Path("unused")).changes(None, {})
        fake.expire()
        with pytest.raises(SourceAuthError):
            connector_for(spec(fake), Path("unused")).changes(None, {})
    basic = base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
    assert "/rest/api/content" in caplog.text  # the libraries did log the requests
    assert TOKEN not in caplog.text and basic not in caplog.text
