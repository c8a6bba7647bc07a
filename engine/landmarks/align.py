"""Similarity alignment to a canonical FFHQ-like frame (the fit, inter-ocular distance and NME: ``geometry``).

The canonical frame
-------------------
Coordinates in ``[0, 1]²`` of an FFHQ-style square crop: (0, 0) is the top-left corner of the crop, (1, 1) the
bottom-right. The crop itself follows the FFHQ alignment rule on iBUG-68 points: with ``e`` the midpoint of the two
eye centres, ``m`` the midpoint of the mouth corners, the crop is centred at ``e + 0.1 (m - e)``, rotated so that the
eye line is horizontal (the x axis is ``eye_to_eye - rot90(eye_to_mouth)``) and has side
``max(4 |eye_to_eye|, 3.6 |eye_to_mouth|)`` — see ``ffhq_frame``.

``TEMPLATE68`` is the mean face in that frame: the mean of FFHQ-framed mediapipe detections (mapped to iBUG-68 by
``schema.IBUG68``) on ``skimage.data.astronaut()`` and 45 frames of three real talking-head clips, made exactly
left/right symmetric by averaging with its mirror image. ``align_points`` fits a similarity transform (Umeyama,
no reflection) of the inner-face points (brows, nose, eyes, mouth: iBUG 17-67; the jaw contour is left out because
it slides with head yaw) onto this template.
"""

from __future__ import annotations

import numpy as np

from engine.landmarks import schema
from engine.landmarks.geometry import apply_affine, similarity_matrix
from engine.landmarks.schema import IBUG68_MIRROR, to_ibug68

# fmt: off
TEMPLATE68 = np.array([
    [0.2318, 0.4862], [0.2350, 0.5404], [0.2404, 0.5956], [0.2509, 0.6548],
    [0.2958, 0.7664], [0.3238, 0.8023], [0.3867, 0.8547], [0.4532, 0.8874],
    [0.5000, 0.8922], [0.5468, 0.8874], [0.6133, 0.8547], [0.6762, 0.8023],
    [0.7042, 0.7664], [0.7491, 0.6548], [0.7596, 0.5956], [0.7650, 0.5404],
    [0.7682, 0.4862], [0.2828, 0.4118], [0.3066, 0.3901], [0.3431, 0.3788],
    [0.3905, 0.3812], [0.4449, 0.3885], [0.5551, 0.3885], [0.6095, 0.3812],
    [0.6569, 0.3788], [0.6934, 0.3901], [0.7172, 0.4118], [0.5000, 0.4591],
    [0.5000, 0.5177], [0.5000, 0.5433], [0.5000, 0.6032], [0.4537, 0.6377],
    [0.4722, 0.6495], [0.5000, 0.6501], [0.5278, 0.6495], [0.5463, 0.6377],
    [0.3299, 0.4726], [0.3553, 0.4606], [0.3953, 0.4584], [0.4345, 0.4805],
    [0.3993, 0.4884], [0.3609, 0.4883], [0.5655, 0.4805], [0.6047, 0.4584],
    [0.6447, 0.4606], [0.6701, 0.4726], [0.6391, 0.4883], [0.6007, 0.4884],
    [0.4085, 0.7376], [0.4456, 0.7055], [0.4726, 0.6954], [0.5000, 0.6998],
    [0.5274, 0.6954], [0.5544, 0.7055], [0.5915, 0.7376], [0.5526, 0.7779],
    [0.5283, 0.7873], [0.5000, 0.7900], [0.4717, 0.7873], [0.4474, 0.7779],
    [0.4171, 0.7372], [0.4777, 0.7238], [0.5000, 0.7243], [0.5223, 0.7238],
    [0.5829, 0.7372], [0.5224, 0.7508], [0.5000, 0.7523], [0.4776, 0.7508],
], dtype=np.float32)
# fmt: on

FIT_POINTS = np.arange(17, 68)  # iBUG indices used by the Umeyama fit (inner face, no jaw)


def _to68_np(points) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"expected points [K, 2], got shape {p.shape}")
    return to_ibug68(p)


def ffhq_frame(points) -> np.ndarray:
    """The FFHQ-rule crop of a face as a 2x3 matrix mapping pixels to canonical ``[0, 1]²`` coordinates.

    points: ``[K, 2]`` pixels with K = 478, 78 or 68.
    """
    p = _to68_np(points)
    eye_r, eye_l = p[schema.IBUG_RIGHT_EYE].mean(0), p[schema.IBUG_LEFT_EYE].mean(0)
    eye_avg, eye_to_eye = (eye_r + eye_l) / 2, eye_l - eye_r
    mouth_avg = (p[schema.IBUG_MOUTH_RIGHT] + p[schema.IBUG_MOUTH_LEFT]) / 2
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.array([eye_to_mouth[1], -eye_to_mouth[0]]) * -1.0  # eye_to_eye + rot90(eye_to_mouth)
    x = x / max(np.hypot(*x), 1e-9)
    half = max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    x = x * half
    y = np.array([-x[1], x[0]])
    centre = eye_avg + eye_to_mouth * 0.1
    corner = centre - x - y  # top-left corner of the crop
    # canonical u = <p - corner, x> / |x|^2 / 2, v = <p - corner, y> / |y|^2 / 2
    rows = np.stack([x, y]) / (2.0 * half * half)
    return np.concatenate([rows, -(rows @ corner)[:, None]], axis=1).astype(np.float64)


def align_points(points, method: str = "umeyama") -> tuple[np.ndarray, np.ndarray]:
    """Map a face's landmarks into the canonical ``[0, 1]²`` frame.

    points: ``[K, 2]`` pixels (K = 478, 78 or 68; all K points are transformed), or a batch ``[N, K, 2]``
            (then the outputs are ``[N, K, 2]`` and ``[N, 2, 3]``).
    method: "umeyama" (fit of iBUG 17-67 onto ``TEMPLATE68``, robust) or "ffhq" (the FFHQ eye/mouth rule).
    Returns ``(canonical_points [K, 2] float32, M [2, 3] float64)`` with ``canonical = points @ M[:, :2].T + M[:, 2]``.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim == 3 and p.shape[2] == 2:  # a batch: align each face
        pairs = [align_points(q, method=method) for q in p]
        return np.stack([c for c, _ in pairs]), np.stack([m for _, m in pairs])
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"align_points expects [K, 2] (or [N, K, 2]) points, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("align_points got non-finite points (was the face found?)")
    if method == "umeyama":
        m = similarity_matrix(to_ibug68(p)[FIT_POINTS], TEMPLATE68[FIT_POINTS])
    elif method == "ffhq":
        m = ffhq_frame(p)
    else:
        raise ValueError(f"unknown alignment method {method!r} (use 'umeyama' or 'ffhq')")
    return apply_affine(p, m).astype(np.float32), m


def align_image(image: np.ndarray, points, size: int = 256, method: str = "umeyama") -> tuple[np.ndarray, np.ndarray]:
    """FFHQ-like aligned square crop of ``image`` (``[H, W, C]`` uint8) around the face with landmarks ``points``.

    Returns ``(crop [size, size, C], M [2, 3])`` where ``M`` maps image pixels to crop pixels. Areas outside the
    image are filled by reflecting the border (as FFHQ pads), so the crop never has black corners.
    """
    import cv2

    _, m = align_points(points, method=method)
    m_px = m * float(size)
    crop = cv2.warpAffine(
        np.ascontiguousarray(image), m_px, (int(size), int(size)), flags=cv2.INTER_AREA if _shrinks(m_px) else
        cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101,
    )
    return crop, m_px


def _shrinks(m: np.ndarray) -> bool:
    return float(np.sqrt(abs(np.linalg.det(m[:, :2])))) < 0.5


def symmetrize68(points: np.ndarray) -> np.ndarray:
    """Average a canonical ``[68, 2]`` face with its left/right mirror image (x -> 1 - x)."""
    mirrored = points[IBUG68_MIRROR].copy()
    mirrored[:, 0] = 1.0 - mirrored[:, 0]
    return (points + mirrored) / 2
