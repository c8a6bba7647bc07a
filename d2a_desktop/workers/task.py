"""One-shot background task (fine-tuning, thumbnails): progress, cancel, a result or an error."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Signal

from d2a_desktop.workers.base import Worker

TaskFn = Callable[[Callable[..., None], threading.Event], Any]  # fn(progress, cancel) -> result


class TaskWorker(Worker):
    """Runs ``fn(progress, cancel)`` once in its thread; ``result`` carries the return value."""

    progress = Signal(float)  # 0..1
    result = Signal(object)

    def __init__(self, name: str, fn: TaskFn) -> None:
        super().__init__()
        self.name = name
        self.fn = fn
        self.cancel = threading.Event()
        self.succeeded = False

    def stop(self) -> None:
        """Stop means cancel for a task."""
        super().stop()
        self.cancel.set()

    def work(self) -> None:
        from d2a_desktop.workers.inference import _fraction

        def progress(*args: Any) -> None:
            self.progress.emit(_fraction(args))

        value = self.fn(progress, self.cancel)
        if self.cancel.is_set():
            self.message.emit(f"{self.name}: cancelled")
            return
        self.succeeded = True
        self.result.emit(value)
