"""Time under the test's control."""

from __future__ import annotations


class Clock:
    """Time under the test's control, so "at most once a second" is checked without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
