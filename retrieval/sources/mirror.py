"""A source's mirror folder: the files a sync writes for the indexer to index as the source's root.

A Markdown document is written with its metadata as YAML front matter. A file that already has front
matter (a Markdown file in a git repository) keeps it: its own keys win, and the source's metadata only
fills the keys it lacks (the author's `title` or `url` stand; a connector's `url` and `updated` are added
when absent). Front matter that does not parse is left as it is, for the indexer to report.

Other types (.pdf, .html, .rst, .txt) keep their bytes; their metadata goes in a hidden sidecar beside
them, `.<file name>.meta.yml` (retrieval/loaders.py reads it, and the indexer's walk passes hidden files
over, so a sidecar is never a document). There the sidecar's keys win: those formats carry little
reliable metadata of their own (a PDF's title is often "Microsoft Word - doc1"), and the connector's
come from the source's record of the document.

Every value is untrusted (it comes from the source): one bounded line each, dumped by yaml.safe_dump.
Paths are checked: relative, no `..`, no hidden part, a suffix the indexer reads, and no symlink
leading out of the mirror. Writes are atomic (a temporary file, then os.replace).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from retrieval.errors import LoadError, UnsafePathError
from retrieval.formats.front_matter import TAG_LIMIT, TAGS_LIMIT, TEXT_LIMIT, URL_LIMIT, one_line, read_front_matter
from retrieval.loaders import SUPPORTED_SUFFIXES, sidecar_path
from retrieval.sources.base import SourceDocument

_MARKDOWN = frozenset({".md", ".markdown"})
_PATH_LIMIT = 512  # characters of a mirror path: far beyond a readable one


@dataclass(frozen=True)
class MirroredFile:
    """What a document becomes in the mirror: its file's bytes, and its sidecar's (non-Markdown)."""

    path: str
    data: bytes
    sidecar: bytes | None = None

    @property
    def hash(self) -> str:
        """sha256 of the bytes written (the file's, then its sidecar's)."""
        return hashlib.sha256(self.data + (self.sidecar or b"")).hexdigest()


def write_document(mirror: Path, doc: SourceDocument) -> str:
    """Writes `doc` into `mirror`; returns the sha256 of the bytes written."""
    mirrored = render(doc)
    write_file(mirror, mirrored)
    return mirrored.hash


def remove_document(mirror: Path, path: str) -> None:
    """Removes the file at `path` and its sidecar, then the folders this leaves empty."""
    target = _target(mirror, path)
    for file in (target, sidecar_path(target)):
        file.unlink(missing_ok=True)
    _prune_empty(mirror, target.parent)


def render(doc: SourceDocument) -> MirroredFile:
    """The bytes `doc` is mirrored as (its path checked)."""
    check_path(doc.path)
    meta = _metadata(doc)
    if PurePosixPath(doc.path).suffix.lower() not in _MARKDOWN:
        return MirroredFile(doc.path, doc.content, _dump(meta).encode("utf-8") if meta else None)
    return MirroredFile(doc.path, _with_front_matter(doc.content, meta))


def write_file(mirror: Path, file: MirroredFile) -> None:
    """Writes a rendered document (and its sidecar, or removes a stale one) atomically."""
    target = _target(mirror, file.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _target(mirror, file.path)  # again: a folder just made must not be a link out either
    _write_atomic(target, file.data)
    if file.sidecar is None:
        sidecar_path(target).unlink(missing_ok=True)
    else:
        _write_atomic(sidecar_path(target), file.sidecar)


def check_path(path: str) -> None:
    """Raises UnsafePathError unless `path` is a plain relative POSIX path the indexer will read."""
    parts = path.split("/")
    problem = None
    if not path or len(path) > _PATH_LIMIT or "\\" in path or not path.isprintable():
        problem = f"must be a relative path of 1 to {_PATH_LIMIT} printable characters, with '/' between folders"
    elif path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        problem = "must be relative, without '..', '.' or empty parts"
    elif any(p.startswith(".") for p in parts):
        problem = "has a hidden part (starting with '.'), which the indexer passes over"
    elif PurePosixPath(path).suffix.lower() not in SUPPORTED_SUFFIXES:
        problem = f"must end in one of {', '.join(sorted(SUPPORTED_SUFFIXES))}"
    if problem is not None:
        raise UnsafePathError(f"mirror path {shown(one_line(path, 80))!r} {problem}")


def shown(text: str) -> str:
    """`text` safe to log and store: bytes that were not UTF-8 (surrogates) as backslash escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _target(mirror: Path, path: str) -> Path:
    """`path` inside the mirror, refused when it (or a link on the way) leads out of it."""
    check_path(path)
    root = mirror.resolve()
    target = root / path
    if not target.parent.resolve().is_relative_to(root):
        raise UnsafePathError(f"mirror path {path!r} goes through a link out of the mirror; refused")
    return target  # a link at `target` itself is replaced by a write (os.replace), never followed


def _metadata(doc: SourceDocument) -> dict[str, Any]:
    """The document's metadata as front matter keys, each value one bounded line (untrusted)."""
    meta: dict[str, Any] = {}
    for key, value, limit in (("title", doc.title, TEXT_LIMIT), ("owner", doc.owner, TEXT_LIMIT)):
        if value and (text := one_line(value, limit)):
            meta[key] = text
    url = one_line(doc.url or "", URL_LIMIT + 1)
    if url and len(url) <= URL_LIMIT:  # longer is no real address: dropped rather than cut into a wrong one
        meta["url"] = url
    if doc.updated and _is_iso(updated := one_line(doc.updated, 40)):
        meta["updated"] = updated  # anything else would fail the document in the loader: left out
    tags = [t for t in dict.fromkeys(one_line(t, TAG_LIMIT) for t in doc.tags) if t][:TAGS_LIMIT]
    if tags:
        meta["tags"] = tags
    if doc.status and (status := one_line(doc.status, TEXT_LIMIT)):
        meta["status"] = status
    return meta


def _is_iso(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _with_front_matter(content: bytes, meta: dict[str, Any]) -> bytes:
    """Markdown with `meta` merged into its front matter (the file's own keys win)."""
    try:
        own, body = read_front_matter(content.decode("utf-8-sig", errors="replace").replace("\r\n", "\n"))
    except LoadError:
        return content  # the file's own mistake: the indexer reports it for this file
    merged = {**meta, **own}
    return f"---\n{_dump(merged)}---\n{body}".encode() if merged else content


def _dump(meta: dict[str, Any]) -> str:
    # width: no folded lines, so each key stays on one line (and no line of a value can read as '---')
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1_000_000, default_flow_style=False)


def _write_atomic(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _prune_empty(mirror: Path, folder: Path) -> None:
    root = mirror.resolve()
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): stop climbing
            return
        folder = folder.parent
