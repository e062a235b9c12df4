"""Taking documents out of the index: `qwenbot index --remove` targets, `--prune` (files no longer in
their roots), and the files an index run found gone from the folders it walked.

A document whose file is still in its root (and not excluded) is not removed: the next run would add it
back, so the request is refused with the exclusion line that keeps it out for good.
"""

from __future__ import annotations

from pathlib import Path

from retrieval.errors import IndexRequestError
from retrieval.exclude import IGNORE_FILE, SETTING
from retrieval.index_plan import Scope, absolute
from retrieval.index_run import IndexRun
from retrieval.manifest import DEFAULT_ROOT, doc_key, is_under
from retrieval.models import IndexStats
from retrieval.store import PAGE


def remove_targets(run: IndexRun, targets: list[str]) -> IndexStats:
    """Removes the documents each target names (Indexer.remove says what a target can be)."""
    keys: set[str] = set()
    forget: set[str] = set()
    for target in targets:
        found, root, prefix = _resolve(run, target)
        if not found and root is None:
            raise IndexRequestError(
                f"{target}: nothing indexed there (give a file or folder inside a root, a root's folder "
                "or name, or a document path as sources show it; `qwenbot index --list` shows the roots)"
            )
        if root is None or root == DEFAULT_ROOT:  # a named root as a whole is forgotten: never read again
            _refuse_if_on_disk(run, target, found, prefix)
        keys.update(found)
        if root is not None and root != DEFAULT_ROOT:
            forget.add(root)
    _drop(run, sorted(keys))
    for key in [k for k in run.manifest.failures if any(is_under(k, t) for t in keys)]:
        del run.manifest.failures[key]
    for name in forget:
        run.manifest.roots.pop(name, None)
        run.manifest.failures = {k: f for k, f in run.manifest.failures.items() if f.root != name}
        run.stats.notes.append(f"root {name!r} forgotten: `qwenbot index` no longer reads it")
    run.save_manifest()
    run.reconcile()
    return run.stats


def _resolve(run: IndexRun, target: str) -> tuple[list[str], str | None, str]:
    """The keys a --remove target names, the root when it names a whole one, and the document or
    folder key it names."""
    path = absolute(Path(target))
    folders = list(run.roots().items())
    recorded = run.manifest.roots.get(DEFAULT_ROOT)
    if recorded is not None:  # the docs folder indexed last, should QWENBOT_DOCS_DIR have moved since
        folders.append((DEFAULT_ROOT, Path(recorded.path)))
    for name, folder in sorted(folders, key=lambda item: -len(item[1].parts)):
        if path.is_relative_to(folder):
            rel = path.relative_to(folder).as_posix()
            if rel == ".":
                return run.manifest.keys_under(name), name, name
            prefix = doc_key(name, rel)
            return run.manifest.keys_under(name, prefix), None, prefix
    if target in run.manifest.roots and target != DEFAULT_ROOT:
        return run.manifest.keys_under(target), target, target
    prefix = target.strip("/")
    return [k for k in run.manifest.files if prefix and is_under(k, prefix)], None, prefix


def _refuse_if_on_disk(run: IndexRun, target: str, keys: list[str], prefix: str) -> None:
    """Removing a document whose file is still in its root, not excluded, would last until the next
    run: refused, with the line that keeps it out for good."""
    on_disk = [key for key in keys if _on_disk(run, key)]
    if not on_disk:
        return
    root = run.manifest.files[on_disk[0]].root
    rel = prefix if root == DEFAULT_ROOT else prefix.removeprefix(root).lstrip("/")
    ignore = run.roots()[root] / IGNORE_FILE
    if not rel:
        raise IndexRequestError(
            f"{target} is the docs folder itself, whose files are indexed while they are there; nothing "
            f"removed. Point QWENBOT_DOCS_DIR at another folder, or exclude files in {ignore} or {SETTING}"
        )
    where = "the docs folder" if root == DEFAULT_ROOT else f"root {root!r}"
    one = on_disk == [prefix]  # the target is that document, not a folder holding it
    n = len(on_disk)
    what = f"{target} is" if one else f"{target}: {n} of its documents {'is' if n == 1 else 'are'}"
    them = "it" if n == 1 else "them"
    raise IndexRequestError(
        f"{what} still in {where}, so the next `qwenbot index` would add {them} back; nothing removed. "
        f"Delete {them}, or exclude {them}: add the line `{rel if one else rel + '/'}` to {ignore} "
        f"(or to {SETTING}), then run `qwenbot index`, which removes {them}"
    )


def _on_disk(run: IndexRun, key: str) -> bool:
    """Whether the document's file is in its root, and not excluded: the next run would index it."""
    entry = run.manifest.files[key]
    folder = run.roots().get(entry.root)
    rel = key if entry.root == DEFAULT_ROOT else key.removeprefix(f"{entry.root}/")
    return folder is not None and (folder / rel).is_file() and run.exclusions(entry.root).match(rel) is None


def prune_vanished(run: IndexRun) -> IndexStats:
    """Removes the documents whose files are no longer in their roots, the failures of files that are
    gone, and the named roots whose folder is gone."""
    roots = run.roots()
    gone = []
    for key, entry in run.manifest.files.items():
        folder = roots.get(entry.root)
        rel = key if entry.root == DEFAULT_ROOT else key.removeprefix(f"{entry.root}/")
        if folder is None or not (folder / rel).is_file():
            gone.append(key)
    _drop(run, gone)
    for key, failure in list(run.manifest.failures.items()):
        if not Path(failure.path).is_file():
            del run.manifest.failures[key]
    for name in [n for n in run.manifest.roots if n != DEFAULT_ROOT and not roots[n].is_dir()]:
        del run.manifest.roots[name]
        run.stats.notes.append(f"root {name!r} forgotten: its folder {roots[name]} is gone")
    run.save_manifest()
    run.reconcile()
    return run.stats


def remove_missing(run: IndexRun, scopes: list[Scope], seen: set[str]) -> None:
    """Documents in a folder this run walked whose files are no longer there (or no longer read)."""
    gone = {key for s in scopes if s.target.is_dir() for key in run.manifest.keys_under(s.root, s.prefix)}
    _drop(run, sorted((gone - seen) | (run.excluded & run.manifest.files.keys())))


def _drop(run: IndexRun, keys: list[str]) -> None:
    """Deletes these documents' chunks, then their manifest entries."""
    if not keys:
        return
    run.touch()
    ids = [cid for key in keys for cid in run.manifest.files[key].chunk_ids]
    for start in range(0, len(ids), PAGE):
        run.collection.delete(ids=ids[start : start + PAGE])
    for key in keys:
        run.gone.append((key, run.manifest.files.pop(key).hash))
    run.stats.removed += len(keys)
    run.stats.removals.extend(keys)
    run.save_manifest()
