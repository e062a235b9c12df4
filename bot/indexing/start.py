"""A starting bot and its index: the local index lock, held for the bot's lifetime (a Chroma folder
is single-process), waited for while a `qwenbot index` in a terminal holds it; and indexing at start."""

from __future__ import annotations

import logging
import time

from bot.indexing.control import BotConnection, ControlError
from bot.indexing.service import IndexService
from retrieval.config import IndexConfig
from retrieval.errors import IndexLockedError
from retrieval.store import IndexLock, acquire_index_lock, lock_holder

log = logging.getLogger(__name__)

INDEX_WAIT_SECONDS = 0.5  # how often a starting bot tries the index lock while another process holds it


def take_index_lock(config: IndexConfig) -> IndexLock:
    """The local index's lock. While a `qwenbot index` in a terminal holds it, the bot waits for that
    job to end (it runs until done); another bot serving the index is refused at once."""
    waiting = False
    while True:
        try:
            return acquire_index_lock(config)
        except IndexLockedError:
            holder = lock_holder(config)
            if _serves_control(config, holder):
                raise IndexLockedError(
                    f"the index in {config.index_dir} is served by another bot (pid {holder}); a local "
                    "index folder serves one bot: stop that one, or use a Chroma server (QWENBOT_CHROMA_HOST)"
                ) from None
            if not waiting:
                log.warning(
                    "the index in %s is in use by process %s (a `qwenbot index` in a terminal?): "
                    "waiting for it to finish before starting",
                    config.index_dir,
                    holder,
                )
                waiting = True
        time.sleep(INDEX_WAIT_SECONDS)


def _serves_control(config: IndexConfig, pid: str) -> bool:
    """Whether the process holding the index is a bot: one answers on the control channel."""
    try:
        BotConnection(config.index_dir, pid).stats()
    except (ControlError, OSError, ValueError):
        return False
    return True


def index_at_start(service: IndexService) -> None:
    """QWENBOT_INDEX_ON_START: the docs indexed once as the bot starts, on a thread of its own, so the bot
    connects at once and answers from the index as it is meanwhile (one replica of those starting together)."""
    service.reindex_alone("at start")
