"""The live session: the slots between stages and the lifetime of every worker thread.

capture thread --(latest-frame slot)--> inference thread --(newest-result slot)--> GUI timer
                                              └--(bounded FIFO)--> recorder thread
"""

from __future__ import annotations

from collections.abc import Callable

from d2a_desktop.config import CaptureConfig, InferenceConfig, RecordingConfig
from d2a_desktop.slots import LatestSlot
from d2a_desktop.workers.base import Worker, WorkerThread
from d2a_desktop.workers.capture import CapturedFrame, CaptureWorker
from d2a_desktop.workers.inference import InferenceWorker, LiveResult
from d2a_desktop.workers.recorder import RecorderWorker
from d2a_desktop.workers.task import TaskFn, TaskWorker

Connect = Callable[[Worker], None]  # wires a worker's signals before its thread starts


class LiveSession:
    """Owns the workers; every ``start_*`` has a matching ``stop_*`` that joins the thread."""

    def __init__(self, inference_config: InferenceConfig) -> None:
        self.frames: LatestSlot[CapturedFrame] = LatestSlot()
        self.results: LatestSlot[LiveResult] = LatestSlot()
        self.inference = InferenceWorker(inference_config, self.frames, self.results)
        self._inference_thread = WorkerThread(self.inference, "d2a-inference")
        self.capture: CaptureWorker | None = None
        self._capture_thread: WorkerThread | None = None
        self.recorder: RecorderWorker | None = None
        self._recorder_thread: WorkerThread | None = None
        self._tasks: dict[str, WorkerThread] = {}

    def start(self) -> None:
        """Start the inference thread (it builds the Animator and the detector there)."""
        self._inference_thread.start()

    @property
    def inference_ended(self) -> bool:
        """True once the inference thread has ended (e.g. the model failed to load, or after shutdown)."""
        return self._inference_thread.thread.isFinished()

    # -- capture ------------------------------------------------------------------------------------------------------
    def start_capture(self, config: CaptureConfig, connect: Connect | None = None) -> CaptureWorker:
        """(Re)start the capture thread on ``config.source``."""
        self.stop_capture()
        self.capture = CaptureWorker(config, self.frames)
        if connect is not None:
            connect(self.capture)
        self._capture_thread = WorkerThread(self.capture, "d2a-capture")
        self._capture_thread.start()
        return self.capture

    def stop_capture(self) -> None:
        """Stop and join the capture thread (no-op when not running)."""
        if self._capture_thread is not None:
            self._capture_thread.stop()
            self._capture_thread = None

    @property
    def capturing(self) -> bool:
        """True while the capture thread runs."""
        return self._capture_thread is not None and self._capture_thread.is_running()

    # -- recording ----------------------------------------------------------------------------------------------------
    def start_recording(self, config: RecordingConfig, connect: Connect | None = None) -> RecorderWorker:
        """Start a recorder thread and route every new output frame to it."""
        self.stop_recording()
        self.recorder = RecorderWorker(config)
        if connect is not None:
            connect(self.recorder)
        self._recorder_thread = WorkerThread(self.recorder, "d2a-recorder")
        self._recorder_thread.start()
        self.inference.set_recorder(self.recorder)
        return self.recorder

    def stop_recording(self) -> RecorderWorker | None:
        """Stop routing frames, finalise the file and join the thread; returns the finished recorder."""
        self.inference.set_recorder(None)
        rec = self.recorder
        if self._recorder_thread is not None:
            self._recorder_thread.stop(timeout_ms=60_000)
            self._recorder_thread = None
        self.recorder = None
        return rec

    @property
    def recording(self) -> bool:
        """True while a recorder is attached."""
        return self.recorder is not None

    # -- one-shot tasks -----------------------------------------------------------------------------------------------
    def run_task(self, name: str, fn: TaskFn, connect: Connect | None = None) -> TaskWorker:
        """Run ``fn(progress, cancel)`` in a new thread (one task per name at a time)."""
        self.stop_task(name)
        worker = TaskWorker(name, fn)
        if connect is not None:
            connect(worker)
        thread = WorkerThread(worker, f"d2a-task-{name}")
        self._tasks[name] = thread
        thread.start()
        return worker

    def stop_task(self, name: str) -> None:
        """Cancel and join the task ``name`` (no-op when absent)."""
        thread = self._tasks.pop(name, None)
        if thread is not None:
            thread.stop(timeout_ms=120_000)

    def task_running(self, name: str) -> bool:
        """True while the task ``name`` runs."""
        thread = self._tasks.get(name)
        return thread is not None and thread.is_running()

    # -- shutdown -----------------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop everything and join every thread: recording is finalised into a playable file first."""
        self.stop_capture()
        self.stop_recording()
        for name in list(self._tasks):
            self.stop_task(name)
        self._inference_thread.stop(timeout_ms=120_000)

    def threads_running(self) -> list[str]:
        """Names of the worker threads still running (empty after :meth:`shutdown`)."""
        threads = [self._inference_thread, self._capture_thread, self._recorder_thread, *self._tasks.values()]
        return [t.thread.objectName() for t in threads if t is not None and t.is_running()]
