"""Metrics: landmark NME, FaceWorld parameter errors, identity similarity (dlib, optional), jitter, timing.

Definitions (used by ``d2a eval`` and written to ``docs/RESULTS.md``):

* **NME** — mean point-to-point distance between two landmark sets divided by the inter-ocular distance (outer
  eye corners) of the reference set; reported as a fraction (0.02 = 2 %). ``engine.landmarks.align.nme`` is used
  when that module provides it, so every part of the project reports the same number.
* **Parameter errors** — FaceWorld's ``decode(ws)`` gives the ground truth of every rendered face: the mean
  absolute difference over ``APPEARANCE_PARAMS`` (colour/texture), ``IDENTITY_PARAMS`` or ``ACTION_PARAMS``.
* **Identity similarity** — cosine similarity of dlib's 128-D face embeddings (CSIM of the paper), only when
  ``dlib`` and ``face_recognition_models`` are installed; otherwise ``identity_similarity`` returns None.
* **Jitter** — temporal jitter of a landmark sequence [T, K, 2]: the mean norm of the discrete second difference
  (frame-to-frame acceleration) ``p[t+1] - 2 p[t] + p[t-1]`` over points and frames, divided by the mean
  inter-ocular distance; a constant-velocity motion has zero jitter, tremor and flicker do not.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

# outer eye corners in the two layouts we meet: 478-point mediapipe mesh and 68-point iBUG
_EYE_CORNERS = {478: (33, 263), 468: (33, 263), 68: (36, 45), 78: (36, 45)}


def interocular(points: np.ndarray) -> float:
    """Distance between the outer eye corners of one landmark set [K, 2] (K = 478, 468, 78 or 68)."""
    pts = np.asarray(points, np.float64)
    if pts.shape[0] not in _EYE_CORNERS:
        raise ValueError(f"cannot find the eye corners in a set of {pts.shape[0]} points")
    a, b = _EYE_CORNERS[pts.shape[0]]
    return float(np.linalg.norm(pts[a] - pts[b]))


def nme(pred: np.ndarray, target: np.ndarray) -> float:
    """Inter-ocular normalised mean error between landmark sets [K, 2] (normalised by the target's eyes)."""
    pred = np.asarray(pred, np.float64)
    target = np.asarray(target, np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"landmark sets differ in shape: {pred.shape} vs {target.shape}")
    try:
        from engine.landmarks import align

        if hasattr(align, "nme"):
            return float(align.nme(pred, target))
    except ImportError:
        pass
    d = max(interocular(target), 1e-6)
    return float(np.linalg.norm(pred - target, axis=-1).mean() / d)


def param_error(generator: Any, ws_a: torch.Tensor, ws_b: torch.Tensor, names: Iterable[str]) -> float:
    """Mean |decode(ws_a)[p] - decode(ws_b)[p]| over parameters ``names`` and the batch (FaceWorld only)."""
    import torch

    names = list(names)
    if not hasattr(generator, "decode"):
        raise TypeError("parameter errors need a generator with ground truth (FaceWorld's decode)")
    with torch.no_grad():
        da, db = generator.decode(ws_a), generator.decode(ws_b)
    errs = [(da[n].float() - db[n].float()).abs().mean() for n in names]
    return float(torch.stack(errs).mean()) if errs else 0.0


def param_errors(generator: Any, ws_a: torch.Tensor, ws_b: torch.Tensor, names: Iterable[str]) -> dict[str, float]:
    """Per-parameter mean absolute differences of FaceWorld's decode (see ``param_error``)."""
    import torch

    with torch.no_grad():
        da, db = generator.decode(ws_a), generator.decode(ws_b)
    return {n: float((da[n].float() - db[n].float()).abs().mean()) for n in names}


def appearance_error(generator: Any, ws_a: torch.Tensor, ws_b: torch.Tensor) -> float:
    """Mean absolute error over FaceWorld's colour/texture parameters (identity appearance)."""
    return param_error(generator, ws_a, ws_b, _faceworld_names(generator, "APPEARANCE_PARAMS"))


def identity_error(generator: Any, ws_a: torch.Tensor, ws_b: torch.Tensor) -> float:
    """Mean absolute error over all FaceWorld identity parameters (geometry and colours)."""
    return param_error(generator, ws_a, ws_b, _faceworld_names(generator, "IDENTITY_PARAMS"))


def action_error(generator: Any, ws_a: torch.Tensor, ws_b: torch.Tensor) -> float:
    """Mean absolute error over FaceWorld's pose and expression parameters."""
    return param_error(generator, ws_a, ws_b, _faceworld_names(generator, "ACTION_PARAMS"))


def _faceworld_names(generator: Any, attr: str) -> tuple[str, ...]:
    names = getattr(generator, attr, None)
    if names is None:
        try:
            from engine.generators import faceworld

            names = getattr(faceworld, attr)
        except (ImportError, AttributeError) as e:
            raise TypeError(f"{attr} is a FaceWorld attribute; this generator has none") from e
    return tuple(names)


def jitter(points_seq: np.ndarray | list[np.ndarray]) -> float:
    """Temporal jitter of a landmark sequence [T, K, 2]: mean ‖p[t+1] − 2p[t] + p[t−1]‖ / mean inter-ocular."""
    seq = np.asarray(points_seq, np.float64)
    if seq.ndim != 3 or seq.shape[-1] != 2:
        raise ValueError(f"expected a landmark sequence [T, K, 2], got {seq.shape}")
    if seq.shape[0] < 3:
        return 0.0
    acc = seq[2:] - 2.0 * seq[1:-1] + seq[:-2]
    iod = float(np.mean([interocular(p) for p in seq]))
    return float(np.linalg.norm(acc, axis=-1).mean() / max(iod, 1e-6))


# ----------------------------------------------------------------------------------------------- identity (dlib)


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


# ----------------------------------------------------------------------------------------------- timing


class RollingStats:
    """Rolling window of timings per stage: ``add({"fan": 3.1, ...})``, then ``median()`` / ``p95()`` per stage."""

    def __init__(self, window: int = 120) -> None:  # window: samples kept per stage
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self._data: dict[str, deque[float]] = {}

    def add(self, timings: dict[str, float]) -> None:
        for k, v in timings.items():
            self._data.setdefault(k, deque(maxlen=self.window)).append(float(v))

    def quantile(self, q: float) -> dict[str, float]:
        return {k: float(np.quantile(np.asarray(v), q)) for k, v in self._data.items() if v}

    def median(self) -> dict[str, float]:
        return self.quantile(0.5)

    def p95(self) -> dict[str, float]:
        return self.quantile(0.95)

    def summary(self) -> dict[str, dict[str, float]]:
        """{stage: {"median": ms, "p95": ms, "n": count}}."""
        med, p95 = self.median(), self.p95()
        return {k: {"median": med[k], "p95": p95[k], "n": float(len(self._data[k]))} for k in med}
