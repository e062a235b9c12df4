"""The git source (docs-as-code): a branch of a repository, or a folder in it, synced from its commits.

Settings (sources file):
    url        https://..., http://localhost..., ssh://... or user@host:path, git://..., file://... or an
               absolute local path; never with credentials in it (use token_env)
    branch     default: the repository's default branch
    path       a folder of the repository to sync (default: all of it); mirror paths are relative to it
    include    globs of files to sync (default: every type the indexer reads); exclude: globs to leave out.
               A glob without '/' matches a file name at any depth, with '/' the path under `path`;
               `**` spans folders.
    web_url    where people read a file, for citations: a template with {branch}, {path} (the file's path
               in the repository) and {commit}, e.g. https://git.example.com/eng/handbook/blob/{branch}/{path}
    token_env  https: the variable holding an access token (given to git through GIT_ASKPASS, never in a
               URL); username: the user name sent with it (default x-access-token; GitHub and GitLab
               accept any with a token)

A sync asks the server for the branch's tip (one `git ls-remote`): unchanged since the cursor, it is
done. Otherwise it fetches the branch into a bare clone in the work folder (no tags, full history so
each file's last commit date is right) and diffs the cursor's commit with the tip (`--raw -M`: adds,
changes, renames, deletes). A work folder without the cursor's commit (a new replica), or changed
settings, list the tip's tree instead (`listed_all`), fetching only the files whose blob differs from
what the shared state knows. cursor: the tip's commit (and the settings it was made with); version: the
blob sha. Title: left to the loader, which takes a Markdown file's front matter title or first heading,
else the file name (the mirror merges the file's own front matter); updated: the file's last commit
date; url: web_url filled in.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit

from retrieval.loaders import SUPPORTED_SUFFIXES
from retrieval.sources.base import Changes, Cursor, KnownDocument, SourceDocument
from retrieval.sources.git_command import Git
from retrieval.sources.spec import SourceSpec

KEYS = frozenset({"url", "branch", "path", "include", "exclude", "web_url", "token_env", "username"})
MAX_FILE_BYTES = 50 * 2**20  # a blob this large is no document (the indexer's own limit is lower)
_BRANCH = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._/-]{0,199}")
_SCP_LIKE = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:/.*")
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def connector(spec: SourceSpec, work_dir: Path) -> GitSource:
    """Checks the settings (one line per mistake); makes no request."""
    unknown = sorted(set(spec.settings) - KEYS)
    if unknown:
        raise spec.error(f"unknown setting {unknown[0]!r}: a git source takes {', '.join(sorted(KEYS))}")
    url = _url(spec)
    branch = spec.settings.get("branch")
    if branch is not None and (not isinstance(branch, str) or not _BRANCH.fullmatch(branch) or ".." in branch):
        raise spec.error("'branch' must be a branch name such as main or release/2.0")
    folder = spec.get("path", str, "").strip("/")
    if folder and any(p in ("", ".", "..") for p in folder.split("/")):
        raise spec.error("'path' must be a folder inside the repository, such as docs or handbook/en")
    token = None
    if spec.settings.get("token_env") is not None:
        host = urlsplit(url).hostname or ""
        if not (url.startswith("https://") or (url.startswith("http://") and host in _LOOPBACK)):
            raise spec.error("'token_env' is for https URLs only (a token is never sent in clear text)")
        token = spec.secret("token_env")
    return GitSource(
        spec,
        Git(spec, url, work_dir / "repo.git", token, spec.get("username", str, "x-access-token")),
        branch,
        folder,
        Globs(spec.strings("include"), spec.strings("exclude")),
        _web_url(spec),
    )


def _url(spec: SourceSpec) -> str:
    url = spec.get("url", str).strip()
    scheme = urlsplit(url).scheme
    if scheme in ("https", "http", "ssh", "git", "file"):
        parts = urlsplit(url)
        if parts.password is not None or (scheme in ("https", "http") and parts.username is not None):
            raise spec.error("'url' must not hold credentials: put the token in a variable named by token_env")
        if not parts.netloc and scheme != "file":
            raise spec.error("'url' has no host")
        return url
    if _SCP_LIKE.fullmatch(url) or url.startswith("/"):
        return url
    raise spec.error(
        "'url' must be https://, ssh://, user@host:path, git://, file:// or an absolute path to a repository"
    )


def _web_url(spec: SourceSpec) -> str | None:
    template = spec.settings.get("web_url")
    if template is None:
        return None
    if not isinstance(template, str) or not template.startswith(("https://", "http://")):
        raise spec.error("'web_url' must be an http(s) address template, e.g. https://host/repo/blob/{branch}/{path}")
    try:
        template.format(branch="main", path="a.md", commit="0" * 40)
    except (KeyError, IndexError, ValueError) as exc:
        raise spec.error(f"'web_url' may use {{branch}}, {{path}} and {{commit}} only (not {exc})") from None
    return template


@dataclass(frozen=True)
class Globs:
    """include / exclude globs over paths relative to the synced folder."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def match(self, rel: str) -> bool:
        return (not self.include or _matches(self.include, rel)) and not _matches(self.exclude, rel)


def _matches(globs: tuple[str, ...], rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(_glob(g).fullmatch(rel if "/" in g else name) for g in globs)


@functools.lru_cache(maxsize=256)
def _glob(glob: str) -> re.Pattern[str]:
    """A glob as a regex: `**` spans folders, `*` and `?` stay within one."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        else:
            out.append({"*": "[^/]*", "?": "[^/]"}.get(glob[i], re.escape(glob[i])))
            i += 1
    return re.compile("".join(out))


@dataclass(frozen=True)
class _Blob:
    path: str  # in the repository
    rel: str  # in the mirror (under the synced folder)
    sha: str
    doc_id: str


class GitSource:
    """One configured repository (connector(): settings checked). `changes` runs git."""

    def __init__(
        self, spec: SourceSpec, git: Git, branch: str | None, folder: str, globs: Globs, web_url: str | None
    ) -> None:
        self.spec, self.git, self.branch, self.folder = spec, git, branch, folder
        self.globs, self.web_url = globs, web_url
        self._branch = branch or ""  # the branch synced: the default one once asked
        self._notes: list[str] = []
        settings = [git.url, branch, folder, globs.include, globs.exclude, web_url]
        # what the cursor was made with: other settings list the tree again instead of diffing
        self.fingerprint = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]

    def changes(self, cursor: Cursor, known: Mapping[str, KnownDocument]) -> Changes:
        self.git.commands = 0
        self._notes = []
        tip, branch = self._tip()
        self._branch = branch
        last = cursor if isinstance(cursor, dict) and cursor.get("settings") == self.fingerprint else {}
        new_cursor = {"commit": tip, "branch": branch, "settings": self.fingerprint}
        if last.get("commit") == tip:
            return Changes(cursor=new_cursor, requests=self.git.commands)  # unchanged: one ls-remote
        self.git.fetch(branch)
        changes = self._diff(last["commit"], tip, known) if last.get("commit") else None
        if changes is None:  # no cursor, other settings, or its commit is not in this clone
            changes = self._listing(tip, known)
        changes.cursor = new_cursor
        changes.requests = self.git.commands
        changes.notes = self._notes
        return changes

    def _tip(self) -> tuple[str, str]:
        """The branch's tip commit and the branch's name (the default branch when none is set)."""
        if self.branch is not None:
            out = self.git.run("ls-remote", self.git.url, f"refs/heads/{self.branch}", remote=True)
        else:
            out = self.git.run("ls-remote", "--symref", self.git.url, "HEAD", remote=True)
        branch, tip = self.branch, None
        for line in out.decode("utf-8", errors="replace").splitlines():
            ref, _, name = line.partition("\t")
            if ref.startswith("ref: refs/heads/"):
                branch = ref.removeprefix("ref: refs/heads/")
            elif name in ("HEAD", f"refs/heads/{self.branch}"):
                tip = ref
        if tip is None or branch is None:
            what = f"branch {self.branch!r}" if self.branch else "a default branch (HEAD)"
            raise self.git.not_found(f"the repository has no {what}: check 'branch'")
        return tip, branch

    def _in_scope(self, path: str) -> str | None:
        """`path`'s mirror path when the source syncs it, else None."""
        if self.folder:
            if not path.startswith(self.folder + "/"):
                return None
            path = path[len(self.folder) + 1 :]
        parts = path.split("/")
        if not path.isprintable():
            return None  # control characters, or bytes that are not UTF-8 (git keeps names as bytes)
        if any(p.startswith(".") for p in parts) or PurePosixPath(path).suffix.lower() not in SUPPORTED_SUFFIXES:
            return None
        return path if self.globs.match(path) else None

    def _diff(self, old: str, tip: str, known: Mapping[str, KnownDocument]) -> Changes | None:
        """What changed between the cursor's commit and the tip; None when the commit is not here."""
        if not self.git.has_commit(old):
            return None
        fields = self.git.run("diff", "--raw", "-z", "-M", "--no-abbrev", old, tip, "--", self.folder or ".")
        tokens = fields.decode("utf-8", errors="surrogateescape").split("\0")
        by_path = {k.path: doc_id for doc_id, k in known.items()}
        changed: list[_Blob] = []
        deleted: list[str] = []
        i = 0
        while i < len(tokens) - 1:
            meta = tokens[i].split()
            status, renamed = meta[4][0], meta[4][0] in "RC"
            old_path, path = tokens[i + 1], tokens[i + 2] if renamed else tokens[i + 1]
            i += 3 if renamed else 2
            before = self._in_scope(old_path)
            known_id = by_path.get(before) if before is not None and status != "C" else None  # a copy keeps its source
            rel = self._in_scope(path) if status != "D" and meta[1] in ("100644", "100755") else None
            if rel is not None:  # added, changed, or renamed (keeping its doc id: the mirror moves the file)
                changed.append(_Blob(path, rel, meta[3], known_id or by_path.get(rel) or path))
            elif known_id is not None:  # deleted, moved out of scope, or no longer a plain file
                deleted.append(known_id)
        return Changes(upserts=self._documents(changed, tip, old), deleted=deleted)

    def _listing(self, tip: str, known: Mapping[str, KnownDocument]) -> Changes:
        """Every file of the tip in scope; only those the state does not know at this blob are fetched."""
        out = self.git.run("ls-tree", "-r", "-z", tip, "--", self.folder or ".")
        by_path = {k.path: doc_id for doc_id, k in known.items()}
        changed: list[_Blob] = []
        unchanged: list[str] = []
        for entry in out.decode("utf-8", errors="surrogateescape").split("\0"):
            meta, _, path = entry.partition("\t")
            mode, kind, sha = (meta.split() + ["", "", ""])[:3]
            rel = self._in_scope(path) if kind == "blob" and mode in ("100644", "100755") else None
            if rel is None:
                continue
            doc_id = by_path.get(rel, path)
            if doc_id in known and known[doc_id].version == sha and known[doc_id].path == rel:
                unchanged.append(doc_id)
            else:
                changed.append(_Blob(path, rel, sha, doc_id))
        return Changes(upserts=self._documents(changed, tip, None), listed_all=True, unchanged=unchanged)

    def _documents(self, blobs: list[_Blob], tip: str, since: str | None) -> list[SourceDocument]:
        if not blobs:
            return []
        contents = self.git.blobs([b.sha for b in blobs], MAX_FILE_BYTES)
        dates = self.git.last_changed(tip, since, self.folder)
        docs = []
        for blob in blobs:
            content = contents.get(blob.sha)
            if content is None:
                self._notes.append(f"{blob.path}: skipped: larger than {MAX_FILE_BYTES // 2**20} MB")
                continue
            url = None
            if self.web_url is not None:
                url = self.web_url.format(branch=quote(self._branch, safe="/"), path=quote(blob.path), commit=tip)
            docs.append(SourceDocument(blob.doc_id, blob.rel, "", content, url, dates.get(blob.path), version=blob.sha))
        return docs
