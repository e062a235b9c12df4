"""The thread pool the Bolt listeners run on, counting the work it holds so the bot can tell when it
is idle: for a drain before shutdown, and for tests that wait for "nothing more will happen"."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

WORKERS = 16  # questions answered at once; more wait their turn (each was acked already)


class Workers(ThreadPoolExecutor):
    def __init__(self, max_workers: int = WORKERS) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="qwenbot-answer")
        self._pending = 0
        self._changed = threading.Condition()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        with self._changed:
            self._pending += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Any) -> None:
        with self._changed:
            self._pending -= 1
            self._changed.notify_all()

    @property
    def in_flight(self) -> int:
        """Listener calls queued or running (questions being answered, buttons being handled)."""
        with self._changed:
            return self._pending

    def wait_idle(self, timeout: float) -> bool:
        """Waits until nothing is queued or running; False if that did not happen within `timeout` s."""
        with self._changed:
            return self._changed.wait_for(lambda: self._pending == 0, timeout=timeout)
