"""dlib backend (optional): HOG face detector + the 68-point iBUG shape predictor, offline.

Install with ``pip install 'd2a-desktop[dlib]'`` (``dlib-bin`` and ``face-recognition-models``, which ships
``shape_predictor_68_face_landmarks.dat``), or point ``predictor_path=`` / the environment variable
``D2A_DLIB_PREDICTOR`` to your own copy of that file.

Points: 68 in iBUG order (``schema.to_ibug68`` is the identity on them). Confidence: the HOG detector's SVM score
mapped through a logistic function, ``1 / (1 + exp(-2 * score))`` (0.5 at the detection threshold).
Video mode has no dlib-side tracking: every frame is detected, and the face nearest the previous one is kept.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np

from engine.landmarks.base import BackendUnavailable, DetectorConfig, LandmarkDetector
from engine.landmarks.schema import NUM_IBUG

PREDICTOR_NAME = "shape_predictor_68_face_landmarks.dat"
INSTALL_HINT = "pip install 'd2a-desktop[dlib]'  (i.e. dlib-bin face-recognition-models 'setuptools<81')"


def find_predictor(path: str | os.PathLike | None = None) -> Path:
    """Locate the 68-point predictor: explicit path, ``$D2A_DLIB_PREDICTOR``, then the face-recognition-models package.

    Found without importing face_recognition_models (its import pulls the deprecated pkg_resources).
    """
    if path is not None:
        if not Path(path).is_file():
            raise BackendUnavailable(f"dlib backend: predictor_path {path} is not a file (expected {PREDICTOR_NAME})")
        return Path(path)
    candidates: list[Path] = []
    if os.environ.get("D2A_DLIB_PREDICTOR"):
        candidates.append(Path(os.environ["D2A_DLIB_PREDICTOR"]))
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "models" / PREDICTOR_NAME)
    for c in candidates:
        if c.is_file():
            return c
    tried = ", ".join(str(c) for c in candidates) or "nothing (no path given, face-recognition-models not installed)"
    raise BackendUnavailable(
        f"dlib backend: {PREDICTOR_NAME} not found (tried {tried}). Install it with {INSTALL_HINT}, "
        "or pass predictor_path= / set D2A_DLIB_PREDICTOR to the .dat file."
    )


class DlibDetector(LandmarkDetector):
    """68-point dlib shape predictor on HOG face detections.

    Options (``create_detector("dlib", ...)`` keywords): ``predictor_path`` (str), ``upsample`` (int, default:
    1 for images whose short side is under 480 px, else 0; upsampling finds smaller faces, slower).
    """

    num_points = NUM_IBUG
    name = "dlib"

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        try:
            import dlib
        except ImportError as exc:
            raise BackendUnavailable(f"dlib backend: the dlib module is not installed. {INSTALL_HINT}") from exc
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(find_predictor(config.extra.get("predictor_path"))))
        self._detector = dlib.get_frontal_face_detector()
        self._upsample = config.extra.get("upsample")

    def _detect_all(self, rgb: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
        up = self._upsample
        if up is None:
            up = 1 if min(rgb.shape[:2]) < 480 else 0
        rects, scores, _ = self._detector.run(rgb, int(up), 0.0)
        found = sorted(zip(rects, scores), key=lambda rs: -rs[1])[: max(1, self.config.max_faces)]
        out, conf = [], []
        for rect, score in found:
            shape = self._predictor(rgb, rect)
            out.append(np.array([(shape.part(i).x, shape.part(i).y) for i in range(NUM_IBUG)], dtype=np.float32))
            conf.append(1.0 / (1.0 + math.exp(-2.0 * float(score))))
        return out, conf
