"""What the index holds: its roots, file by file (document key -> content hash, root, chunk ids,
embedding model), and the files that failed.

A document's key is its path inside its root, POSIX: `hr/leave.md` in the default root (the configured
docs folder), `NAME/hr/leave.md` in a root added by name. The key is the document path searches filter
on and sources show, and chunk ids derive from it, so indexing a root, a folder in it or one of its files
always lands on the same keys.

Written atomically (temp file + os.replace) so a crash leaves either the old or the new manifest,
never half of one. The indexer writes it only after a file's chunks are in Chroma, so the manifest
never claims more than the collection holds; anything the collection holds beyond it is removed by
the indexer's reconcile step.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from retrieval.errors import ManifestError

# v1 (before roots): an entry's `root` was the absolute PATH it was indexed through and its key was
# relative to that PATH. It is still read; `adopt_legacy` (below) moves such entries into roots.
MANIFEST_VERSION = 2
DEFAULT_ROOT = ""  # the name of the configured docs folder's root (QWENBOT_DOCS_DIR); its keys have no prefix


@dataclass
class FileEntry:
    root: str  # the root's name (from a v1 manifest: the absolute PATH the file was indexed through)
    hash: str  # sha256 of the file's bytes
    chunk_ids: list[str]
    model: str
    text_hashes: list[str] = field(default_factory=list)  # sha1 of each chunk's embedded text, as chunk_ids
    # For `qwenbot index --list`; None in entries written before they were recorded.
    title: str | None = None
    updated: str | None = None  # the document's own date (front matter `updated`), ISO
    indexed_at: str | None = None  # ISO time this content was indexed


@dataclass
class RootEntry:
    path: str  # absolute folder; for the default root, the docs folder of the last full run
    indexed_at: str | None = None  # ISO time of the last run that indexed any part of it


@dataclass
class Failure:
    """A file that could not be indexed, remembered so that the next run can tell a new failure from
    one that is still there because nobody touched the file."""

    root: str
    path: str  # absolute file path, for messages
    reason: str
    hash: str | None  # of the file when it failed; None when it could not even be read
    since: str  # ISO time of the first run that saw it fail like this


@dataclass
class Manifest:
    embedding_model: str | None = None
    files: dict[str, FileEntry] = field(default_factory=dict)  # document key -> entry
    roots: dict[str, RootEntry] = field(default_factory=dict)  # root name -> folder
    failures: dict[str, Failure] = field(default_factory=dict)  # document key -> why it is not indexed

    def text_hashes(self) -> set[str]:
        return {h for entry in self.files.values() for h in entry.text_hashes}

    def expected_ids(self) -> set[str]:
        return {cid for entry in self.files.values() for cid in entry.chunk_ids}

    def keys_under(self, root: str, prefix: str = "") -> list[str]:
        """Keys of the root's documents under the folder key `prefix` (all of them when empty)."""
        return [key for key, entry in self.files.items() if entry.root == root and is_under(key, prefix)]


def doc_key(root: str, rel: str) -> str:
    """The document key of the file at `rel` (POSIX, relative to the root's folder) in root `root`."""
    return rel if root == DEFAULT_ROOT else f"{root}/{rel}"


def is_under(key: str, prefix: str) -> bool:
    """Whether `key` is the document or folder key `prefix`, or inside it ("" holds everything)."""
    return not prefix or key == prefix or key.startswith(prefix + "/")


def load_manifest(path: Path) -> Manifest | None:
    """The manifest at `path`, or None when there is none yet."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ManifestError(
            f"cannot read the index manifest {path} ({exc}); delete it and run `qwenbot index` again: "
            "it is rebuilt from the collection"
        ) from None
    version = raw.get("version")
    if version not in (1, MANIFEST_VERSION):
        raise ManifestError(f"{path}: unknown manifest version {version!r}; delete it to rebuild it")
    return Manifest(
        embedding_model=raw.get("embedding_model"),
        files={p: FileEntry(**entry) for p, entry in raw.get("files", {}).items()},
        roots={name: RootEntry(**entry) for name, entry in raw.get("roots", {}).items()},
        failures={p: Failure(**entry) for p, entry in raw.get("failures", {}).items()},
    )


def save_manifest(manifest: Manifest, path: Path) -> None:
    data = {
        "version": MANIFEST_VERSION,
        "embedding_model": manifest.embedding_model,
        "roots": {name: asdict(entry) for name, entry in sorted(manifest.roots.items())},
        "files": {p: asdict(entry) for p, entry in sorted(manifest.files.items())},
        "failures": {p: asdict(entry) for p, entry in sorted(manifest.failures.items())},
    }
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, separators=(",", ":"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def adopt_legacy(manifest: Manifest, default: Path | None) -> list[str]:
    """Moves entries of a manifest from before roots (their `root` is the absolute PATH they were indexed
    through) into roots, keeping their keys and chunks: a file inside the docs folder joins the default
    root, any other folder becomes a root named after it. A key that is not the file's path inside its
    root (the duplicates `qwenbot index FOLDER/file.md` used to make) is not found by the next run over
    that root, which removes it, or shows it as a rename to the right key; no text is embedded again.
    Returns notes for the admin."""
    named: dict[Path, str] = {}
    moved = 0
    for key, entry in manifest.files.items():
        through = Path(entry.root)
        if not through.is_absolute():
            continue
        moved += 1
        file = through if through.name == key and not through.is_dir() else through / key
        if default is not None and file.is_relative_to(default):
            entry.root = DEFAULT_ROOT
            manifest.roots.setdefault(DEFAULT_ROOT, RootEntry(str(default)))
            continue
        folder = through if file != through else through.parent
        if folder not in named:
            base = re.sub(r"[^A-Za-z0-9._-]", "-", folder.name).lstrip("._-") or "root"
            name, n = base, 1
            while name in manifest.roots:
                n += 1
                name = f"{base}-{n}"
            manifest.roots[name] = RootEntry(str(folder))
            named[folder] = name
        entry.root = named[folder]
    notes = [f"the index predates roots: {moved} documents moved into roots"] if moved else []
    notes.extend(
        f"documents indexed from {folder}, outside the docs folder, are kept as root {name!r}: "
        f"`qwenbot index` re-keys them as {name}/..., `qwenbot index --remove {name}` drops them"
        for folder, name in named.items()
    )
    return notes
