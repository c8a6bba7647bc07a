"""Schema tables, canonical alignment, NME, heatmaps and the One-Euro filter (no detector needed, except one test)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.landmarks import align, geometry, heatmaps, schema, smoothing


def _rot(theta: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = math.cos(theta) * scale, math.sin(theta) * scale
    return np.array([[c, -s, shift[0]], [s, c, shift[1]]])


def _face478(seed: int = 0) -> np.ndarray:
    """A plausible 478-point face in pixels: the template placed in a 300 px crop, plus a little noise."""
    rng = np.random.default_rng(seed)
    pts = rng.normal(size=(schema.NUM_POINTS, 2)) * 5 + 150.0
    pts[schema.IBUG68] = align.TEMPLATE68 * 300 + rng.normal(size=(68, 2)) * 1.5
    return pts.astype(np.float32)


def test_schema_tables() -> None:
    assert schema.IBUG68.shape == (68,) and len(set(schema.IBUG68.tolist())) == 68
    assert schema.IBUG68.max() < schema.NUM_MESH_POINTS
    assert sorted(schema.IBUG68_MIRROR.tolist()) == list(range(68))
    assert np.array_equal(schema.IBUG68_MIRROR[schema.IBUG68_MIRROR], np.arange(68))  # an involution
    assert set(schema.REGIONS) == {"face", "jaw", "brows", "eyes", "irises", "nose", "mouth"}
    assert len(schema.REGIONS["face"]) == 78 and schema.REGIONS["irises"].tolist() == list(range(468, 478))
    for name, idx in schema.REGIONS.items():
        assert idx.min() >= 0 and idx.max() < schema.NUM_POINTS, name
    for k in (478, 78, 68):
        groups = schema.region_groups(k)
        assert all(g.max() < k for g in groups.values())
        assert ("irises" in groups) == (k != 68)
    with pytest.raises(ValueError):
        schema.region_groups(100)


def test_to_ibug68_numpy_and_torch() -> None:
    pts = _face478()
    p68 = schema.to_ibug68(pts)
    assert np.array_equal(p68, pts[schema.IBUG68])
    assert schema.to_ibug68(p68) is p68  # identity for 68 points
    batch = torch.as_tensor(np.stack([pts, pts + 1]))
    t68 = schema.to_ibug68(batch)
    assert t68.shape == (2, 68, 2) and torch.equal(t68[0], torch.as_tensor(p68))
    assert np.array_equal(schema.to_ibug68(schema.to_face(pts)), p68)
    with pytest.raises(ValueError, match="478, 78 or 68"):
        schema.to_ibug68(np.zeros((10, 2)))


def test_template_is_a_symmetric_face_in_the_unit_square() -> None:
    t = align.TEMPLATE68
    assert t.min() > 0.1 and t.max() < 0.95
    np.testing.assert_allclose(align.symmetrize68(t), t, atol=1e-4)
    assert t[17:27, 1].max() < t[36:48, 1].min() < t[30, 1] < t[62, 1] < t[8, 1]
    # the FFHQ rule applied to the template returns (nearly) the template: the frame is self-consistent
    np.testing.assert_allclose(geometry.apply_affine(t, align.ffhq_frame(t)), t, atol=0.02)


@pytest.mark.parametrize("method", ["umeyama", "ffhq"])
def test_alignment_undoes_similarity_transforms(method: str) -> None:
    pts = _face478()
    ref, m_ref = align.align_points(pts, method=method)
    assert ref.shape == pts.shape and ref.dtype == np.float32
    rng = np.random.default_rng(1)
    for _ in range(5):
        m = _rot(rng.uniform(-1.0, 1.0), rng.uniform(0.3, 3.0), tuple(rng.uniform(-200, 200, 2)))
        moved = geometry.apply_affine(pts, m)
        back, _ = align.align_points(moved, method=method)
        np.testing.assert_allclose(back, ref, atol=2e-4)
    batch, ms = align.align_points(np.stack([pts, geometry.apply_affine(pts, _rot(0.3, 2.0, (5.0, 9.0)))]),
                                   method=method)
    assert batch.shape == (2, *pts.shape) and ms.shape == (2, 2, 3)
    np.testing.assert_allclose(batch[1], ref, atol=2e-4)
    # the canonical face sits where the template is
    assert float(geometry.nme(schema.to_ibug68(ref), align.TEMPLATE68)) < 0.05


def test_umeyama_recovers_the_transform() -> None:
    src = np.random.default_rng(2).normal(size=(30, 2))
    m = _rot(0.7, 2.5, (3.0, -4.0))
    est = geometry.similarity_matrix(src, geometry.apply_affine(src, m))
    np.testing.assert_allclose(est, m, atol=1e-9)
    np.testing.assert_allclose(geometry.invert_affine(m) @ np.vstack([m, [0, 0, 1]]), np.eye(3)[:2], atol=1e-12)


def test_align_points_rejects_missing_faces() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        align.align_points(np.full((478, 2), np.nan, np.float32))
    with pytest.raises(ValueError):
        align.align_points(np.zeros((478, 3)))


def test_nme_and_interocular_numpy_and_torch() -> None:
    a = _face478(0)
    assert float(geometry.nme(a, a)) == 0.0
    b = a + np.array([3.0, 4.0], np.float32)  # every point 5 px off
    iod = float(geometry.interocular(a))
    assert iod == pytest.approx(np.linalg.norm(a[schema.IBUG68[36]] - a[schema.IBUG68[45]]))
    assert float(geometry.nme(b, a)) == pytest.approx(5.0 / iod, rel=1e-5)
    assert float(geometry.nme(b, a, norm="none")) == pytest.approx(5.0, rel=1e-5)
    batch_a, batch_b = np.stack([a, a * 2]), np.stack([b, a * 2])
    out = geometry.nme(batch_b, batch_a)
    assert out.shape == (2,) and out[1] == 0.0
    tout = geometry.nme(torch.as_tensor(batch_b), torch.as_tensor(batch_a))
    np.testing.assert_allclose(tout.numpy(), out, rtol=1e-5)
    assert float(geometry.nme(a * 3, a * 3 + 15, norm="interpupil")) == pytest.approx(
        float(geometry.nme(a, a + 5, norm="interpupil")), rel=1e-4
    )  # scale invariant
    assert float(geometry.nme(schema.to_ibug68(b), schema.to_ibug68(a), norm="box")) > 0
    with pytest.raises(ValueError):
        geometry.nme(a, a[:68])


def test_align_image_puts_the_face_in_the_canonical_place() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    from engine.landmarks import create_detector

    img = skimage_data.astronaut()
    with create_detector() as det:
        d = det.detect(img)
        crop, m = align.align_image(img, d.points, size=256)
        assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
        np.testing.assert_allclose(geometry.apply_affine(d.points, m) / 256, align.align_points(d.points)[0], atol=1e-4)
        d2 = det.detect(crop)
    assert d2.found
    canon = schema.to_ibug68(d2.points) / 256.0
    assert float(geometry.nme(canon, align.TEMPLATE68)) < 0.08


def test_heatmap_peaks_at_the_points() -> None:
    s = 32
    pts = torch.tensor([[[0.25, 0.5], [0.8, 0.1], [0.5, 0.9]]])  # [1, 3, 2]
    h = heatmaps.heatmaps(pts, size=s, sigma=1.0)
    assert h.shape == (1, 3, s, s)
    found = heatmaps.argmax_points(h)
    assert torch.all((found - pts).abs() <= 1.0 / s)
    centred = (torch.tensor([[[5, 7]]], dtype=torch.float32) + 0.5) / s  # exactly on a pixel centre
    hc = heatmaps.heatmaps(centred, size=s, sigma=2.0)
    assert hc[0, 0, 7, 5] == pytest.approx(1.0) and hc.max() == pytest.approx(1.0)
    assert hc[0, 0, 7, 7] == pytest.approx(math.exp(-0.5), rel=1e-5)  # 2 px = one sigma away
    assert float(h.min()) >= 0.0


def test_region_heatmaps_and_gradients() -> None:
    pts = torch.as_tensor(np.stack([align.TEMPLATE68, align.TEMPLATE68 + 0.02])).float()
    pts = torch.cat([pts, pts[:, 36:46]], dim=1).clone().requires_grad_(True)  # a 78-point face set
    per_point = heatmaps.heatmaps(pts, size=48, sigma=1.5)
    grouped = heatmaps.heatmaps(pts, size=48, sigma=1.5, groups=True)
    names = list(schema.region_groups(78))
    assert grouped.shape == (2, len(names), 48, 48)
    for g, idx in enumerate(schema.region_groups(78).values()):
        torch.testing.assert_close(grouped[:, g], per_point[:, idx].amax(1), atol=1e-5, rtol=0)
    target = heatmaps.heatmaps(pts.detach() + 0.01, size=48, sigma=1.5, groups=True)
    loss = ((grouped - target) ** 2).mean()
    loss.backward()
    assert torch.isfinite(pts.grad).all() and pts.grad.abs().sum() > 0
    # a gradient step moves the points towards the target
    with torch.no_grad():
        moved = pts - 0.003 * pts.grad / pts.grad.abs().max()
        after = ((heatmaps.heatmaps(moved, 48, 1.5, True) - target) ** 2).mean()
    assert after < loss
    custom = heatmaps.heatmaps(pts.detach(), 16, 1.0, groups=[np.array([0, 1]), np.array([5]), np.array([1, 5])])
    assert custom.shape == (2, 3, 16, 16)  # groups may share points
    dense16 = heatmaps.heatmaps(pts.detach(), 16, 1.0)
    torch.testing.assert_close(custom[:, 2], dense16[:, [1, 5]].amax(1), atol=1e-5, rtol=0)
    # points off the map (or near its border) render only their visible part, without wrapping around
    edge = heatmaps.heatmaps(torch.tensor([[[-0.05, 0.5], [1.02, 0.02]]]), 16, 1.0, groups=[[0], [1]])
    dense = heatmaps.heatmaps(torch.tensor([[[-0.05, 0.5], [1.02, 0.02]]]), 16, 1.0)
    torch.testing.assert_close(edge, dense, atol=1e-5, rtol=0)
    assert edge[0, 0, :, -4:].max() < 1e-6 and edge[0, 1, -4:, :].max() < 1e-6
    with pytest.raises(ValueError):
        heatmaps.heatmaps(torch.zeros(3, 2), 16, 1.0)


def _noisy_step_track(fps: float, seconds: float = 4.0, step_at: float = 2.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(fps * seconds)) / fps
    clean = np.zeros((len(t), 5, 2))
    clean[t >= step_at] = 20.0  # every point jumps by (20, 20) px at step_at
    return t, clean, clean + rng.normal(scale=1.0, size=clean.shape)


@pytest.mark.parametrize("fps", [30.0, 60.0])
def test_one_euro_reduces_jitter_and_follows_steps(fps: float) -> None:
    t, clean, noisy = _noisy_step_track(fps)
    f = smoothing.OneEuroFilter(min_cutoff=1.0, beta=0.05, d_cutoff=1.0)
    out = np.stack([f(x, ti) for x, ti in zip(noisy, t)])
    still = (t > 0.5) & (t < 2.0)
    jitter_in = np.diff(noisy[still], axis=0).std()
    jitter_out = np.diff(out[still], axis=0).std()
    assert jitter_out < jitter_in / 3, (jitter_in, jitter_out)
    after = t >= 2.0
    reached = t[after][np.all(np.abs(out[after] - 20.0) < 2.0, axis=(1, 2))]
    lag = reached[0] - 2.0
    assert lag < 0.25, lag  # follows the 20 px jump within a quarter second, at any frame rate


def test_one_euro_stateful_behaviour() -> None:
    f = smoothing.OneEuroFilter(min_cutoff=0.5, beta=0.0)
    x0 = np.zeros((3, 2))
    np.testing.assert_array_equal(f(x0, 0.0), x0)  # the first sample passes through
    y = f(np.ones((3, 2)), 1 / 30)
    assert np.all((y > 0) & (y < 1))
    np.testing.assert_array_equal(f(np.full((3, 2), np.nan), 2 / 30), y)  # missed detections are skipped
    np.testing.assert_array_equal(f(np.ones((3, 2)) * 5, 1 / 30), y)  # time did not advance
    # frame-rate aware: a longer gap lets the output move further towards the input
    g = smoothing.OneEuroFilter(min_cutoff=0.5, beta=0.0)
    g(x0, 0.0)
    assert np.all(g(np.ones((3, 2)), 0.2) > y)
    with pytest.raises(ValueError, match="shape"):
        f(np.zeros(4), 1.0)
    f.reset()
    np.testing.assert_array_equal(f(np.full(4, 7.0), 5.0), np.full(4, 7.0))
    with pytest.raises(ValueError):
        smoothing.OneEuroFilter(min_cutoff=0.0)
