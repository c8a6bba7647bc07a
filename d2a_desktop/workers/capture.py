"""Capture thread: a camera (device index) or a video file used as the camera, into a latest-frame slot."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Signal

from d2a_desktop.config import CaptureConfig
from d2a_desktop.slots import LatestSlot
from d2a_desktop.workers.base import Worker


@dataclass(frozen=True)
class CapturedFrame:
    """One driver frame: ``image`` uint8 RGB [H, W, 3], capture time (``time.monotonic``) and index."""

    image: np.ndarray
    t: float
    index: int


class CaptureError(RuntimeError):
    """The capture source cannot be used at all (missing file, unreadable video)."""


class CaptureWorker(Worker):
    """Reads frames and overwrites ``slot`` with the newest one.

    Never spins on failure: a failed open or read waits with exponential backoff (bounded by
    ``config.retry_max_s``) and then reconnects, reporting "camera lost — reconnecting" on the way.
    A missing device is reported as a message once per outage; a missing video file is an error.
    """

    opened = Signal(str)  # a description of the opened source ("camera 0 640×480 @ 30 fps")
    source_missing = Signal(str)  # the device/file could not be opened (message for the user)

    def __init__(self, config: CaptureConfig, slot: LatestSlot[CapturedFrame]) -> None:
        super().__init__()
        self.config = config
        self.slot = slot
        self.frames_read = 0

    def wake(self) -> None:
        """Nothing blocks on a condition here; sleeps are interrupted by the stop event itself."""

    # -- opening -------------------------------------------------------------------------------------------------
    def _open(self) -> tuple[Any, float] | None:
        """Open the source; returns (capture, fps) or None when it is not available now."""
        import cv2

        src = self.config.source
        if self.config.is_file:
            path = Path(str(src))
            if not path.is_file():
                raise CaptureError(f"video file not found: {path}")
            cap = cv2.VideoCapture(str(path))
            if not cap.isOpened():
                raise CaptureError(f"cannot decode video file: {path}")
        else:
            cap = cv2.VideoCapture(int(src))
            if not cap.isOpened():
                cap.release()
                return None
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not np.isfinite(fps) or fps <= 1.0 or fps > 240.0:
            fps = 30.0
        return cap, fps

    def _describe(self, cap: Any, fps: float) -> str:
        import cv2

        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        kind = f"video {Path(str(self.config.source)).name}" if self.config.is_file else f"camera {self.config.source}"
        return f"{kind} {w}×{h} @ {fps:.0f} fps"

    # -- main loop ------------------------------------------------------------------------------------------------
    def work(self) -> None:
        backoff = self.config.retry_initial_s
        reported = False
        while not self.stopping:
            opened = self._open()
            if opened is None:
                if not reported:
                    msg = f"camera {self.config.source} not found — check the device index or connection; retrying"
                    self.source_missing.emit(msg)
                    self.message.emit(msg)
                    reported = True
                if self.sleep(backoff):
                    return
                backoff = min(backoff * 2.0, self.config.retry_max_s)
                continue
            cap, fps = opened
            self.opened.emit(self._describe(cap, fps))
            reported = False
            backoff = self.config.retry_initial_s
            try:
                ended = self._read_loop(cap, fps)
            finally:
                cap.release()
            if ended:
                self.message.emit("end of the driving video")
                return
            if self.stopping:
                return
            self.message.emit("camera lost — reconnecting")
            if self.sleep(backoff):
                return
            backoff = min(backoff * 2.0, self.config.retry_max_s)

    def _read_loop(self, cap: Any, fps: float) -> bool:
        """Read until stop or failure; returns True when a non-looping video reached its end."""
        import cv2

        period = 1.0 / fps
        t_next = time.monotonic()
        failures = 0
        while not self.stopping:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                if self.config.is_file and self.frames_read == 0:
                    raise CaptureError(f"no decodable frames in {self.config.source}")
                if self.config.is_file and failures == 0:
                    if not self.config.loop:
                        return True
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # rewind and try once more
                    failures += 1
                    continue
                return False  # lost: the caller backs off and reconnects
            failures = 0
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            self.slot.put(CapturedFrame(rgb, time.monotonic(), self.frames_read))
            self.frames_read += 1
            if self.config.is_file and self.config.realtime:
                t_next += period
                delay = t_next - time.monotonic()
                if delay < -period:  # fell behind (e.g. CPU busy): resynchronise instead of bursting
                    t_next = time.monotonic()
                elif self.sleep(delay):
                    break
        return False
