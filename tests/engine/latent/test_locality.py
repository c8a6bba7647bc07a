"""Localisation of expression directions (engine.latent.locality) on real FaceWorld renders + real mediapipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.latent.locality import (
    REGION_PARTS,
    amplitude_factor,
    outside_gram,
    region_mask,
    ridge_filter,
)


def _face_points() -> np.ndarray:
    """A crude frontal 78-point face in a 128-px image (x right, y down)."""
    p = np.zeros((78, 2))
    t = np.linspace(-1, 1, 17)
    p[0:17] = np.stack([64 + 40 * t, 70 + 40 * (1 - t**2) ** 0.5], 1)  # jaw
    p[17:22] = np.stack([np.linspace(34, 56, 5), np.full(5, 44.0)], 1)  # right brow
    p[22:27] = np.stack([np.linspace(72, 94, 5), np.full(5, 44.0)], 1)  # left brow
    p[27:36] = np.stack([np.full(9, 64.0), np.linspace(52, 80, 9)], 1)  # nose
    for lo, cx in ((36, 46.0), (42, 82.0)):
        a = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        p[lo : lo + 6] = np.stack([cx + 8 * np.cos(a), 54 + 3 * np.sin(a)], 1)
    p[48:68] = np.stack([64 + 14 * np.cos(np.linspace(0, 2 * np.pi, 20)), 92 + 4 * np.sin(np.linspace(0, 6, 20))], 1)
    p[68:73] = [46, 54]
    p[73:78] = [82, 54]
    return p


def test_region_masks_cover_their_parts_only() -> None:
    p = _face_points()
    for region in REGION_PARTS:
        m = region_mask(p, region, 128)
        for part in REGION_PARTS[region]:
            for x, y in p[list(part)]:
                assert m[int(y), int(x)] == 1, (region, x, y)
    eyes = region_mask(p, "eyes", 128)
    assert eyes[54, 64] == 0  # between the eyes (nose bridge) is outside: one box per eye
    assert region_mask(p, "eye_left", 128)[54, 46] == 0  # the other eye is outside
    assert region_mask(p, "mouth", 128)[60, 64] == 0  # the nose bridge is outside the mouth
    with pytest.raises(ValueError, match="no mask"):
        region_mask(p, "pose", 128)


def test_ridge_filter_removes_the_high_energy_subspace() -> None:
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    lam = torch.tensor([100.0, 50.0, 10.0] + [0.0] * 13, dtype=torch.float64)
    gram = (q * lam) @ q.T
    f = ridge_filter(gram, tau=1e-3)  # tau' = 0.1
    assert torch.allclose(f @ q[:, 5], q[:, 5], atol=1e-9)  # null space kept exactly
    assert torch.allclose(f @ q[:, 0], q[:, 0] * 0.1 / 100.1, atol=1e-9)  # loud outside: removed
    assert float((f @ q[:, 2]).norm()) < 0.02


def test_amplitude_factor() -> None:
    assert amplitude_factor("eye_left", {"eyes": 0.2, "irises": 0.1}, {"eyes": 0.05, "irises": 0.01}, 4.0) == 4.0
    assert amplitude_factor("mouth", {"mouth": 0.2}, {"mouth": 0.1}, 4.0) == pytest.approx(2.0)
    assert amplitude_factor("mouth", {"mouth": 0.1}, {"mouth": 0.2}, 4.0) == 1.0  # never shrinks
    assert amplitude_factor("brows", {"brows": 0.1}, {"brows": 0.0}, 4.0) == 1.0


def test_localisation_removes_identity_and_keeps_the_blink() -> None:
    """A blink direction polluted with face width and head pitch: after localising it to the left eye, the face
    width and pitch changes vanish and most of the blink stays (FaceWorld's read-outs build the test input and
    score it; the localisation itself only sees renders and landmarks)."""
    from engine.distill.sampling import LandmarkRenderer
    from engine.generators import load_generator
    from engine.latent.mapping import map_z

    fw = load_generator("faceworld", resolution=128)
    names = list(fw.PARAM_NAMES)

    def along(name: str, score: float) -> torch.Tensor:  # shift of `score` natural stds of one parameter's score
        a = fw.proj[names.index(name), :8].sum(0)  # read-out of an offset shared by the 8 action layers
        out = torch.zeros(fw.num_ws, fw.w_dim)
        out[:8] = a / a.square().sum() * score * float(fw.score_std[names.index(name)])
        return out

    v = along("blink_left", 2.0) + along("face_width", 1.0) + along("pitch", 1.0)
    ws = map_z(fw, torch.randn(6, 512, generator=torch.Generator().manual_seed(3)), 0.7)
    with LandmarkRenderer(fw) as r:
        pts, found = r.landmarks(ws)
    assert found.all()
    masks = torch.stack([region_mask(p, "eye_left", 128) for p in pts])
    gram = outside_gram(fw, ws, masks, probes=16, action_layers=8)
    filt = ridge_filter(gram, 2e-6).float()
    v2 = v.clone()
    v2[:8] = v[:8] @ filt

    def change(d: torch.Tensor) -> dict[str, float]:
        a, b = fw.decode(ws), fw.decode(ws + d[None])
        return {n: float((b[n] - a[n]).abs().mean()) for n in ("blink_left", "face_width", "pitch")}

    before, after = change(v), change(v2)
    assert after["face_width"] < before["face_width"] / 10, (before, after)  # measured: 0.45 -> 0.000
    assert after["pitch"] < before["pitch"] / 10, (before, after)  # 0.12 -> 0.000
    assert after["blink_left"] > 0.5 * before["blink_left"], (before, after)  # 0.55 -> 0.35
