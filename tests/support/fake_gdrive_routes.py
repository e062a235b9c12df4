"""The fake Drive v3 API's routes (support/fake_gdrive.py serves them): files.list, files.get (metadata
and alt=media), files.export, about.get, changes.getStartPageToken and changes.list, with Drive's partial
responses (`fields`) and its errors' JSON shape."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from support.fake_gdrive import FakeDrive, FakeFile

FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
EXPORT_LIMIT = 10 * 2**20  # Drive exports at most 10 MB
DOC_EXPORTS = [
    "application/rtf",
    "application/pdf",
    "text/plain",
    "text/html",
    "application/zip",
    "application/epub+zip",
]
DEFAULT_FIELDS = {
    "file": "kind,id,name,mimeType",
    "files": "kind,nextPageToken,incompleteSearch,files(kind,id,name,mimeType)",
    "changes": "kind,nextPageToken,newStartPageToken,"
    "changes(kind,changeType,time,removed,fileId,file(kind,id,name,mimeType))",
}
_PARENT_QUERY = re.compile(r"^'([A-Za-z0-9_-]+)' in parents and trashed\s*=\s*false$")
_NOT_TRASHED = re.compile(r"^trashed\s*=\s*false$")


class DriveError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message

    def body(self) -> dict[str, Any]:
        domain = "usageLimits" if "Limit" in self.reason else "global"
        error = {"domain": domain, "reason": self.reason, "message": self.message}
        return {"error": {"code": self.status, "message": self.message, "errors": [error]}}


def route(fake: FakeDrive, path: str, query: dict[str, str]) -> tuple[str, Any]:
    """(the method's name, its JSON answer or the file's bytes); raises DriveError."""
    parts = path.removeprefix("/drive/v3/").split("/")
    if parts == ["files"]:
        return "files.list", files_list(fake, query)
    if len(parts) == 2 and parts[0] == "files":
        return ("files.get_media" if query.get("alt") == "media" else "files.get"), files_get(fake, parts[1], query)
    if len(parts) == 3 and parts[0] == "files" and parts[2] == "export":
        return "files.export", files_export(fake, parts[1], query)
    if parts == ["about"]:
        return "about.get", about(fake, query)
    if parts == ["changes", "startPageToken"]:
        _check_drive(fake, query)
        return "changes.getStartPageToken", {
            "kind": "drive#startPageToken",
            "startPageToken": str(len(fake.changes) + 1),
        }
    if parts == ["changes"]:
        return "changes.list", changes_list(fake, query)
    raise DriveError(404, "notFound", f"Not Found: {path}")


def parse_fields(text: str) -> dict[str, Any]:
    """`nextPageToken,files(id,lastModifyingUser(displayName))` as a tree; {} (a leaf) keeps all."""
    tree: dict[str, Any] = {}
    stack: list[dict[str, Any]] = []
    current, name, last = tree, "", ""
    for char in text + ",":
        if char not in ",()":
            name += char
            continue
        if name.strip():
            last = name.strip()
            current.setdefault(last, {})
        name = ""
        if char == "(":
            stack.append(current)
            current = current[last]
        elif char == ")":
            current = stack.pop()
    return tree


def select(value: Any, tree: dict[str, Any]) -> Any:
    if not tree or "*" in tree:
        return value
    if isinstance(value, list):
        return [select(item, tree) for item in value]
    if isinstance(value, dict):
        return {key: select(value[key], sub) for key, sub in tree.items() if key in value}
    return value


def _fields(query: dict[str, str], kind: str) -> dict[str, Any]:
    return parse_fields(query.get("fields") or DEFAULT_FIELDS[kind])


def _all_drives(query: dict[str, str]) -> bool:
    return query.get("supportsAllDrives") == "true" and query.get("includeItemsFromAllDrives") == "true"


def _check_drive(fake: FakeDrive, query: dict[str, str]) -> str | None:
    drive = query.get("driveId")
    if drive is None:
        return None
    if query.get("supportsAllDrives") != "true":
        raise DriveError(400, "invalidParameter", "driveId requires supportsAllDrives=true")
    if drive not in fake.drives:
        raise DriveError(404, "notFound", f"Shared drive not found: {drive}")
    return drive


def _page(fake: FakeDrive, query: dict[str, str], default: int) -> tuple[int, int]:
    size = int(query.get("pageSize") or default)
    if not 1 <= size <= 1000:
        raise DriveError(400, "invalidParameter", "Invalid value for pageSize")
    size = min(size, fake.page_limit)
    token = query.get("pageToken") or "~!0"
    if not token.startswith("~!") or not token[2:].isdigit():
        raise DriveError(400, "invalidParameter", "Invalid Value: pageToken")
    return size, int(token[2:])


def files_list(fake: FakeDrive, query: dict[str, str]) -> dict[str, Any]:
    size, offset = _page(fake, query, 100)
    q = query.get("q", "")
    match = _PARENT_QUERY.match(q)
    if not match and not _NOT_TRASHED.match(q):
        raise DriveError(400, "invalid", f"Invalid Value: q ({q!r} is beyond this fake)")
    parent = match.group(1) if match else None
    corpora = query.get("corpora", "user")
    drive = _check_drive(fake, query)
    if (corpora == "drive") != (drive is not None) or corpora not in ("user", "drive"):
        raise DriveError(400, "invalidParameter", "corpora=drive goes with driveId")
    if drive and not _all_drives(query):
        raise DriveError(403, "teamDriveParameterMissing", "includeItemsFromAllDrives must be true with driveId")
    if parent in fake.forbidden:
        raise DriveError(403, "insufficientFilePermissions", "The user does not have sufficient permissions.")
    with fake.lock:
        found = [
            f
            for f in fake.files.values()
            if not f.trashed
            and fake.visible(f)
            and (parent is None or parent in f.parents)
            and (f.drive == drive if drive else (f.drive is None or _all_drives(query)))
        ]
        page = [f.resource() for f in found[offset : offset + size]]
    result: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": False, "files": page}
    if offset + size < len(found):
        result["nextPageToken"] = f"~!{offset + size}"
    return select(result, _fields(query, "files"))


def _file(fake: FakeDrive, file_id: str, query: dict[str, str], need_all_drives: bool = True) -> FakeFile:
    with fake.lock:
        file = fake.files.get(file_id)
        if (
            file is None
            or not fake.visible(file)
            or (file.drive and need_all_drives and query.get("supportsAllDrives") != "true")
        ):
            raise DriveError(404, "notFound", f"File not found: {file_id}.")
    if file_id in fake.forbidden:
        raise DriveError(
            403, "insufficientFilePermissions", "The user does not have sufficient permissions for this file."
        )
    return file


def files_get(fake: FakeDrive, file_id: str, query: dict[str, str]) -> Any:
    file = _file(fake, file_id, query)
    if query.get("alt") == "media":
        if file.mime.startswith("application/vnd.google-apps."):
            raise DriveError(403, "fileNotDownloadable", "Only files with binary content can be downloaded.")
        return file.content
    return select(file.resource(), _fields(query, "file"))


def files_export(fake: FakeDrive, file_id: str, query: dict[str, str]) -> bytes:
    file = _file(fake, file_id, query, need_all_drives=False)
    if file.mime != DOC:
        raise DriveError(403, "fileNotExportable", "Export only supports Docs Editors files.")
    if query.get("mimeType") not in _doc_exports(fake):
        raise DriveError(400, "badRequest", "The requested conversion is not supported.")
    if len(file.content) > EXPORT_LIMIT:
        raise DriveError(403, "exportSizeLimitExceeded", "This file is too large to be exported.")
    if query["mimeType"] == "text/plain":  # what Docs' plain text export drops: the Markdown marks
        return re.sub(rb"(?m)^#+ ", b"", file.content)
    return file.content


def _doc_exports(fake: FakeDrive) -> list[str]:
    return DOC_EXPORTS + (["text/markdown"] if fake.markdown_export else [])


def about(fake: FakeDrive, query: dict[str, str]) -> Any:
    if not query.get("fields"):
        raise DriveError(400, "required", "The 'fields' parameter is required for this method.")
    user = {"kind": "drive#user", "displayName": "qwenbot-reader", "emailAddress": fake.email, "me": True}
    return select({"kind": "drive#about", "user": user, "exportFormats": {DOC: _doc_exports(fake)}}, _fields(query, ""))


def changes_list(fake: FakeDrive, query: dict[str, str]) -> dict[str, Any]:
    size = min(int(query.get("pageSize") or 100), fake.page_limit)
    token = query.get("pageToken", "")
    drive = _check_drive(fake, query)
    all_drives = _all_drives(query)
    with fake.lock:
        if not token.isdigit() or not 1 <= int(token) <= len(fake.changes) + 1:
            raise DriveError(400, "invalidParameter", "Invalid Value: pageToken")
        index, entries = int(token) - 1, list[dict[str, Any]]()
        while index < len(fake.changes) and len(entries) < size:
            change = fake.changes[index]
            index += 1
            if (drive and drive not in change.drives) or (not drive and change.drives and not all_drives):
                continue
            file = fake.files.get(change.file_id)
            entry: dict[str, Any] = {"kind": "drive#change", "changeType": "file", "fileId": change.file_id}
            if file is not None and fake.visible(file) and (not drive or file.drive == drive):
                entry |= {"removed": False, "time": file.modified, "file": file.resource()}
            else:
                entry |= {"removed": True, "time": "2026-01-01T00:00:00.000Z"}
            entries.append(entry)
        result: dict[str, Any] = {"kind": "drive#changeList", "changes": entries}
        if index < len(fake.changes):
            result["nextPageToken"] = str(index + 1)
        else:
            result["newStartPageToken"] = str(len(fake.changes) + 1)
    return select(result, _fields(query, "changes"))
