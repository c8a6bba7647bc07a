"""Head-rotation directions: regression of w on each sample's 3D head rotation (a rigid fit of the detector's mesh).

Why: the clusters of the "nose" region were the bank's only pitch directions, and they carry identity (eye height,
nose length, eye spacing shift the nose in the eye-aligned face just as pitch foreshortens it: RESULTS.md,
'Head-rotation and mouth regression directions'). A cluster centroid difference carries whatever differs between
the two clusters' faces. A regression of w on a signal carries identity only as far as that signal responds to
identity, and the signal here is the head rotation: a head rotation moves the face's 3D points rigidly, identity
and expression deform them. mediapipe's mesh gives every point a depth, so each sample's rotation relative to the
mean mesh is an orthogonal Procrustes fit (``head_rotations``: generalised Procrustes over the samples, scale and
translation removed).

Each direction is one column of the multiple regression ``B = Cov(w, θ) Cov(θ)⁻¹`` (θ: the three rotation angles;
the other two angles held fixed), times ``amplitude`` standard deviations of its angle, on the action layers. The
directions form the "pose" group (region ``"rotation"``). Generic: renders, the detector's 3D mesh and statistics
of w only.

The same fit frontalises every mesh, and two mouth actions are measured in that head frame (``mouth_signals``): the
jaw opening (gap between the inner lips) and the smile (mouth corners raised against the lip centre). Seen in 2D, a
pitch also bends the lip line, and clusters of the mouth's shape mix the smile with jaw opening, pucker and the
mouth's identity shape (width, lip thickness). Regressing w on (three angles, jaw, smile) jointly gives the jaw and
smile columns with the head rotation held fixed (``rotation_directions(..., mouth=True)``, group "expression",
region "mouth").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _normalise(points: np.ndarray) -> np.ndarray:
    """[N, P, 3] -> centred on each sample's centroid, RMS radius 1."""
    x = points - points.mean(1, keepdims=True)
    return x / np.sqrt((x**2).sum(-1).mean(-1)).clip(1e-9)[:, None, None]


def _fit_rotations(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Proper rotations R [N, 3, 3] minimising ||x[n] R[n] - ref|| (orthogonal Procrustes, rows are points)."""
    u, _, vt = np.linalg.svd(np.einsum("npi,pj->nij", x, ref))
    d = np.sign(np.linalg.det(u @ vt))
    u[:, :, 2] *= d[:, None]
    return u @ vt


def head_rotations(points: np.ndarray, iters: int = 3) -> np.ndarray:
    """Rotation vectors [N, 3] (radians, axis x right, y down, z depth of the detector's frame) of every sample's 3D
    point set [N, P, 3] relative to their Procrustes mean shape (generalised Procrustes, ``iters`` refinements)."""
    from scipy.spatial.transform import Rotation

    x = _normalise(np.asarray(points, np.float64))
    ref = x.mean(0)
    for _ in range(max(int(iters), 1)):
        rot = _fit_rotations(x, ref)
        ref = np.einsum("npi,nij->npj", x, rot).mean(0)
        ref /= np.sqrt((ref**2).sum(-1).mean())
    rot = _fit_rotations(x, ref)
    # rows: x = ref Q^T for a sample rotated by Q (column points q = Q p), so the fitted R (x R = ref) is Q itself
    return Rotation.from_matrix(rot).as_rotvec()


def frontalise(points: np.ndarray, rotvecs: np.ndarray) -> np.ndarray:
    """Point sets [N, P, 3] in their head frame: normalised (``_normalise``) and rotated back by the fitted
    rotation vectors [N, 3] of ``head_rotations``."""
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_rotvec(rotvecs).as_matrix()
    return np.einsum("npi,nij->npj", _normalise(np.asarray(points, np.float64)), rot)


MOUTH_SIGNALS = ("jaw", "smile")


def mouth_signals(frontal: np.ndarray) -> np.ndarray:
    """Mouth actions [N, 2] (``MOUTH_SIGNALS``) of frontalised meshes [N, 478, 3] (y down, RMS radius 1):
    jaw = mean gap of the three inner-lip point pairs; smile = how far the mouth corners sit above the inner lip
    centre (y down: centre y - corner y)."""
    from engine.landmarks.schema import IBUG68

    y = frontal[:, IBUG68, 1]  # iBUG-68 numbering: 48/54 corners, 61-63 upper and 65-67 lower inner lip
    jaw = ((y[:, 67] - y[:, 61]) + (y[:, 66] - y[:, 62]) + (y[:, 65] - y[:, 63])) / 3.0
    smile = (y[:, 62] + y[:, 66]) / 2.0 - (y[:, 48] + y[:, 54]) / 2.0
    return np.stack([jaw, smile], 1)


def regression_directions(
    ws: torch.Tensor, signals: np.ndarray, action_layers: int, amplitude: float = 2.0
) -> torch.Tensor:
    """Multiple regression of w on signals [N, S]: column j of ``Cov(w, s) Cov(s)⁻¹`` times ``amplitude`` stds of s_j,
    on the first ``action_layers`` layers (the rest zero). ws [N, L, D] -> directions [S, L, D]."""
    w = ws[:, :action_layers].flatten(1).double()
    s = torch.from_numpy(np.asarray(signals, np.float64))
    w = w - w.mean(0)
    s = s - s.mean(0)
    n = max(len(s) - 1, 1)
    coef = torch.linalg.solve(s.T @ s / n, (s.T @ w) / n)  # [S, L*D]
    coef = coef * (s.std(0) * amplitude)[:, None]
    out = torch.zeros(len(coef), *ws.shape[1:])
    out[:, :action_layers] = coef.float().view(len(coef), action_layers, -1)
    return out


def rotation_directions(
    ws: torch.Tensor, renderer: Any, action_layers: int, amplitude: float = 2.0, mouth: bool = False
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Three head-rotation directions (about x, y, z) from samples ws [N, L, D]: render, detect the 3D mesh
    (``renderer.mesh``), fit each sample's rotation, regress. With ``mouth`` also the jaw and smile directions of the
    joint regression on (angles, ``mouth_signals``). Returns (directions [3 or 5, L, D], infos)."""
    points, found = renderer.mesh(ws)
    if int(found.sum()) < 16:
        raise RuntimeError(f"rotation directions: only {int(found.sum())} of {len(ws)} renders had a face")
    kept = ws[torch.from_numpy(found)]
    angles = head_rotations(points[found])
    dirs = regression_directions(kept, angles, action_layers, amplitude)
    std = angles.std(0)
    infos = [
        {"region": "rotation", "k": 0, "group": "pose",
         "origin": {"regression": axis, "angle_std": round(float(std[j]), 4), "samples": int(found.sum())}}
        for j, axis in enumerate("xyz")
    ]
    if mouth:
        sig = mouth_signals(frontalise(points[found], angles))
        both = regression_directions(kept, np.concatenate([angles, sig], 1), action_layers, amplitude)
        dirs = torch.cat([dirs, both[3:]])
        infos += [
            {"region": "mouth", "k": 0, "group": "expression",
             "origin": {"regression": name, "held": "rotation", "signal_std": round(float(sig[:, j].std()), 5),
                        "samples": int(found.sum())}}
            for j, name in enumerate(MOUTH_SIGNALS)
        ]
    return dirs, infos
