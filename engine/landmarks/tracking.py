"""A live landmark tracker: a video-mode detector followed by One-Euro smoothing, with timestamps.

>>> tracker = LandmarkTracker()                       # mediapipe, tracking mode, One-Euro on
>>> d = tracker.update(frame_rgb, t=time.monotonic())  # Detection with smoothed points
>>> tracker.close()

The smoothing history is dropped when the face is lost or when the tracked box jumps by more than
``TrackerConfig.jump`` box sizes between frames (another face, or a cut), so the filter never drags points across.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine.landmarks.base import Detection, LandmarkDetector, box_area, points_box
from engine.landmarks.smoothing import OneEuroConfig, OneEuroFilter


@dataclass
class TrackerConfig:
    """Live tracking options."""

    backend: str = "mediapipe"  # landmark backend name (see create_detector)
    smoothing: bool = True  # One-Euro filter on the points
    one_euro: OneEuroConfig = field(default_factory=OneEuroConfig)  # filter parameters (Hz, px/s)
    jump: float = 0.5  # box-centre move (in box sizes) between frames that counts as a new face: reset the filter
    max_faces: int = 1  # faces considered per frame; 1 lets mediapipe track one face cheaply (see create_detector)


class LandmarkTracker:
    """Detector (video mode) + optional One-Euro smoothing. ``update(image, t) -> Detection``; a context manager."""

    def __init__(self, config: TrackerConfig | None = None, detector: LandmarkDetector | None = None) -> None:
        self.config = config or TrackerConfig()
        if detector is None:
            from engine.landmarks import create_detector

            detector = create_detector(self.config.backend, video_mode=True, max_faces=self.config.max_faces)
            self._own = True
        else:
            self._own = False
        self.detector = detector
        c = self.config.one_euro
        self._filter = OneEuroFilter(c.min_cutoff, c.beta, c.d_cutoff)
        self._last_box: tuple[float, float, float, float] | None = None
        self.resets = 0  # how many times the smoothing history was dropped (lost face or jump)

    def update(self, image: np.ndarray, t: float) -> Detection:
        """Detect in ``image`` (RGB uint8) captured at time ``t`` (seconds, increasing); smoothed Detection."""
        raw = self.detector.detect(image)
        if not raw.found:
            if self._last_box is not None:
                self._reset()
            return raw
        if self._last_box is not None and self._jumped(raw.box):
            self._reset()
        self._last_box = raw.box
        if not self.config.smoothing:
            return raw
        pts = self._filter(raw.points, t).astype(np.float32)
        return Detection(pts, True, raw.confidence, points_box(pts))

    def _jumped(self, box: tuple[float, float, float, float]) -> bool:
        a, b = self._last_box, box
        size = max(1.0, math.sqrt(box_area(a)))
        move = math.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)
        return move / size > self.config.jump

    def _reset(self) -> None:
        self._filter.reset()
        self._last_box = None
        self.resets += 1

    def reset(self) -> None:
        """Forget the tracked face and the smoothing history."""
        self._reset()
        self.detector.reset()

    def close(self) -> None:
        if self._own:
            self.detector.close()

    def __enter__(self) -> LandmarkTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
