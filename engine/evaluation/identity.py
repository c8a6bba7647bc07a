"""Identity similarity: cosine similarity of dlib's 128-D face embeddings (the paper's CSIM).

Only with the optional extra ``[dlib]`` (``dlib`` and ``face_recognition_models``); without it
``identity_similarity`` returns None and ``d2a eval`` reports the measure as skipped.
"""

from __future__ import annotations

import numpy as np


def dlib_available() -> bool:
    """True when dlib and face_recognition_models are importable (the optional ``[dlib]`` extra)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("dlib", "face_recognition_models"))


class DlibIdentity:
    """dlib's 128-D face embedding (ResNet of ``face_recognition_models``); ``similarity(a, b)`` is the cosine.

    Raises ImportError with the install hint when the optional extra is missing.
    """

    def __init__(self) -> None:
        if not dlib_available():
            raise ImportError("identity similarity needs the optional extra: pip install 'd2a-desktop[dlib]'")
        import dlib
        import face_recognition_models as frm

        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(frm.pose_predictor_model_location())
        self._encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

    def embed(self, image: np.ndarray) -> np.ndarray | None:
        """RGB uint8 [H, W, 3] -> unit embedding [128] of the largest face, or None without a face."""
        import dlib

        boxes = self._detector(image, 1)
        if len(boxes) == 0:
            h, w = image.shape[:2]
            boxes = [dlib.rectangle(0, 0, w - 1, h - 1)]
        box = max(boxes, key=lambda r: r.area())
        shape = self._shape(image, box)
        v = np.asarray(self._encoder.compute_face_descriptor(image, shape), np.float64)
        return v / max(np.linalg.norm(v), 1e-12)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float | None:
        ea, eb = self.embed(a), self.embed(b)
        if ea is None or eb is None:
            return None
        return float(ea @ eb)


def identity_similarity(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float | None:
    """Mean dlib cosine similarity over image pairs, or None when dlib is not installed (reported as skipped)."""
    if not dlib_available() or not pairs:
        return None
    ident = DlibIdentity()
    sims = [s for s in (ident.similarity(a, b) for a, b in pairs) if s is not None]
    return float(np.mean(sims)) if sims else None
