"""Learned answers: what an expert answered in an escalated thread, saved as a document the bot cites.

The state store holds them (every replica has them); each replica mirrors them into the `learned`
root's folder (`<QWENBOT_SOURCES_DIR>/learned/mirror`, a Markdown file with front matter each: title,
url = the thread's permalink, updated, owner = the expert, status) and has it indexed at once, so the
next question is answered from a saved answer with no restart and no re-index. An expired or removed
answer is archived (demoted and labelled, as archived docs are) or taken out of the index."""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from bot.state.knowledge import Knowledge, LearnedAnswer, NewLearned
from retrieval.sources.base import SourceDocument
from retrieval.sources.config import LEARNED_ROOT
from retrieval.sources.mirror import remove_document, render, write_file

log = logging.getLogger(__name__)

QUESTION_LIMIT = 300  # characters of a learned answer's question (its title)
ANSWER_LIMIT = 6000  # characters of its answer
_SLUG = re.compile(r"[^a-z0-9]+")

KEEP_UP_SECONDS = 60.0  # how often each replica brings its mirror up to date and archives expired answers
Index = Callable[[Path], object]  # indexes the mirror folder as the `learned` root; raises when it fails


@dataclass(frozen=True)
class LearnedConfig:
    mirror: Path  # the `learned` root's folder
    expiry_days: int  # QWENBOT_LEARNED_EXPIRY_DAYS: a saved answer is archived after this; 0: never


def mirror_path(answer: LearnedAnswer) -> str:
    """Its file in the mirror: under its scope's folder, readable in `qwenbot index --list`."""
    slug = _SLUG.sub("-", answer.question.lower()).strip("-")[:60].strip("-") or "answer"
    return f"{answer.scope}/{answer.id}-{slug}.md"


def document_key(answer: LearnedAnswer) -> str:
    """Its document's path in the index (what citations and the sources table name)."""
    return f"{LEARNED_ROOT}/{mirror_path(answer)}"


def _day(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).date().isoformat()


def as_document(answer: LearnedAnswer) -> SourceDocument:
    """The Markdown document a learned answer is mirrored as."""
    author_name = answer.author_name or "an expert"
    body = (
        f"# {answer.question}\n\n{answer.answer}\n\n"
        f"_Answered by {author_name} in a Slack thread on {_day(answer.created)}; saved as an answer._\n"
    )
    return SourceDocument(
        doc_id=str(answer.id),
        path=mirror_path(answer),
        title=f"{answer.question} (answered by {author_name})",
        content=body.encode("utf-8"),
        url=answer.permalink,
        updated=_day(answer.created),
        owner=author_name,
        status="archived" if answer.status == "archived" else None,
    )


class LearnedAnswers:
    """Saves, archives and removes learned answers: in the state store, then the mirror, then the index.
    `known_scopes`: the scope keys the channel scopes file has now (None: all)."""

    def __init__(
        self,
        config: LearnedConfig,
        knowledge: Knowledge,
        index: Index,
        known_scopes: Callable[[], set[str]] | None = None,
    ) -> None:
        self.config = config
        self.knowledge = knowledge
        self.index = index
        self.known_scopes = known_scopes  # None: every scope key is mirrored
        self._lock = threading.Lock()  # one mirror change at a time in this process

    def expires(self, now: float) -> float | None:
        return now + self.config.expiry_days * 86400 if self.config.expiry_days > 0 else None

    def save(self, new: NewLearned) -> LearnedAnswer:
        learned_id = self.knowledge.add_learned(new)
        self.refresh()
        saved = self.knowledge.learned(learned_id)
        assert saved is not None  # just written
        log.info("learned answer %d saved (scope %s)", learned_id, new.scope)
        return saved

    def remove(self, learned_id: int) -> bool:
        """Takes it out of the answers (kept in the store as removed); False when there is none to remove."""
        if not self.knowledge.set_status(learned_id, "removed"):
            return False
        self.refresh()
        log.info("learned answer %d removed", learned_id)
        return True

    def expire(self) -> list[int]:
        """Archives the learned answers past their expiry; returns their ids."""
        expired = self.knowledge.expire()
        if expired:
            self.refresh()
            log.info("%d learned answers expired and archived", len(expired))
        return expired

    def refresh(self) -> bool:
        """Makes the mirror what the store says (written, rewritten, removed), then indexes it when
        anything changed; True when it did. A replica that never saved one gets them all here."""
        with self._lock:
            changed = self._restore(self.knowledge.learned_answers())
            if changed:
                self.index(self.config.mirror)
            return changed

    def _restore(self, answers: Iterable[LearnedAnswer]) -> bool:
        mirror = self.config.mirror
        known = self.known_scopes() if self.known_scopes is not None else None
        wanted = {}
        for answer in answers:
            if known is not None and answer.scope not in known:
                continue  # its scope left the scopes file: cited nowhere rather than somewhere else
            file = render(as_document(answer))
            wanted[file.path] = file
        changed = False
        if wanted:
            mirror.mkdir(parents=True, exist_ok=True)
        for path, file in wanted.items():
            if _bytes(mirror / path) != file.data:  # the path is ours (scope key, id, slug): no link to fear
                write_file(mirror, file)
                changed = True
        on_disk_files = mirror.rglob("*.md") if mirror.is_dir() else []
        for stale in sorted(p.relative_to(mirror).as_posix() for p in on_disk_files):
            if stale not in wanted:
                remove_document(mirror, stale)
                changed = True
        return changed


def _bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def keep_up(learned: LearnedAnswers, stop: threading.Event, interval: float = KEEP_UP_SECONDS) -> None:
    """On every replica: the mirror follows the store (answers saved or removed by another replica)
    and expired answers are archived, checked every `interval` seconds until `stop`."""
    while True:
        try:
            learned.refresh()
            learned.expire()
        except Exception:
            log.exception("keeping the learned answers up to date failed; trying again in %g s", interval)
        if stop.wait(interval):
            return
