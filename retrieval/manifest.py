"""What the index holds, file by file: path -> content hash, root, chunk ids, embedding model.

Written atomically (temp file + os.replace) so a crash leaves either the old or the new manifest,
never half of one. The indexer writes it only after a file's chunks are in Chroma, so the manifest
never claims more than the collection holds; anything the collection holds beyond it is removed by
the indexer's reconcile step.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from retrieval.errors import ManifestError

MANIFEST_VERSION = 1


@dataclass
class FileEntry:
    root: str  # the absolute indexed PATH (folder or file) this document was found under
    hash: str  # sha256 of the file's bytes
    chunk_ids: list[str]
    model: str
    text_hashes: list[str] = field(default_factory=list)  # sha1 of each chunk's embedded text, as chunk_ids


@dataclass
class Manifest:
    embedding_model: str | None = None
    files: dict[str, FileEntry] = field(default_factory=dict)  # document path -> entry

    def text_hashes(self) -> set[str]:
        return {h for entry in self.files.values() for h in entry.text_hashes}

    def expected_ids(self) -> set[str]:
        return {cid for entry in self.files.values() for cid in entry.chunk_ids}

    def paths_under(self, root: str) -> list[str]:
        return [path for path, entry in self.files.items() if entry.root == root]


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
    if raw.get("version") != MANIFEST_VERSION:
        raise ManifestError(f"{path}: unknown manifest version {raw.get('version')!r}; delete it to rebuild it")
    files = {p: FileEntry(**entry) for p, entry in raw.get("files", {}).items()}
    return Manifest(embedding_model=raw.get("embedding_model"), files=files)


def save_manifest(manifest: Manifest, path: Path) -> None:
    data = {
        "version": MANIFEST_VERSION,
        "embedding_model": manifest.embedding_model,
        "files": {p: asdict(entry) for p, entry in sorted(manifest.files.items())},
    }
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, separators=(",", ":"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
