"""The bot's two thread pools, with one count of the work they hold so the bot can tell when it is
idle: for a drain before shutdown, and for tests that wait for "nothing more will happen".

Slack waits 3 s for the ack of a slash command, a click or a modal, and that ack is called by the
listener, so listeners must never wait behind answers (which take seconds to minutes each). Bolt runs
every listener on `listeners`: it acks, does what must follow at once (the 👎 modal opens while its
trigger id is still valid), and hands a question to `offer`, the answer pool."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

ANSWER_THREADS = 16  # questions answered at once; more wait their turn (each was acked already)
WAITING_LIMIT = 1000  # questions waiting for an answer thread; past this, the asker is told to ask later
LISTENER_THREADS = 32  # listener calls at once: acks, clicks, modals, commands; each is short


class _Pool(ThreadPoolExecutor):
    """A thread pool counting the calls it holds (queued or running) in its `Workers`."""

    def __init__(self, workers: Workers, threads: int, name: str) -> None:
        super().__init__(max_workers=threads, thread_name_prefix=name)
        self.threads = threads
        self.pending = 0
        self._workers = workers

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        with self._workers.changed:
            self.pending += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Any) -> None:
        with self._workers.changed:
            self.pending -= 1
            self._workers.changed.notify_all()


class Workers:
    def __init__(
        self,
        answer_threads: int = ANSWER_THREADS,
        waiting_limit: int = WAITING_LIMIT,
        listener_threads: int = LISTENER_THREADS,
    ) -> None:
        self.changed = threading.Condition()
        self.waiting_limit = waiting_limit
        self.listeners = _Pool(self, listener_threads, "qwenbot-listener")  # Bolt's listener_executor
        self._answers = _Pool(self, answer_threads, "qwenbot-answer")

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Answering work the bot took on itself (a question resumed from a replica that died): never refused."""
        return self._answers.submit(fn, *args, **kwargs)

    def offer(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Queues a question's answering; False, queueing nothing, when `waiting_limit` already wait."""
        with self.changed:
            if self._answers.pending - self._answers.threads >= self.waiting_limit:
                return False
            self._answers.submit(fn, *args, **kwargs)  # the lock is reentrant: counted before it is released
        return True

    @property
    def in_flight(self) -> int:
        """Calls queued or running on either pool (questions being answered, buttons being handled)."""
        with self.changed:
            return self.listeners.pending + self._answers.pending

    def wait_idle(self, timeout: float) -> bool:
        """Waits until nothing is queued or running; False if that did not happen within `timeout` s.
        A listener hands its question over before it ends, so the count never drops to 0 in between."""
        with self.changed:
            return self.changed.wait_for(lambda: self.listeners.pending + self._answers.pending == 0, timeout)

    def shutdown(self, wait: bool = True) -> None:
        self.listeners.shutdown(wait=wait)
        self._answers.shutdown(wait=wait)
