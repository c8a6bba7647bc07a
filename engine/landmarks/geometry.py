"""Landmark geometry: THE similarity fit, THE inter-ocular distance, THE NME, jitter, and 2x3 affine helpers.

Definitions (used by ``d2a eval``, the inversion, the Animator and docs/RESULTS.md):

* **Similarity fit** — least squares (Umeyama) rotation, uniform scale and translation, no reflection, optionally
  weighted: ``dst ≈ src @ A.T + b``. ``fit_similarity`` returns ``(A, b)``, ``similarity_matrix`` the 2x3 ``[A | b]``.
* **Inter-ocular distance** — between the outer eye corners (iBUG 36/45, mesh 33/263; the 300-W convention), or the
  eye centres with ``kind="pupil"``.
* **NME** — mean point-to-point distance between two landmark sets divided by the inter-ocular distance of the
  reference (ground-truth) set; a fraction (0.02 = 2 %). Other norms: ``nme(..., norm=...)``.
* **Jitter** — of a landmark sequence [T, K, 2]: the mean norm of the discrete second difference
  ``p[t+1] - 2 p[t] + p[t-1]`` over points and frames, divided by the mean inter-ocular distance; a
  constant-velocity motion has zero jitter, tremor and flicker do not.

Numpy inputs are computed in float64 (unbatched results are Python floats); torch inputs keep their dtype and device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.landmarks import schema


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _float64(x: Any) -> Any:
    return x if _is_torch(x) else np.asarray(x, np.float64)


def _scalar(x: Any) -> Any:
    """A 0-d numpy result as a Python float; arrays and tensors unchanged."""
    return float(x) if isinstance(x, (np.ndarray, np.generic)) and np.ndim(x) == 0 else x


def _norm(d: Any) -> Any:
    """Euclidean norm over the last axis (sqrt, so numpy scalars round as ``np.linalg.norm`` does)."""
    sq = (d**2).sum(-1)
    return sq.sqrt() if _is_torch(sq) else np.sqrt(sq)


# ----------------------------------------------------------------------------------------------- similarity fit


def fit_similarity(
    src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama; rotation, uniform scale, translation, no reflection) ``src -> dst``.

    src, dst: ``[K, 2]``; weights: optional ``[K]`` non-negative. Returns ``(A [2, 2] = s R, b [2])`` (float64) with
    ``dst ≈ src @ A.T + b``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if weights is None:
        mu_s, mu_d = src.mean(0), dst.mean(0)
        xs, xd = src - mu_s, dst - mu_d
        cov = xd.T @ xs / len(src)
        var_s = (xs**2).sum() / len(src)
    else:
        w = np.asarray(weights, np.float64)
        w = w / w.sum()
        mu_s, mu_d = w @ src, w @ dst
        xs, xd = src - mu_s, dst - mu_d
        cov = (xd * w[:, None]).T @ xs
        var_s = (w * (xs**2).sum(1)).sum()
    u, sig, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    corr = np.diag([1.0, d])
    rot = u @ corr @ vt
    scale = float((sig * np.diag(corr)).sum() / max(var_s, 1e-12))
    a = scale * rot
    return a, mu_d - a @ mu_s


def similarity_matrix(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``fit_similarity`` as the 2x3 matrix ``M = [A | b]``: ``dst ≈ src @ M[:, :2].T + M[:, 2]``."""
    a, b = fit_similarity(src, dst, weights)
    return np.concatenate([a, b[:, None]], axis=1)


def apply_affine(points: Any, m: np.ndarray) -> np.ndarray:
    """``points [..., K, 2] @ M[:, :2].T + M[:, 2]`` (numpy, float64)."""
    p = np.asarray(points, dtype=np.float64)
    return p @ m[:, :2].T + m[:, 2]


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix."""
    lin_inv = np.linalg.inv(m[:, :2])
    return np.concatenate([lin_inv, -(lin_inv @ m[:, 2])[:, None]], axis=1)


def segment_frame(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Points [N, P, 2] in the frame of the segment a -> b ([N, 2] each): its midpoint at the origin, a->b along +x,
    |ab| = 1 (a similarity normalisation fixed by two points rather than fitted)."""
    mid = (a + b) / 2.0
    d = b - a
    n = np.linalg.norm(d, axis=1).clip(1e-6)
    c, s = (d[:, 0] / n)[:, None], (d[:, 1] / n)[:, None]
    x = points - mid[:, None]
    return np.stack([c * x[..., 0] + s * x[..., 1], -s * x[..., 0] + c * x[..., 1]], -1) / n[:, None, None]


# ----------------------------------------------------------------------------------------------- face size, errors


def interocular(points: Any, kind: str = "outer") -> Any:
    """Inter-ocular distance of ``points [..., K, 2]`` (K = 478, 468, 78 or 68), numpy or torch; shape ``[...]``.

    kind: "outer" (outer eye corners, the 300-W convention) or "pupil" (eye centres: ``schema.eye_centers``).
    """
    p = _float64(points)
    if kind == "outer":
        if p.shape[-2] in (schema.NUM_POINTS, schema.NUM_MESH_POINTS):
            a, b = p[..., schema.RIGHT_EYE_OUTER, :], p[..., schema.LEFT_EYE_OUTER, :]
        else:
            p68 = schema.to_ibug68(p)
            a, b = p68[..., schema.IBUG_RIGHT_EYE_OUTER, :], p68[..., schema.IBUG_LEFT_EYE_OUTER, :]
    elif kind == "pupil":
        a, b = schema.eye_centers(p)
    else:
        raise ValueError(f"unknown inter-ocular kind {kind!r} (use 'outer' or 'pupil')")
    return _scalar(_norm(a - b))


def nme(pred: Any, gt: Any, norm: str = "interocular") -> Any:
    """Normalised mean error: mean point-to-point distance divided by a face size, per face.

    pred, gt: ``[K, 2]`` or ``[N, K, 2]`` (numpy or torch, same type); K must match.
    norm: "interocular" (outer eye corners of ``gt``), "interpupil" (eye centres of ``gt``), "box" (sqrt of the
    area of the bounding box of ``gt``) or "none" (raw mean distance). Returns a float for ``[K, 2]`` numpy input,
    a 0-d tensor for torch, and ``[N]`` for batched input.
    """
    pred, gt = _float64(pred), _float64(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"nme: pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ")
    err = _norm(pred - gt).mean(-1)
    if norm == "interocular":
        scale = interocular(gt, "outer")
    elif norm == "interpupil":
        scale = interocular(gt, "pupil")
    elif norm == "box":
        lo, hi = (gt.amin(-2), gt.amax(-2)) if _is_torch(gt) else (gt.min(-2), gt.max(-2))
        wh = hi - lo
        scale = (wh[..., 0] * wh[..., 1]) ** 0.5
    elif norm == "none":
        return _scalar(err)
    else:
        raise ValueError(f"unknown nme norm {norm!r}")
    return _scalar(err / scale)


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
