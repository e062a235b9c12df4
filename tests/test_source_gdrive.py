"""The Google Drive connector (retrieval/sources/gdrive.py) through google-api-python-client and
google-auth, against the fake Drive v3 API and token endpoint of support/fake_gdrive.py over real HTTP:
the service account's grant is a JWT signed by a key each test generates."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from support.docs import make_pdf
from support.fake_gdrive import FakeDrive
from support.servers import free_port

from bot.state import State
from retrieval.config import IndexConfig
from retrieval.embeddings import Embedder
from retrieval.errors import (
    SourceAuthError,
    SourceConfigError,
    SourceNotFoundError,
    SourceRateLimitedError,
    SourceUnreachableError,
)
from retrieval.indexer import Indexer
from retrieval.search import Searcher
from retrieval.sources.base import Changes, KnownDocument
from retrieval.sources.gdrive import GDriveConnector, connector
from retrieval.sources.spec import SourceSpec
from retrieval.sources.sync import SourceSync

PDF = "application/pdf"


@pytest.fixture
def fake() -> Iterator[FakeDrive]:
    with FakeDrive() as fake:
        yield fake


@pytest.fixture
def key(fake: FakeDrive) -> dict[str, str]:
    return fake.service_account_key()


@pytest.fixture
def root(fake: FakeDrive) -> str:
    folder = fake.add_folder("Handbook")
    fake.share(folder)  # shared with the service account's email, as the README says
    return folder


def drive_connector(fake: FakeDrive, key: Mapping[str, Any], **settings: Any) -> GDriveConnector:
    env = {"GDRIVE_KEY": json.dumps(key)}
    spec = SourceSpec(
        "drive", "gdrive", {"credentials_json_env": "GDRIVE_KEY", "api_url": fake.url, **settings}, env=env
    )
    made = connector(spec, Path("/nonexistent"))
    made.client.sleep = lambda seconds: None  # 429s are waited out instantly (tests that care record them)
    return made


class Synced:
    """What the sync would remember between runs: the cursor and the known documents."""

    def __init__(self, source: GDriveConnector) -> None:
        self.source, self.known = source, dict[str, KnownDocument]()
        self.cursor: Any = None

    def run(self) -> Changes:
        changes = self.source.changes(self.cursor, self.known)
        gone = set(changes.deleted)
        if changes.listed_all:
            gone |= set(self.known) - set(changes.unchanged) - {d.doc_id for d in changes.upserts}
        for doc_id in gone:
            self.known.pop(doc_id, None)
        for doc in changes.upserts:
            self.known[doc.doc_id] = KnownDocument(doc.path, doc.version, "")
        self.cursor = changes.cursor
        return changes


def test_connector_checks_its_settings_without_a_request(fake: FakeDrive, key: dict[str, str], root: str) -> None:
    with pytest.raises(SourceConfigError, match="^source 'drive' \\(gdrive\\): unknown setting 'folders'"):
        drive_connector(fake, key, folders=[root])
    with pytest.raises(SourceConfigError, match="set 'folder_ids' and/or 'shared_drive_ids'"):
        drive_connector(fake, key)
    with pytest.raises(SourceConfigError, match="is not a Drive id"):
        drive_connector(fake, key, folder_ids=["https://drive.google.com/drive/folders/x"])
    drive_connector(fake, key, folder_ids=[root])
    assert fake.requests == 0


def test_first_sync_then_an_unchanged_resync_costs_one_request_for_1000_files(
    fake: FakeDrive, key: dict[str, str], root: str
) -> None:
    fake.page_limit = 300  # Drive may answer partial pages: the client follows nextPageToken
    team = fake.add_folder("Team", root)
    for i in range(1000):
        parent = root if i % 2 else team
        if i % 4 == 0:
            fake.add_file(f"Runbook {i}", parent, f"# Runbook {i}\n\nRestart service {i} with care.\n".encode())
        elif i % 4 == 1:
            fake.add_file(f"notes-{i}.md", parent, f"# Notes {i}\n".encode(), "text/markdown")
        elif i % 4 == 2:
            fake.add_file(f"faq-{i}.txt", parent, f"FAQ {i}\n".encode(), "text/plain")
        else:
            fake.add_file(f"Policy {i}.pdf", parent, b"%PDF-1.4 " + str(i).encode(), PDF)
    synced = Synced(drive_connector(fake, key, folder_ids=[root]))

    first = synced.run()
    assert len(first.upserts) == 1000 and first.listed_all and not first.notes
    assert first.requests == fake.requests  # every request counted, the token exchange too
    assert fake.calls["files.export"] == 250 and fake.calls["files.get_media"] == 750
    assert fake.calls["files.list"] == 4  # 500 files per folder, 300 a page

    before = fake.requests
    again = synced.run()
    assert (again.upserts, again.deleted, again.requests) == ([], [], 1)
    assert fake.requests - before == 1 and again.requests <= 0.02 * first.requests
    # the bot makes a connector per sync: then the token exchange comes on top
    fresh = drive_connector(fake, key, folder_ids=[root]).changes(synced.cursor, synced.known)
    assert (fresh.upserts, fresh.deleted, fresh.requests) == ([], [], 2)
    print(f"\ngdrive, 1,000 files: first sync {first.requests} requests, unchanged re-sync {again.requests}")
    print(f"(with a new connector, so a new access token: {fresh.requests})")


def test_documents_carry_drive_metadata_and_a_changed_doc_alone_is_exported_again(
    fake: FakeDrive, key: dict[str, str], root: str
) -> None:
    vpn = fake.add_file("VPN access", root, b"# VPN\n\nUse WireGuard.\n")
    fake.add_file("Leave", root, b"# Leave\n\n25 days.\n")
    fake.add_file("logo.png", root, b"\x89PNG", "image/png")
    fake.add_file("Budget", root, b"", "application/vnd.google-apps.spreadsheet")
    guide = fake.add_file("guide.md", root, b"# Guide\n", "text/plain")  # Drive often types a .md text/plain
    synced = Synced(drive_connector(fake, key, folder_ids=[root]))
    first = synced.run()
    assert next(d for d in first.upserts if d.doc_id == guide).path == f"guide-{guide}.md"  # parsed as Markdown
    doc = next(d for d in first.upserts if d.doc_id == vpn)
    assert (doc.title, doc.content, doc.owner) == ("VPN access", b"# VPN\n\nUse WireGuard.\n", "Ada Lovelace")
    assert doc.path == f"vpn-access-{vpn}.md" and doc.url == f"https://docs.google.com/document/d/{vpn}/edit"
    assert doc.updated is not None and doc.updated.startswith("2026-01-01T")
    assert sorted(first.notes) == [
        "skipped 'Budget' (application/vnd.google-apps.spreadsheet): not a Google Doc, PDF, Markdown or text file",
        "skipped 'logo.png' (image/png): not a Google Doc, PDF, Markdown or text file",
    ]

    fake.update(vpn, content=b"# VPN\n\nUse WireGuard, or the office network.\n")
    exports = fake.calls["files.export"]
    changed = synced.run()
    assert [d.doc_id for d in changed.upserts] == [vpn] and changed.deleted == []
    assert changed.upserts[0].content.endswith(b"or the office network.\n")
    assert fake.calls["files.export"] == exports + 1 and changed.requests == 2  # the feed, one export


def test_images_a_doc_export_inlines_as_base64_are_left_out(fake: FakeDrive, key: dict[str, str], root: str) -> None:
    # Docs' Markdown export puts each image at the end as a reference to a base64 data URI
    image = "data:image/png;base64," + "iVBORw0KGgo" * 5000
    text = f"# VPN\n\nThe client:\n\n![][image1]\n\nUse WireGuard.\n\n[image1]: <{image}>\n"
    fake.add_file("VPN access", root, text.encode())
    (doc,) = Synced(drive_connector(fake, key, folder_ids=[root])).run().upserts
    assert doc.content == b"# VPN\n\nThe client:\n\n\n\nUse WireGuard.\n\n"


def test_docs_are_exported_as_plain_text_where_drive_offers_no_markdown(
    fake: FakeDrive, key: dict[str, str], root: str
) -> None:
    fake.markdown_export = False
    doc_id = fake.add_file("VPN access", root, b"# VPN\n\nUse WireGuard.\n")
    (doc,) = Synced(drive_connector(fake, key, folder_ids=[root])).run().upserts
    assert (doc.path, doc.content) == (f"vpn-access-{doc_id}.txt", b"VPN\n\nUse WireGuard.\n")


def test_files_trashed_deleted_or_moved_out_are_deleted_and_a_folder_moved_out_takes_its_files(
    fake: FakeDrive, key: dict[str, str], root: str
) -> None:
    team = fake.add_folder("Team", root)
    elsewhere = fake.add_folder("Someone's private folder")
    trashed, deleted, moved = (fake.add_file(n, root, b"# " + n.encode()) for n in ("Old", "Gone", "Moved"))
    in_team = fake.add_file("Team page", team, b"# Team\n")
    kept = fake.add_file("Kept", root, b"# Kept\n")
    synced = Synced(drive_connector(fake, key, folder_ids=[root]))
    assert len(synced.run().upserts) == 5

    fake.trash(trashed)
    fake.delete(deleted)
    fake.update(moved, parent=elsewhere)
    fake.page_limit = 2  # three changes: the feed is read over two pages
    changes = synced.run()
    assert sorted(changes.deleted) == sorted([trashed, deleted, moved]) and changes.upserts == []
    assert changes.requests == fake.calls["changes.list"] == 2
    assert set(synced.known) == {in_team, kept}

    fake.update(team, parent=elsewhere)  # only the folder changes: its files leave with it
    out = synced.run()
    assert out.listed_all and out.upserts == [] and set(synced.known) == {kept}
    fake.update(team, parent=root)
    back = synced.run()
    assert [d.doc_id for d in back.upserts] == [in_team] and back.unchanged == [kept]
    assert fake.calls["files.export"] == 6  # the five of the first sync, the team page again


def test_include_subfolders_false_reads_the_folder_alone(fake: FakeDrive, key: dict[str, str], root: str) -> None:
    top = fake.add_file("Top", root, b"# Top\n")
    fake.add_file("Deep", fake.add_folder("Team", root), b"# Deep\n")
    changes = Synced(drive_connector(fake, key, folder_ids=[root], include_subfolders=False)).run()
    assert [d.doc_id for d in changes.upserts] == [top]


def test_a_shared_drive_is_read_through_its_own_changes_feed(fake: FakeDrive, key: dict[str, str], root: str) -> None:
    drive = fake.add_drive("0AteamDriveId")
    sub = fake.add_folder("Specs", None, drive=drive)
    spec = fake.add_file("API spec.md", sub, b"# API\n", "text/markdown")
    note = fake.add_file("notes.txt", drive, b"notes\n", "text/plain", drive=drive)
    synced = Synced(drive_connector(fake, key, shared_drive_ids=[drive]))
    assert sorted(d.doc_id for d in synced.run().upserts) == sorted([spec, note])
    assert synced.cursor is not None and set(synced.cursor["feeds"]) == {drive}

    fake.update(spec, parent=root)  # moved out of the shared drive
    changes = synced.run()
    assert changes.deleted == [spec] and changes.requests == 1


def test_a_file_over_the_cap_is_skipped_with_a_note_before_downloading(
    fake: FakeDrive, key: dict[str, str], root: str
) -> None:
    big = fake.add_file("Scan.pdf", root, b"%PDF-1.4 " + b"0" * (2 * 2**20), PDF)
    small = fake.add_file("Small.pdf", root, b"%PDF-1.4 small", PDF)
    changes = Synced(drive_connector(fake, key, folder_ids=[root], max_file_mb=1)).run()
    assert [d.doc_id for d in changes.upserts] == [small] and big not in changes.unchanged
    assert changes.notes == ["skipped 'Scan.pdf': 2.0 MB is over max_file_mb"]
    assert fake.calls["files.get_media"] == 1


def test_a_pdf_is_indexed_and_cited_with_its_drive_url(
    tmp_path: Path, fake: FakeDrive, key: dict[str, str], root: str, embedder: Embedder
) -> None:
    pdf = make_pdf(tmp_path / "p.pdf", [["The parking garage closes at nine in the evening."]], title="Word - doc1")
    pdf_id = fake.add_file("Parking policy.pdf", root, pdf.read_bytes(), PDF)
    source = drive_connector(fake, key, folder_ids=[root])
    config = IndexConfig(index_dir=tmp_path / "index")
    (tmp_path / "docs").mkdir()

    def index(mirror: Path) -> Any:
        return Indexer(config, embedder, docs_dir=tmp_path / "docs").run([mirror], progress=False, add_root="drive")

    state = State(tmp_path / "state.sqlite3")
    try:
        report = SourceSync(source.spec, source, state.sources, tmp_path / "mirror").run(index)
        assert report.added == 1
        with Searcher(config, embedder) as searcher:
            hit = searcher.search("when does the parking garage close", k=1)[0]
        assert (hit.path, hit.title) == (f"drive/parking-policy-{pdf_id}.pdf", "Parking policy")
        assert hit.url == f"https://drive.google.com/file/d/{pdf_id}/view?usp=drivesdk"

        fake.delete(pdf_id)
        report = SourceSync(source.spec, source, state.sources, tmp_path / "mirror").run(index)
        assert (report.deleted, report.requests) == (1, 1)
        with Searcher(config, embedder) as searcher:
            assert searcher.search("when does the parking garage close", k=1) == []
    finally:
        state.close()


def test_a_429_is_waited_out_as_retry_after_says_within_a_budget(
    fake: FakeDrive, key: dict[str, str], root: str
) -> None:
    fake.add_file("VPN", root, b"# VPN\n")
    source = drive_connector(fake, key, folder_ids=[root])
    slept: list[float] = []
    source.client.sleep = slept.append
    fake.throttle(2, retry_after="3")
    fake.throttle(1, retry_after="2", status=403)  # Drive's other way to say it: 403 userRateLimitExceeded
    assert len(Synced(source).run().upserts) == 1
    assert slept == [3.0, 3.0, 2.0] and fake.calls["throttled"] == 3

    fake.throttle(5, retry_after="30")
    with pytest.raises(SourceRateLimitedError, match="^source 'drive' \\(gdrive\\): .*rate limit") as caught:
        source.changes(None, {})
    assert caught.value.retry_after == 30.0 and slept[3:] == [30.0, 30.0]  # the budget is 60 s a sync


def test_server_errors_are_retried_then_reported_as_unreachable(
    fake: FakeDrive, key: dict[str, str], root: str
) -> None:
    fake.add_file("VPN", root, b"# VPN\n")
    source = drive_connector(fake, key, folder_ids=[root])
    fake.throttle(2, status=503)
    assert len(source.changes(None, {}).upserts) == 1
    fake.throttle(10, status=500)
    with pytest.raises(SourceUnreachableError, match="^source 'drive' \\(gdrive\\): Drive keeps failing \\(500\\)"):
        source.changes(None, {})
    assert fake.calls["throttled"] == 2 + 4  # each request tried 4 times


def test_an_expired_access_token_is_refreshed_by_google_auth(fake: FakeDrive, key: dict[str, str], root: str) -> None:
    doc = fake.add_file("VPN", root, b"# VPN\n")
    synced = Synced(drive_connector(fake, key, folder_ids=[root]))
    synced.run()
    fake.expire_tokens()
    fake.update(doc, content=b"# VPN\n\nNew.\n")
    changes = synced.run()
    assert [d.doc_id for d in changes.upserts] == [doc]
    assert (fake.calls["unauthorized"], fake.calls["token"], changes.requests) == (1, 2, 4)


def test_a_folder_not_shared_or_missing_is_one_line_naming_the_service_account(
    fake: FakeDrive, key: dict[str, str], root: str
) -> None:
    email = key["client_email"]
    fake.forbid(root)
    with pytest.raises(SourceAuthError) as denied:
        drive_connector(fake, key, folder_ids=[root]).changes(None, {})
    message = str(denied.value)
    assert message.startswith("source 'drive' (gdrive): the service account ") and "\n" not in message
    assert f"share it with {email}" in message and root in message

    unshared = fake.add_folder("Not shared")
    with pytest.raises(
        SourceNotFoundError, match=f"folder '{unshared}' was not found: check the id, and share it with {email}"
    ):
        drive_connector(fake, key, folder_ids=[unshared]).changes(None, {})
    with pytest.raises(
        SourceNotFoundError,
        match=f"shared drive '0Anope' was not found: check the id, and add {email} to it as a member",
    ):
        drive_connector(fake, key, shared_drive_ids=["0Anope"]).changes(None, {})


def test_a_refused_key_and_unreachable_hosts_are_one_line(fake: FakeDrive, key: dict[str, str], root: str) -> None:
    fake.refuse_grants = True  # the key was deleted in the console
    with pytest.raises(SourceAuthError, match=r"refused .*\(invalid_grant: Invalid JWT Signature\.\).*in GDRIVE_KEY"):
        drive_connector(fake, key, folder_ids=[root]).changes(None, {})

    closed = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(SourceUnreachableError, match="^source 'drive' \\(gdrive\\): cannot reach 127.0.0.1"):
        drive_connector(fake, {**key, "token_uri": closed + "token"}, folder_ids=[root]).changes(None, {})
    fake.refuse_grants = False
    with pytest.raises(SourceUnreachableError, match="cannot reach"):  # the API down, the token endpoint up
        drive_connector(fake, key, folder_ids=[root], api_url=closed).changes(None, {})


def test_a_bad_key_is_one_line_naming_the_variable(tmp_path: Path, fake: FakeDrive, key: dict[str, str]) -> None:
    def spec(env: dict[str, str], setting: str = "credentials_file_env") -> SourceSpec:
        return SourceSpec("drive", "gdrive", {setting: "GDRIVE_KEY_FILE", "folder_ids": ["abc"]}, env=env)

    problems = {
        "missing.json": "cannot read the key file named by GDRIVE_KEY_FILE (credentials_file_env): No such file",
        "notjson.json": "the key in GDRIVE_KEY_FILE is not a service account's JSON key: it is not JSON",
        "user.json": 'its "type" is not "service_account"',
        "badkey.json": "its private_key cannot be read",
    }
    (tmp_path / "notjson.json").write_text("private_key=" + key["private_key"])
    (tmp_path / "user.json").write_text(json.dumps({**key, "type": "authorized_user"}))
    (tmp_path / "badkey.json").write_text(json.dumps({**key, "private_key": key["private_key"][:300]}))
    for name, expected in problems.items():
        with pytest.raises(SourceConfigError) as caught:
            connector(spec({"GDRIVE_KEY_FILE": str(tmp_path / name)}), tmp_path)
        assert expected in str(caught.value) and "PRIVATE KEY" not in str(caught.value)
    with pytest.raises(SourceConfigError, match="the environment variable GDRIVE_KEY_FILE"):
        connector(spec({}), tmp_path)
    (tmp_path / "good.json").write_text(json.dumps(key))
    assert connector(spec({"GDRIVE_KEY_FILE": str(tmp_path / "good.json")}), tmp_path).key.email == key["client_email"]


def test_no_secret_reaches_an_error_or_a_log_line(
    fake: FakeDrive, key: dict[str, str], root: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.add_file("VPN", root, b"# VPN\n")
    messages = []
    synced = Synced(drive_connector(fake, key, folder_ids=[root]))
    synced.run()
    fake.expire_tokens()
    fake.throttle(1, retry_after="1")
    synced.run()
    fake.forbid(root)
    fake.refuse_grants = True
    for source in (drive_connector(fake, key, folder_ids=[root]), drive_connector(fake, key, folder_ids=["zzz"])):
        with pytest.raises(SourceAuthError) as caught:
            source.changes(None, {})
        messages.append(str(caught.value))
    fake.refuse_grants = False
    with pytest.raises(SourceAuthError) as caught:
        drive_connector(fake, key, folder_ids=[root]).changes(None, {})
    messages.append(str(caught.value))
    secrets = [line for line in key["private_key"].splitlines() if "PRIVATE KEY" not in line] + fake.issued
    assert len(fake.issued) >= 3 and caplog.records
    for text in [caplog.text, *messages]:
        assert not [s for s in secrets if s in text]
