"""Recorder thread: a bounded FIFO of output frames encoded to H.264 mp4 with their real timestamps.

The one FIFO of the app. ``offer()`` never blocks the caller (the inference thread): when the queue is full the
frame is dropped and counted, so at the end ``written + dropped == produced``.
"""

from __future__ import annotations

import queue
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from PySide6.QtCore import Signal

from d2a_desktop.config import RecordingConfig
from d2a_desktop.workers.base import Worker

_TIME_BASE = Fraction(1, 1000)  # millisecond timestamps: the file plays at the rate frames were produced


class RecorderWorker(Worker):
    """Encodes frames offered by other threads; finalises a playable file when stopped (even mid-recording)."""

    stats = Signal(int, int, int)  # produced, written, dropped (emitted about once a second and at the end)
    saved = Signal(str)  # path of the finalised file

    def __init__(self, config: RecordingConfig) -> None:
        super().__init__()
        self.config = config
        self._queue: queue.Queue[tuple[np.ndarray, float]] = queue.Queue(maxsize=config.queue_size)
        self._lock = threading.Lock()
        self.produced = 0
        self.dropped = 0
        self.written = 0
        self.t_start: float | None = None
        self._closed = False

    # -- producer side (any thread) --------------------------------------------------------------------------------
    def offer(self, frame: np.ndarray, t: float) -> bool:
        """Queue one uint8 RGB frame [H, W, 3] taken at monotonic time ``t``; False if it was dropped."""
        with self._lock:
            if self._closed:
                return False
            self.produced += 1
            try:
                self._queue.put_nowait((frame, t))
            except queue.Full:
                self.dropped += 1
                return False
        return True

    def wake(self) -> None:
        """The consumer polls the queue with a short timeout, so a stop is seen within 0.1 s."""

    @property
    def elapsed_s(self) -> float:
        """Seconds since the first frame was written (0 before)."""
        return 0.0 if self.t_start is None else time.monotonic() - self.t_start

    # -- consumer side (the recorder thread) -----------------------------------------------------------------------
    def work(self) -> None:
        path = Path(self.config.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._container = None
        self._stream = None
        self._last_pts = -1
        self._t0 = 0.0
        last_report = time.monotonic()
        try:
            while True:
                try:
                    frame, t = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if self.stopping:
                        break
                    continue
                self._write(frame, t)
                if time.monotonic() - last_report > 1.0:
                    last_report = time.monotonic()
                    self.stats.emit(self.produced, self.written, self.dropped)
            with self._lock:  # no offer() can slip in from now on; write whatever is still queued
                self._closed = True
            while True:
                try:
                    frame, t = self._queue.get_nowait()
                except queue.Empty:
                    break
                self._write(frame, t)
        finally:
            with self._lock:
                self._closed = True
            if self._container is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
                self._container.close()
            self.stats.emit(self.produced, self.written, self.dropped)
            if self._container is not None:
                self.saved.emit(str(path))

    def _write(self, frame: np.ndarray, t: float) -> None:
        """Encode one frame with its timestamp (ms since the first frame, strictly increasing)."""
        import av

        frame = _even(frame)
        if self._container is None:
            self._container = av.open(str(self.config.path), mode="w")
            stream = self._container.add_stream("libx264", rate=self.config.nominal_fps)
            stream.width, stream.height = frame.shape[1], frame.shape[0]
            stream.pix_fmt = "yuv420p"
            stream.time_base = _TIME_BASE
            stream.codec_context.time_base = _TIME_BASE
            stream.options = {"crf": str(self.config.crf), "preset": self.config.preset}
            self._stream = stream
            self._t0 = t
            self.t_start = time.monotonic()
        stream = self._stream
        if (frame.shape[1], frame.shape[0]) != (stream.width, stream.height):
            frame = _fit(frame, stream.width, stream.height)
        pts = max(int(round((t - self._t0) * 1000.0)), self._last_pts + 1)
        self._last_pts = pts
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = pts
        vf.time_base = _TIME_BASE
        for packet in stream.encode(vf):
            self._container.mux(packet)
        self.written += 1


def _even(frame: np.ndarray) -> np.ndarray:
    """H.264 4:2:0 needs even sizes: crop one row/column if necessary."""
    h, w = frame.shape[:2]
    return frame[: h - h % 2, : w - w % 2]


def _fit(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a frame whose size changed mid-recording (e.g. a new bundle) to the stream size."""
    import cv2

    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
