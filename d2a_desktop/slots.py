"""Latest-wins mailboxes between live stages (one lock, the newest item, and a counter)."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Holds only the newest item; writers overwrite, readers never see stale data.

    The counter increases with every ``put`` so a reader can tell how many items it skipped.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._counter = 0

    def put(self, item: T) -> int:
        """Store ``item`` as the newest one and wake waiting readers; returns its counter value."""
        with self._cond:
            self._item = item
            self._counter += 1
            self._cond.notify_all()
            return self._counter

    def get(self) -> tuple[T | None, int]:
        """The newest item (or None) and its counter value, without waiting."""
        with self._cond:
            return self._item, self._counter

    def wait_newer(self, seen: int, timeout: float) -> tuple[T, int] | None:
        """Wait up to ``timeout`` seconds for an item newer than counter ``seen``; None on timeout."""
        with self._cond:
            if self._counter <= seen:
                self._cond.wait(timeout)
            if self._counter <= seen or self._item is None:
                return None
            return self._item, self._counter

    def wake(self) -> None:
        """Wake every waiting reader (used when stopping)."""
        with self._cond:
            self._cond.notify_all()

    @property
    def counter(self) -> int:
        """How many items were ever put."""
        with self._cond:
            return self._counter
