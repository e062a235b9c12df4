"""The plan step of an index run: what a run reads, decided before anything is written.

Every PATH must lie in a root (the docs folder, or a folder added by name); a PATH outside them, a bad
root name or a docs folder that is not one stops the run with a message saying what to do. Then the
files: walked in a stable order, hidden ones passed over, excluded, unsupported and secret-named ones
counted as skipped, each file once however many PATHs reach it.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from retrieval.errors import IndexRequestError
from retrieval.exclude import Exclusions
from retrieval.index_run import IndexRun, SourceFile
from retrieval.loaders import is_supported
from retrieval.manifest import DEFAULT_ROOT, RootEntry, doc_key

# A root added by name: its documents are keyed NAME/path, so a name is one plain path segment.
ROOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass
class Scope:
    """The part of one root a run indexes: the root's folder, a folder inside it, or one file."""

    root: str
    folder: Path  # the root's folder, resolved
    target: Path  # resolved, inside `folder` (or `folder` itself)
    shown: Path  # the target as the admin wrote it

    @property
    def prefix(self) -> str:
        """The key of the target: every document it covers is at or under it ("" is a whole default root)."""
        rel = self.target.relative_to(self.folder).as_posix()
        return self.root if rel == "." else doc_key(self.root, rel)


def plan(run: IndexRun, paths: list[Path], add_root: str | None, move_root: bool = False) -> list[Scope]:
    """What to index, checked before anything is written: every PATH must lie in a root. `move_root`: a
    root `add_root` recorded at another folder moves to PATH (a source's mirror, the same documents on
    every replica, each replica's mirror in a folder of its own)."""
    roots = run.roots()
    if add_root is not None:
        roots[add_root] = _add_root(run, add_root, paths, roots, move_root)
    scopes: list[Scope] = []
    if not paths:
        for name, folder in sorted(roots.items()):
            shown = run.docs_dir if name == DEFAULT_ROOT and run.docs_dir else folder
            if folder.is_dir():
                scopes.append(Scope(name, folder, folder, shown))
            elif name == DEFAULT_ROOT and run.docs_dir is not None:
                # a setting to fix, not a file that failed: nothing is counted
                raise IndexRequestError(
                    f"QWENBOT_DOCS_DIR is {run.docs_dir.absolute()}, which is not a folder: "
                    "set it to the folder that holds your documents"
                )
            else:
                where = "QWENBOT_DOCS_DIR" if name == DEFAULT_ROOT else f"root {name!r}: `--remove {name}` drops it"
                run.problem(str(shown), f"no such folder ({where})")
    outside = []
    for given in paths:
        target = absolute(given)
        if not target.exists():
            # its documents stay: a typo must not empty the index
            run.problem(str(given), "no such file or folder")
            continue
        inside = [name for name, folder in roots.items() if target.is_relative_to(folder)]
        if not inside:
            outside.append(str(given))
            continue
        name = max(inside, key=lambda n: len(roots[n].parts))  # the innermost root
        scopes.append(Scope(name, roots[name], target, given))
    if outside:
        where = f"QWENBOT_DOCS_DIR is {run.default}" if run.default is not None else "no docs folder is set"
        named = ", ".join(f"{n} ({roots[n]})" for n in sorted(roots) if n != DEFAULT_ROOT)
        raise IndexRequestError(
            f"{', '.join(outside)}: outside the indexed folders ({where}"
            + (f"; named roots: {named}" if named else "")
            + "). Move it into the docs folder, or index it as a root of its own: "
            f"qwenbot index {outside[0]} --add-root NAME"
        )
    recorded = run.manifest.roots.get(DEFAULT_ROOT)
    moved = run.default is not None and recorded is not None and Path(recorded.path) != run.default
    if moved and run.default is not None and run.default.is_dir() and recorded is not None:
        # The docs folder moved: the old one's documents must not keep answering. Keys are relative
        # to the root, so indexing the new folder in full replaces them.
        if not any(s.root == DEFAULT_ROOT and s.target == s.folder for s in scopes):
            scopes.append(Scope(DEFAULT_ROOT, run.default, run.default, run.docs_dir or run.default))
        run.stats.notes.append(
            f"QWENBOT_DOCS_DIR is now {run.default} (was {recorded.path}): indexed the new folder in full; "
            "documents that were only in the old one are removed"
        )
    return scopes


def _add_root(run: IndexRun, name: str, paths: list[Path], roots: dict[str, Path], move: bool = False) -> Path:
    """Records `paths[0]` as the root `name`, after checking it can be one (with `move`, also when
    `name` is recorded at another folder)."""
    if len(paths) != 1 or not paths[0].is_dir():
        raise IndexRequestError("--add-root NAME takes exactly one PATH, the folder to index as that root")
    folder = paths[0].resolve()
    if not ROOT_NAME.fullmatch(name):
        raise IndexRequestError(
            f"root name {name!r}: use letters, digits, '.', '_' or '-' "
            "(it becomes the first part of each document's path)"
        )
    moved_from = roots.get(name)
    if moved_from is not None:
        if moved_from == folder:
            return folder  # already that root: indexing it again is harmless
        if not move:
            raise IndexRequestError(f"root {name!r} is already {moved_from}; choose another name")
    for other, where in roots.items():
        if other != name and (folder.is_relative_to(where) or where.is_relative_to(folder)):
            label = "the docs folder (QWENBOT_DOCS_DIR)" if other == DEFAULT_ROOT else f"root {other!r}"
            raise IndexRequestError(f"{paths[0]} overlaps {label} at {where}; a file belongs to one root only")
    collides = run.manifest.keys_under(DEFAULT_ROOT, name) or (
        run.default is not None and (run.default / name).exists()
    )
    if moved_from is None and collides:
        raise IndexRequestError(
            f"root name {name!r} is also a folder in the docs folder, so document paths would collide; "
            "choose another name"
        )
    run.manifest.roots[name] = RootEntry(str(folder))
    run.save_manifest()
    if moved_from is not None:
        run.stats.notes.append(f"root {name!r} moved from {moved_from} to {folder}")
    else:
        run.stats.notes.append(f"added root {name!r} ({folder}): its documents are keyed {name}/...")
    return folder


def discover(run: IndexRun, scopes: list[Scope]) -> list[SourceFile]:
    """Supported files in every scope, each once; unsupported and refused ones are counted as skipped,
    excluded ones passed over (or, named in a PATH, skipped)."""
    files: dict[str, SourceFile] = {}
    for scope in scopes:
        exclusions = run.exclusions(scope.root)

        def kept(path: Path, is_dir: bool, scope: Scope = scope, exclusions: Exclusions = exclusions) -> bool:
            return exclusions.match(path.relative_to(scope.folder).as_posix(), is_dir) is None

        if scope.target.is_file():
            candidates = [(scope.target, scope.shown)]
        else:
            candidates = [(path, scope.shown / rel) for path, rel in _walk(scope.target, kept)]
        for path, shown in candidates:
            rel = path.relative_to(scope.folder).as_posix()
            key = doc_key(scope.root, rel)
            if key in files:
                continue  # the same file reached through two PATHs
            source = SourceFile(scope.root, key, path, str(shown))
            if (rule := exclusions.match(rel)) is not None:
                run.excluded.add(key)
                run.skip(source, f"excluded by {rule.pattern!r} in {rule.source}")
                continue
            if not is_supported(path):
                run.skip(source, f"unsupported file type ({path.suffix or 'no suffix'})")
                continue
            refusal = _refusal(path, scope.folder, run.config.follow_symlinks_outside)
            if refusal is None:
                files[key] = source
            else:
                run.skip(source, refusal)
    return list(files.values())


# Key material and credentials: never indexed, whatever their suffix says, nor through a link.
_SECRET_NAMES = ("id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "credentials*", ".env*", ".netrc*", ".pgpass*")
_SECRET_SUFFIXES = frozenset({".env", ".pem", ".key", ".p12", ".pfx", ".jks", ".keystore", ".ppk"})


def _refusal(path: Path, root: Path, follow_outside: bool) -> str | None:
    """Why the file at `path` (found under `root`, resolved) must not be read; None when it may be."""
    real = path.resolve()
    if not follow_outside and not real.is_relative_to(root):
        return "a link to a file outside the indexed folder (QWENBOT_FOLLOW_SYMLINKS_OUTSIDE=true allows it)"
    for name in {path.name.lower(), real.name.lower()}:
        if any(fnmatch.fnmatch(name, p) for p in _SECRET_NAMES) or set(Path(name).suffixes) & _SECRET_SUFFIXES:
            return f"named like a secret ({name}); key material and credentials are never indexed"
    return None


def absolute(path: Path) -> Path:
    """`path` with its folder resolved: a link to a file keeps its own name (and key), and is checked as
    a link when read; a folder resolves like the roots do."""
    return path.resolve() if path.is_dir() else path.parent.resolve() / path.name


def _walk(root: Path, kept: Callable[[Path, bool], bool]) -> Iterator[tuple[Path, str]]:
    """Files under `root` in a stable order, with their POSIX paths relative to it. Hidden files and
    folders (.git, .DS_Store) are not documents, nor what `kept(path, is_dir)` refuses (an exclusion):
    both are passed over without being counted."""
    for folder, dirs, names in os.walk(root):
        base = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and kept(base / d, True))
        prefix = base.relative_to(root).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        for name in sorted(names):
            if not name.startswith(".") and kept(base / name, False):
                yield base / name, prefix + name
