"""The worker pattern used by every thread of the app.

A :class:`Worker` is a QObject with a standard signal set (``started``, ``errored(str)``, ``message(str)``,
``finished``), a cooperative stop flag, and a ``work()`` method that runs in its own QThread. Exceptions never
escape the thread: they are emitted as ``errored`` and the worker finishes. :class:`WorkerThread` owns the QThread
and joins it on :meth:`WorkerThread.stop`.
"""

from __future__ import annotations

import logging
import threading

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

log = logging.getLogger(__name__)


class Worker(QObject):
    """Base class: subclasses implement :meth:`work` and poll :attr:`stopping` (or wait on :meth:`sleep`)."""

    started = Signal()
    errored = Signal(str)  # a human-readable error; the worker finishes after it
    message = Signal(str)  # a status-line message ("camera lost — reconnecting", "no face", ...)
    finished = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was requested."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Request a cooperative stop (thread-safe; returns at once)."""
        self._stop.set()

    def sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` but wake at once on stop; returns True if a stop was requested."""
        return self._stop.wait(max(0.0, seconds))

    @Slot()
    def run(self) -> None:
        """Thread entry point: emits ``started``, runs :meth:`work`, reports errors, always emits ``finished``."""
        self.started.emit()
        try:
            self.work()
        except Exception as exc:  # surfaced to the GUI, never swallowed
            log.exception("%s failed", type(self).__name__)
            self.errored.emit(f"{type(self).__name__}: {exc}")
        finally:
            self.finished.emit()

    def work(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class WorkerThread:
    """One worker in one QThread: ``start()`` it, ``stop()`` joins it (cooperative, bounded wait)."""

    def __init__(self, worker: Worker, name: str) -> None:
        self.worker = worker
        self.thread = QThread()
        self.thread.setObjectName(name)
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        # Direct: quit() is thread-safe and must not wait for the GUI event loop (which may be blocked in stop()).
        worker.finished.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)

    def start(self) -> None:
        """Start the thread (the worker's ``run`` executes in it)."""
        self.thread.start()

    def is_running(self) -> bool:
        """True while the thread runs."""
        return self.thread.isRunning()

    def stop(self, timeout_ms: int = 10_000) -> bool:
        """Ask the worker to stop and wait for the thread; returns True if it ended within the timeout."""
        self.worker.stop()
        wake = getattr(self.worker, "wake", None)
        if callable(wake):
            wake()
        if not self.thread.isRunning():
            return True
        ok = self.thread.wait(timeout_ms)
        if not ok:
            log.error("thread %s did not stop within %d ms", self.thread.objectName(), timeout_ms)
        return bool(ok)
