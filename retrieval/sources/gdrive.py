"""Google Drive (type `gdrive`): the Google Docs, PDFs, Markdown and text files of configured folders
(with their subfolders) and shared drives, read through a service account.

The first sync lists the folders (files.list, paged, into the subfolders) and takes the changes feed's
start token as the cursor; later syncs read the feed from there (changes.list) and fetch only the files
that changed, so an unchanged source costs one request per feed. A file trashed, removed, or moved out of
the configured folders is deleted. A folder entering or leaving the tree changes which files are in reach
without a change of their own: then the folders are listed again (nothing unchanged is fetched twice).

Google Docs are exported as Markdown (`text/markdown`, which Drive offers for Docs since 2024; where
`about.exportFormats` does not list it, as plain text): the headings, lists and tables survive for the
chunker; the images the export inlines as base64 are dropped. Other Google types (Sheets, Slides, ...)
and other files are skipped with a note.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from retrieval.errors import SourceNotFoundError
from retrieval.sources.base import Changes, Cursor, KnownDocument, SourceDocument
from retrieval.sources.gdrive_api import DriveClient, Refused, ServiceKey, load_key
from retrieval.sources.spec import SourceSpec

FOLDER = "application/vnd.google-apps.folder"
GOOGLE_DOC = "application/vnd.google-apps.document"
MARKDOWN_EXPORT, TEXT_EXPORT = "text/markdown", "text/plain"
FILE_FIELDS = (
    "id,name,mimeType,parents,driveId,trashed,size,md5Checksum,modifiedTime,webViewLink,lastModifyingUser(displayName)"
)
PAGE_SIZE = 1000  # the most files.list and changes.list return per page
SETTINGS = frozenset(
    {
        "credentials_file_env",
        "credentials_json_env",
        "folder_ids",
        "shared_drive_ids",
        "include_subfolders",
        "max_file_mb",
        "api_url",
    }
)
_DRIVE_ID = re.compile(r"^[A-Za-z0-9_-]+$")
# Docs' Markdown export inlines each image as a reference to a base64 data URI (`![][image1]` ...
# `[image1]: <data:image/png;base64,...>`): megabytes of noise for search, dropped
_DATA_DEFINITION = re.compile(rb"(?m)^ {0,3}\[([^\]\n]+)\]:[ \t]*<?data:[^\n]*(?:\n|\Z)")
_DATA_INLINE = re.compile(rb"!\[[^\]\n]*\]\(\s*<?data:[^)\n]*\)")
_IMAGE_REFERENCE = re.compile(rb"!\[[^\]\n]*\]\[([^\]\n]+)\]")
_SUFFIXES = {".pdf": ".pdf", ".md": ".md", ".markdown": ".md", ".txt": ".txt"}
_TYPES = {"application/pdf": ".pdf", "text/markdown": ".md", "text/x-markdown": ".md", "text/plain": ".txt"}


@dataclass(frozen=True)
class DriveSettings:
    folder_ids: tuple[str, ...]
    shared_drive_ids: tuple[str, ...]
    include_subfolders: bool
    max_file_bytes: int
    api_url: str | None  # only for tests and proxies: Google's own endpoint otherwise

    @property
    def roots(self) -> frozenset[str]:
        """The folders whose children are in reach (a shared drive's root folder has the drive's id)."""
        return frozenset(self.folder_ids + (() if self.include_subfolders else self.shared_drive_ids))


def connector(spec: SourceSpec, work_dir: Path) -> GDriveConnector:
    """Checks the settings and the key (no request is made before `changes`)."""
    unknown = sorted(set(spec.settings) - SETTINGS)
    if unknown:
        raise spec.error(f"unknown setting {unknown[0]!r}: use {', '.join(sorted(SETTINGS))}")
    folders, drives = spec.strings("folder_ids"), spec.strings("shared_drive_ids")
    if not folders and not drives:
        raise spec.error("set 'folder_ids' and/or 'shared_drive_ids': the folders and shared drives to read")
    for drive_id in folders + drives:
        if not _DRIVE_ID.match(drive_id):
            raise spec.error(f"{drive_id!r} is not a Drive id: copy it from the URL (.../folders/<id>)")
    max_mb = spec.get("max_file_mb", float, 20.0)
    if max_mb <= 0:
        raise spec.error("'max_file_mb' must be above 0")
    api_url = spec.get("api_url", str, "").strip() or None
    if api_url and not api_url.startswith(("https://", "http://")):
        raise spec.error("'api_url' must be an http(s) URL")
    settings = DriveSettings(folders, drives, spec.get("include_subfolders", bool, True), int(max_mb * 2**20), api_url)
    return GDriveConnector(spec, settings, load_key(spec))


@dataclass
class _State:
    """The cursor: the changes feeds' tokens ("" is the service account's own corpus, else a shared
    drive's id), the folders in reach, and the Docs' export type; for the configuration it was made by."""

    feeds: dict[str, str]
    folders: set[str]
    export: str
    config: str

    def dump(self) -> Cursor:
        return {"feeds": self.feeds, "folders": sorted(self.folders), "export": self.export, "config": self.config}

    @staticmethod
    def load(cursor: Cursor, config: str) -> _State | None:
        """None (a full listing) for no cursor, one from another configuration, or one unreadable."""
        if not isinstance(cursor, dict) or cursor.get("config") != config:
            return None
        feeds, folders, export = cursor.get("feeds"), cursor.get("folders"), cursor.get("export")
        if not isinstance(feeds, dict) or not isinstance(folders, list) or export not in (MARKDOWN_EXPORT, TEXT_EXPORT):
            return None
        return _State({str(k): str(v) for k, v in feeds.items()}, {str(f) for f in folders}, export, config)


class GDriveConnector:
    def __init__(self, spec: SourceSpec, settings: DriveSettings, key: ServiceKey) -> None:
        self.spec, self.settings, self.key = spec, settings, key
        self._drive: DriveClient | None = None  # built on first use, then kept: its access token is reused
        s = settings
        self._config = f"{sorted(s.folder_ids)}|{sorted(s.shared_drive_ids)}|{s.include_subfolders}"

    @property
    def client(self) -> DriveClient:
        if self._drive is None:
            self._drive = DriveClient(self.spec, self.key, self.settings.api_url)
        return self._drive

    def changes(self, cursor: Cursor, known: Mapping[str, KnownDocument]) -> Changes:
        client = self.client
        client.start_sync()
        before = client.requests
        state = _State.load(cursor, self._config)
        out = self._full(known, None) if state is None else self._incremental(state, known)
        out.requests = client.requests - before
        return out

    # -- the full listing -------------------------------------------------------------------------

    def _full(self, known: Mapping[str, KnownDocument], feeds: dict[str, str] | None) -> Changes:
        # the feeds' tokens are taken before listing: what changes during the listing comes next time
        feeds = feeds if feeds is not None else self._start_tokens()
        export = self._export_type()
        folders, files = self._list_all()
        out = Changes(cursor=_State(feeds, folders, export, self._config).dump(), listed_all=True)
        for file in files:
            self._take(file, export, known, out)
        return out

    def _start_tokens(self) -> dict[str, str]:
        changes = self.client.changes
        feeds = {}
        if self.settings.folder_ids:
            request = changes.getStartPageToken(supportsAllDrives=True)
            feeds[""] = self.client.call(request, "the changes feed")["startPageToken"]
        for drive in self.settings.shared_drive_ids:
            request = changes.getStartPageToken(driveId=drive, supportsAllDrives=True)
            feeds[drive] = self.client.call(request, f"shared drive {drive!r}")["startPageToken"]
        return feeds

    def _export_type(self) -> str:
        about = self.client.call(self.client.about.get(fields="exportFormats"), "the export formats")
        offered = about.get("exportFormats", {}).get(GOOGLE_DOC, [])
        return MARKDOWN_EXPORT if MARKDOWN_EXPORT in offered else TEXT_EXPORT

    def _list_all(self) -> tuple[set[str], list[dict[str, Any]]]:
        """The folders in reach and the files in them (folders excluded)."""
        files: dict[str, dict[str, Any]] = {}
        folders = {self._check_folder(folder_id) for folder_id in self.settings.folder_ids}
        queue = list(folders)
        while queue:
            parent = queue.pop()
            query = f"'{parent}' in parents and trashed=false"
            for item in self._pages(query, None, f"folder {parent!r}"):
                if item.get("mimeType") != FOLDER:
                    files[item["id"]] = item
                elif self.settings.include_subfolders and item["id"] not in folders:
                    folders.add(item["id"])
                    queue.append(item["id"])
        for drive in self.settings.shared_drive_ids:
            query = "trashed=false" if self.settings.include_subfolders else f"'{drive}' in parents and trashed=false"
            if not self.settings.include_subfolders:
                folders.add(drive)
            for item in self._pages(query, drive, f"shared drive {drive!r}"):
                if item.get("mimeType") != FOLDER:
                    files[item["id"]] = item
        return folders, list(files.values())

    def _check_folder(self, folder_id: str) -> str:
        """A configured folder exists, is a folder, and is not in the trash (a listing of anything else
        is empty, which would delete every document)."""
        request = self.client.files.get(fileId=folder_id, fields="id,mimeType,trashed", supportsAllDrives=True)
        meta = self.client.call(request, f"folder {folder_id!r}")
        if meta.get("mimeType") != FOLDER:
            raise self.spec.error(f"{folder_id!r} in folder_ids is a file, not a folder")
        if meta.get("trashed"):
            raise SourceNotFoundError(
                f"source {self.spec.name!r} ({self.spec.kind}): folder {folder_id!r} is in the trash: "
                "restore it, or remove it from folder_ids"
            )
        return folder_id

    def _list(self, query: str, token: str | None, drive: str | None = None) -> Any:
        corpus = {"corpora": "drive", "driveId": drive} if drive else {}
        return self.client.files.list(
            q=query,
            fields=f"nextPageToken,files({FILE_FIELDS})",
            pageSize=PAGE_SIZE,
            pageToken=token,
            supportsAllDrives=True,
            includeItemsFromAllDrives=True,
            **corpus,
        )

    def _pages(self, query: str, drive: str | None, what: str) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            page = self.client.call(self._list(query, token, drive), what)
            yield from page.get("files", [])
            token = page.get("nextPageToken")
            if not token:
                return

    # -- the changes feed -------------------------------------------------------------------------

    def _incremental(self, state: _State, known: Mapping[str, KnownDocument]) -> Changes:
        latest: dict[str, dict[str, Any] | None] = {}  # file id -> its resource now; None: removed
        feeds = {feed: self._read_feed(feed, token, latest) for feed, token in state.feeds.items()}
        if self._tree_changed(latest, state.folders):
            return self._full(known, feeds)
        out = Changes(cursor=_State(feeds, state.folders, state.export, self._config).dump())
        for file_id, file in latest.items():
            if file is not None and file.get("mimeType") == FOLDER:
                continue
            if file is not None and self._in_reach(file, state.folders):
                self._take(file, state.export, known, out)
            elif file_id in known:
                out.deleted.append(file_id)
        return out

    def _read_feed(self, feed: str, token: str, latest: dict[str, dict[str, Any] | None]) -> str:
        """Reads one feed from `token` into `latest`; returns the token to start from next time."""
        changes, drive = self.client.changes, {"driveId": feed} if feed else {}
        what = f"shared drive {feed!r}" if feed else "the changes feed"
        while True:
            request = changes.list(
                pageToken=token,
                pageSize=PAGE_SIZE,
                includeRemoved=True,
                supportsAllDrives=True,
                includeItemsFromAllDrives=True,
                fields=f"nextPageToken,newStartPageToken,changes(fileId,removed,file({FILE_FIELDS}))",
                **drive,
            )
            page = self.client.call(request, what)
            for change in page.get("changes", []):
                file_id = change.get("fileId")
                file = None if change.get("removed") else change.get("file")
                # a later change wins; across feeds (a shared drive's file is in both), a file present wins
                if file_id and (file is not None or latest.get(file_id) is None):
                    latest[file_id] = file
            if page.get("nextPageToken"):
                token = page["nextPageToken"]
            else:
                return str(page["newStartPageToken"])

    def _tree_changed(self, latest: Mapping[str, dict[str, Any] | None], folders: set[str]) -> bool:
        """A folder in reach gone, trashed or moved out, or a new folder in reach."""
        for file_id, file in latest.items():
            if file_id in folders:
                placed = file_id in self.settings.roots or bool(folders & set((file or {}).get("parents") or ()))
                if file is None or file.get("trashed") or not placed:
                    return True
            elif file is not None and file.get("mimeType") == FOLDER and self.settings.include_subfolders:
                if not file.get("trashed") and folders & set(file.get("parents") or ()):
                    return True
        return False

    def _in_reach(self, file: dict[str, Any], folders: set[str]) -> bool:
        if file.get("trashed"):
            return False
        if self.settings.include_subfolders and file.get("driveId") in self.settings.shared_drive_ids:
            return True
        return bool(folders & set(file.get("parents") or ()))

    # -- one file ---------------------------------------------------------------------------------

    def _take(self, file: dict[str, Any], export: str, known: Mapping[str, KnownDocument], out: Changes) -> None:
        """Adds `file` to `out`: unchanged, fetched, or skipped with a note (and deleted if known)."""
        file_id, name, mime = file["id"], str(file.get("name") or file["id"]), str(file.get("mimeType"))
        suffix = _suffix(name, mime, export)
        version = "|".join((file.get("modifiedTime") or "", file.get("md5Checksum") or "", name, suffix or ""))
        size = int(file.get("size") or 0)
        if suffix is None:
            skipped = f"skipped {name!r} ({mime}): not a Google Doc, PDF, Markdown or text file"
        elif size > self.settings.max_file_bytes:
            skipped = f"skipped {name!r}: {size / 2**20:.1f} MB is over max_file_mb"
        elif file_id in known and known[file_id].version == version:
            out.unchanged.append(file_id)
            return
        else:
            content = self._content(file_id, mime, export, name)
            if isinstance(content, bytes):
                out.upserts.append(_document(file, name, suffix, content, version))
                return
            skipped = content
        out.notes.append(skipped)
        if file_id in known:
            out.deleted.append(file_id)

    def _content(self, file_id: str, mime: str, export: str, name: str) -> bytes | str:
        """The file's bytes, or why it is skipped (gone since it was listed, too large, not exportable)."""
        files = self.client.files
        if mime == GOOGLE_DOC:
            request = files.export_media(fileId=file_id, mimeType=export)
        else:
            request = files.get_media(fileId=file_id, supportsAllDrives=True)
        content = self.client.call(request, f"file {name!r}", refusals=("404", "exportSizeLimitExceeded"))
        if isinstance(content, Refused):
            return f"skipped {name!r}: Drive would not hand it over ({content.reason or content.status})"
        if mime == GOOGLE_DOC and export == MARKDOWN_EXPORT:
            content = _without_data_images(content)
        if len(content) > self.settings.max_file_bytes:
            return f"skipped {name!r}: {len(content) / 2**20:.1f} MB is over max_file_mb"
        return bytes(content)


def _suffix(name: str, mime: str, export: str) -> str | None:
    """The mirror file's suffix: what the loader parses it as (None: not a document)."""
    if mime == GOOGLE_DOC:
        return ".md" if export == MARKDOWN_EXPORT else ".txt"
    if mime.startswith("application/vnd.google-apps."):
        return None  # Sheets, Slides, Forms, shortcuts: no text export worth indexing
    # the name first: Drive types many .md files text/plain or application/octet-stream
    return _SUFFIXES.get(PurePosixPath(name.lower()).suffix) or _TYPES.get(mime)


def _without_data_images(markdown: bytes) -> bytes:
    labels = {match.group(1) for match in _DATA_DEFINITION.finditer(markdown)}
    text = _DATA_INLINE.sub(b"", _DATA_DEFINITION.sub(b"", markdown))
    return _IMAGE_REFERENCE.sub(lambda m: b"" if m.group(1) in labels else m.group(0), text) if labels else text


def _document(file: dict[str, Any], name: str, suffix: str, content: bytes, version: str) -> SourceDocument:
    title = PurePosixPath(name).stem if PurePosixPath(name.lower()).suffix in _SUFFIXES else name
    slug = re.sub(r"[\W_]+", "-", title.lower()).strip("-")[:60].strip("-") or "file"
    return SourceDocument(
        doc_id=file["id"],
        path=f"{slug}-{file['id']}{suffix}",  # the id keeps it unique and stable across renames of others
        title=title,
        content=content,
        url=file.get("webViewLink"),
        updated=file.get("modifiedTime"),
        owner=(file.get("lastModifyingUser") or {}).get("displayName"),
        version=version,
    )
