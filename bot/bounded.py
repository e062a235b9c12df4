"""A slow check (a network call) that callers wait for at most a few seconds, and that never runs more
than once at a time: for `/qwenbot status`, which anyone can send as often as they like."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Run(Generic[T]):
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None


class BoundedCheck(Generic[T]):
    """`check()` on a thread of its own, waited for at most `timeout` s from the time it started.
    Callers while it runs share it (and its result); when it outlasts `timeout`, they get `late(s)`
    at once, s being how long it has run, until it ends: no second one starts meanwhile.
    `check` must not raise: what failed is part of its result."""

    def __init__(self, check: Callable[[], T], timeout: float, late: Callable[[float], T]) -> None:
        self._check = check
        self.timeout = timeout
        self._late = late
        self._lock = threading.Lock()
        self._run: _Run[T] | None = None

    def __call__(self) -> T:
        with self._lock:
            run = self._run
            if run is None or run.done.is_set():
                run = self._run = _Run(time.monotonic())
                threading.Thread(target=self._do, args=(run,), name="qwenbot-check", daemon=True).start()
        if run.done.wait(max(0.0, run.started + self.timeout - time.monotonic())) and run.result is not None:
            return run.result
        return self._late(time.monotonic() - run.started)

    def _do(self, run: _Run[T]) -> None:
        try:
            run.result = self._check()
        finally:
            run.done.set()
