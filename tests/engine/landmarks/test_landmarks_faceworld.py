"""The landmark stack on FaceWorld renders, where the true positions of key points are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.landmarks import create_detector, schema
from engine.landmarks.align import align_image
from engine.landmarks.geometry import nme
from engine.landmarks.smoothing import OneEuroFilter

# FaceWorld analytic key point -> mediapipe index (both use the subject's left/right)
PAIRS = {
    "iris_right": schema.RIGHT_IRIS_CENTER,
    "iris_left": schema.LEFT_IRIS_CENTER,
    "mouth_right": schema.MOUTH_RIGHT,
    "mouth_left": schema.MOUTH_LEFT,
    "lip_upper": schema.UPPER_LIP_TOP,
    "lip_lower": schema.LOWER_LIP_BOTTOM,
    "lip_upper_inner": schema.UPPER_LIP_INNER,
    "lip_lower_inner": schema.LOWER_LIP_INNER,
}


@pytest.fixture(scope="module")
def faceworld():
    from engine.generators import load_generator

    return load_generator("faceworld", resolution=160)  # small renders keep the test fast; mediapipe copes


def _render(g, params: dict[str, torch.Tensor]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    from engine.media import to_uint8

    n = len(next(iter(params.values())))
    with torch.no_grad():  # one face at a time: big batches thrash the shared CPU cache
        one = [{k: v[i : i + 1] for k, v in params.items()} for i in range(n)]
        img = np.concatenate([to_uint8(g.render_params(p)) for p in one])
        kp = {k: v.numpy() for k, v in g.keypoints_from_params(params).items()}
    return img, kp


def _iod(kp: dict[str, np.ndarray]) -> np.ndarray:
    return np.linalg.norm(kp["iris_left"] - kp["iris_right"], axis=-1)


def test_detected_points_match_faceworld_ground_truth(faceworld, detector) -> None:
    z = torch.randn(6, faceworld.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        params = faceworld.decode(faceworld.mapping(z, truncation_psi=0.7))
    images, kp = _render(faceworld, params)
    iod = _iod(kp)
    errors = []
    for i, img in enumerate(images):
        d = detector.detect(img)
        assert d.found, i
        errors.append([np.linalg.norm(d.points[idx] - kp[name][i]) / iod[i] for name, idx in PAIRS.items()])
    errors = np.array(errors)  # [faces, points], in units of the inter-ocular distance
    assert errors.mean() < 0.05 and errors.max() < 0.12, errors.round(3)
    # the subject's right iris is the one on the image left, in FaceWorld as in the schema
    assert np.all(kp["iris_right"][:, 0] < kp["iris_left"][:, 0])


def test_video_mode_follows_a_head_turn(faceworld) -> None:
    n = 8
    params = faceworld.neutral_params(n)
    params["yaw"] = torch.linspace(-0.35, 0.35, n)
    params["blink_left"] = torch.zeros(n)
    params["blink_right"] = torch.zeros(n)
    frames, kp = _render(faceworld, params)
    with create_detector("mediapipe", video_mode=True) as det:
        tracked = det.detect_many(frames)
    assert all(d.found for d in tracked)
    pts = np.stack([d.points for d in tracked])
    iod = _iod(kp)
    for name in ("iris_right", "iris_left", "mouth_right", "mouth_left"):
        err = np.linalg.norm(pts[:, PAIRS[name]] - kp[name], axis=-1) / iod
        assert err.max() < 0.12, (name, err.round(3))
    nose_rel = (pts[:, schema.NOSE_TIP, 0] - pts[:, schema.FACE].mean(1)[:, 0]) / iod
    assert np.all(np.diff(nose_rel) > 0), "the nose moves towards image right as yaw grows"
    with create_detector("mediapipe") as static:
        ref = np.stack([static.detect(frames[i]).points for i in (0, n // 2, n - 1)])
    assert np.all(nme(pts[[0, n // 2, n - 1]], ref) < 0.05)


def test_one_euro_smooths_real_detection_jitter(faceworld) -> None:
    """A still FaceWorld head with fresh sensor-like noise each frame: detections jitter, the filter calms them."""
    image, _ = _render(faceworld, faceworld.neutral_params(1))
    rng = np.random.default_rng(0)
    fps, n = 30.0, 24
    frames = [np.clip(image[0] + rng.normal(0, 8, image[0].shape), 0, 255).astype(np.uint8) for _ in range(n)]
    with create_detector("mediapipe") as det:  # image mode: every frame detected from scratch (most jitter)
        raw = np.stack([det.detect(f).points[schema.FACE] for f in frames])
    f = OneEuroFilter(min_cutoff=1.0, beta=0.02)
    smooth = np.stack([f(p, i / fps) for i, p in enumerate(raw)])
    settle = 6  # skip the filter's first frames
    jitter_raw = np.linalg.norm(np.diff(raw[settle:], axis=0), axis=-1).mean()
    jitter_smooth = np.linalg.norm(np.diff(smooth[settle:], axis=0), axis=-1).mean()
    assert jitter_raw > 0.05, "the noisy frames must make the detector jitter for this test to mean anything"
    assert jitter_smooth < 0.5 * jitter_raw, (jitter_raw, jitter_smooth)
    assert np.abs(smooth[-1] - raw.mean(0)).max() < 2.0  # no drift away from the true position


def test_align_image_on_faceworld(faceworld, detector) -> None:
    params = faceworld.neutral_params(1)
    params["roll"] = torch.tensor([0.3])
    params["scale"] = params["scale"] * 0.8
    image, _ = _render(faceworld, params)
    d = detector.detect(image[0])
    crop, _ = align_image(image[0], d.points, size=192)
    again = detector.detect(crop)
    assert again.found
    eyes = again.points[[schema.RIGHT_IRIS_CENTER, schema.LEFT_IRIS_CENTER]]
    angle = np.degrees(np.arctan2(*(eyes[1] - eyes[0])[::-1]))
    assert abs(angle) < 3.0, angle  # the 0.3 rad roll is undone: the eye line is level in the crop


def test_tracker_smooths_and_resets(faceworld) -> None:
    from engine.landmarks.tracking import LandmarkTracker, TrackerConfig

    image, _ = _render(faceworld, faceworld.neutral_params(1))
    rng = np.random.default_rng(3)
    noisy = [np.clip(image[0] + rng.normal(0, 8, image[0].shape), 0, 255).astype(np.uint8) for _ in range(10)]
    blank = np.full_like(image[0], 90)
    with LandmarkTracker(TrackerConfig(smoothing=True)) as tr, LandmarkTracker(TrackerConfig(smoothing=False)) as raw:
        smooth_pts, raw_pts = [], []
        for i, f in enumerate(noisy):
            smooth_pts.append(tr.update(f, i / 30).points)
            raw_pts.append(raw.update(f, i / 30).points)
        lost = tr.update(blank, 10 / 30)
        assert not lost.found and tr.resets == 1
        again = tr.update(noisy[0], 11 / 30)  # history dropped: the first frame after a loss passes through
        with create_detector("mediapipe", video_mode=True) as fresh:
            np.testing.assert_allclose(again.points, fresh.detect(noisy[0]).points, atol=0.5)
    j_s = np.abs(np.diff(np.stack(smooth_pts)[3:], axis=0)).mean()
    j_r = np.abs(np.diff(np.stack(raw_pts)[3:], axis=0)).mean()
    assert j_s < 0.6 * j_r, (j_s, j_r)
