"""Landmark measures of FaceWorld's parameters, computed from detected 478-point mediapipe landmarks.

Every measure is normalised by the inter-ocular distance and taken in a de-rolled frame (rotated about the eye
midpoint so the eye line is horizontal), so it compares with one ground-truth parameter across identities and
poses. Used by the tests and by ``scripts/faceworld_report.py``.
"""

from __future__ import annotations

import numpy as np

from engine.landmarks import schema as S

# measure name -> the FaceWorld parameter it tracks
MEASURE_OF: dict[str, str] = {
    "yaw": "yaw",
    "pitch": "pitch",
    "roll": "roll",
    "jaw_open": "jaw_open",
    "blink_left": "blink_left",
    "blink_right": "blink_right",
    "smile": "smile",
    "brow_raise": "brow_raise",
    "gaze_x": "gaze_x",
}


def landmark_measures(points: np.ndarray) -> dict[str, float]:
    """points [478, 2] pixels (x right, y down) -> scalar measures (see MEASURE_OF) plus ``iod`` in pixels.

    yaw: nose tip between the face-contour extremes (> 0 when the nose is towards image right);
    pitch: nose tip between forehead top and chin (> 0 when the nose is up); roll: eye-line angle in radians
    (> 0 counter-clockwise in the image); jaw_open: inner-lip gap / iod; blink_*: 1 - lid gap / eye width
    (subject's left = image right); smile: mouth width / iod; brow_raise: brow centre above the eye centre / iod;
    gaze_x: iris centre relative to the eye-corner midpoint / eye width (> 0 towards image right).
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape != (S.NUM_POINTS, 2):
        raise ValueError(f"expected mediapipe points [{S.NUM_POINTS}, 2], got {pts.shape}")
    right_c = pts[S.RIGHT_EYE].mean(0)  # image left
    left_c = pts[S.LEFT_EYE].mean(0)  # image right
    dx, dy = left_c - right_c
    roll = float(np.arctan2(-dy, dx))
    iod = float(np.hypot(dx, dy))
    mid = 0.5 * (left_c + right_c)
    c, s = np.cos(-roll), np.sin(-roll)
    # de-roll in a y-up frame: rotate by -roll about the eye midpoint, then go back to y-down
    rel = pts - mid
    x, y = rel[:, 0], -rel[:, 1]
    q = np.stack([c * x - s * y, -(s * x + c * y)], 1) / iod  # y down again, units of iod

    def dist(a: int, b: int) -> float:
        return float(np.hypot(*(q[a] - q[b])))

    out: dict[str, float] = {"iod": iod, "roll": roll}
    xr, xl = q[S.RIGHT_FACE_EDGE, 0], q[S.LEFT_FACE_EDGE, 0]
    out["yaw"] = float((q[S.NOSE_TIP, 0] - 0.5 * (xr + xl)) / max(xl - xr, 1e-6))
    yt, yc = q[S.FOREHEAD_TOP, 1], q[S.CHIN, 1]
    out["pitch"] = float(-(q[S.NOSE_TIP, 1] - 0.5 * (yt + yc)) / max(yc - yt, 1e-6))
    out["jaw_open"] = dist(S.UPPER_LIP_INNER, S.LOWER_LIP_INNER)
    out["blink_right"] = 1 - dist(S.RIGHT_EYE_UPPER_LID, S.RIGHT_EYE_LOWER_LID) / dist(33, 133)
    out["blink_left"] = 1 - dist(S.LEFT_EYE_UPPER_LID, S.LEFT_EYE_LOWER_LID) / dist(263, 362)
    out["smile"] = dist(S.MOUTH_LEFT, S.MOUTH_RIGHT)
    eye_r, eye_l = q[S.RIGHT_EYE].mean(0), q[S.LEFT_EYE].mean(0)
    out["brow_raise"] = float(0.5 * ((eye_r[1] - q[S.RIGHT_BROW_CENTER, 1]) + (eye_l[1] - q[S.LEFT_BROW_CENTER, 1])))
    gr = (q[S.RIGHT_IRIS_CENTER, 0] - 0.5 * (q[33, 0] + q[133, 0])) / dist(33, 133)
    gl = (q[S.LEFT_IRIS_CENTER, 0] - 0.5 * (q[263, 0] + q[362, 0])) / dist(263, 362)
    out["gaze_x"] = float(0.5 * (gr + gl))
    return out


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two 1-D arrays (nan when either is constant)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")
