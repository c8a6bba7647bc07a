"""Real mediapipe face mesh through the detector interface: photo, clip, no face, bad input, several faces."""

from __future__ import annotations

import numpy as np
import pytest

from engine.landmarks import Detection, create_detector, schema
from engine.landmarks.geometry import nme


@pytest.fixture(scope="module")
def astro_det(detector, astronaut) -> Detection:
    return detector.detect(astronaut)


def _face_crop(image: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    crop = image[30:230, 125:325]  # the astronaut's head with some margin
    return cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def test_astronaut_photo(astro_det: Detection) -> None:
    d = astro_det
    assert d.found and 0.9 <= d.confidence <= 1.0
    assert d.points.shape == (schema.NUM_POINTS, 2) and d.points.dtype == np.float32
    assert d.depth is not None and d.depth.shape == (schema.NUM_POINTS,) and np.isfinite(d.depth).all()
    assert d.depth[schema.NOSE_TIP] < np.median(d.depth)  # mediapipe's z: the nose tip is nearest the camera
    # the face of skimage's astronaut lies roughly in x 150..300, y 60..200 (512x512 image)
    x, y = d.points[:, 0], d.points[:, 1]
    assert x.min() > 150 and x.max() < 300 and y.min() > 50 and y.max() < 200
    x0, y0, x1, y1 = d.box
    assert (x0, y0, x1, y1) == pytest.approx((x.min(), y.min(), x.max(), y.max()))
    p = d.points
    eyes_y = (p[schema.RIGHT_IRIS_CENTER, 1] + p[schema.LEFT_IRIS_CENTER, 1]) / 2
    assert eyes_y < p[schema.NOSE_TIP, 1] < p[schema.UPPER_LIP_INNER, 1] < p[schema.CHIN, 1]
    # subject's right eye is on the image left of a non-mirrored photo; irises sit between their eye corners
    assert p[schema.RIGHT_EYE_OUTER, 0] < p[schema.RIGHT_IRIS_CENTER, 0] < p[schema.RIGHT_EYE_INNER, 0]
    assert p[schema.LEFT_EYE_INNER, 0] < p[schema.LEFT_IRIS_CENTER, 0] < p[schema.LEFT_EYE_OUTER, 0]
    assert p[schema.MOUTH_RIGHT, 0] < p[schema.NOSE_TIP, 0] < p[schema.MOUTH_LEFT, 0]


def test_ibug68_mapping_is_anatomical(astro_det: Detection) -> None:
    p = schema.to_ibug68(astro_det.points)
    assert p.shape == (68, 2)
    jaw = p[0:17]
    assert np.all(np.diff(jaw[:, 0]) > -1.0), "jaw contour must run image-left to image-right"
    assert jaw[0, 0] < jaw[4, 0] < jaw[8, 0] < jaw[12, 0] < jaw[16, 0]
    steps = np.linalg.norm(np.diff(jaw, axis=0), axis=1)
    assert steps.max() < 3 * np.median(steps), "jaw points evenly spread along the contour"
    assert np.argmax(jaw[:, 1]) == 8, "point 8 is the chin, the lowest jaw point"
    assert np.all(np.diff(jaw[:9, 1]) > 0) and np.all(np.diff(jaw[8:, 1]) < 0)
    assert np.all(np.diff(p[17:27, 0]) > 0), "brows run left to right"
    assert p[17:27, 1].max() < p[36:48, 1].min(), "brows above the eyes"
    assert np.all(np.diff(p[27:31, 1]) > 0), "nose bridge runs downwards to the tip"
    assert np.all(np.diff(p[31:36, 0]) > 0)
    assert p[36, 0] < p[39, 0] < p[42, 0] < p[45, 0]
    for upper, lower in ((37, 41), (38, 40), (43, 47), (44, 46)):
        assert p[upper, 1] < p[lower, 1], "upper eyelid above lower eyelid"
    assert p[48, 0] < p[51, 0] < p[54, 0] and p[51, 1] < p[62, 1] <= p[66, 1] < p[57, 1]
    # the outer lip contour is a simple closed loop around the inner one
    assert p[48:60, 0].min() <= p[60:68, 0].min() + 1 and p[48:60, 0].max() >= p[60:68, 0].max() - 1


def test_ibug68_mapping_mirrors(detector, astronaut, astro_det: Detection) -> None:
    """Mirror pairs of the mapping are mirror pairs of the mesh: detect on the flipped photo, flip back."""
    flipped = detector.detect(np.ascontiguousarray(astronaut[:, ::-1]))
    assert flipped.found
    w = astronaut.shape[1]
    back = schema.to_ibug68(flipped.points)[schema.IBUG68_MIRROR].copy()
    back[:, 0] = (w - 1) - back[:, 0]
    err = float(nme(back, schema.to_ibug68(astro_det.points)))
    assert err < 0.06, err
    # a wrong pairing (identity instead of the mirror permutation) is far off
    wrong = schema.to_ibug68(flipped.points).copy()
    wrong[:, 0] = (w - 1) - wrong[:, 0]
    assert float(nme(wrong, schema.to_ibug68(astro_det.points))) > 0.3


def test_no_face(detector) -> None:
    yy, xx = np.mgrid[0:240, 0:320]
    gradient = np.stack([xx * 255 // 320, yy * 255 // 240, np.full_like(xx, 128)], -1).astype(np.uint8)
    for img in (np.full((200, 300, 3), 127, np.uint8), gradient):
        d = detector.detect(img)
        assert not d.found and d.box is None and d.confidence == 0.0
        assert d.points.shape == (schema.NUM_POINTS, 2) and np.isnan(d.points).all()


def test_input_conversion_and_errors(detector, astronaut) -> None:
    gray = (astronaut.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    assert detector.detect(gray).found
    assert detector.detect(gray[:, :, None]).found
    rgba = np.concatenate([astronaut, np.full(astronaut.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert detector.detect(rgba).found
    frozen = astronaut.copy()
    frozen.flags.writeable = False  # read-only buffers (np.frombuffer, shared memory) work and stay read-only
    assert detector.detect(frozen).found and not frozen.flags.writeable
    assert detector.detect(astronaut[:, ::-1]).found  # non-contiguous views are fine
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(astronaut.astype(np.float32) / 255)
    with pytest.raises(ValueError, match="shape"):
        detector.detect(np.zeros((64, 64, 5), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        detector.detect(np.zeros((2, 64, 64, 3), np.uint8))
    with pytest.raises(ValueError):
        detector.detect([[1, 2, 3]])
    with pytest.raises(ValueError, match="unknown landmark backend"):
        create_detector("nope")


def test_detect_many_and_close(astronaut) -> None:
    with create_detector("mediapipe") as det:
        ds = det.detect_many([astronaut, np.zeros((100, 100, 3), np.uint8)])
        assert [d.found for d in ds] == [True, False]
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(astronaut)
    det.close()  # idempotent


def _two_faces(astronaut: np.ndarray, big_on_left: bool) -> tuple[np.ndarray, int]:
    big, small = _face_crop(astronaut, 1.0), _face_crop(astronaut, 0.6)
    canvas = np.full((220, 460, 3), 200, np.uint8)
    bx = 10 if big_on_left else 250
    sx = 260 if big_on_left else 30
    canvas[10 : 10 + big.shape[0], bx : bx + big.shape[1]] = big
    canvas[60 : 60 + small.shape[0], sx : sx + small.shape[1]] = small
    return canvas, bx + big.shape[1] // 2


@pytest.mark.parametrize("big_on_left", [True, False])
def test_several_faces_picks_largest(detector, astronaut, big_on_left: bool) -> None:
    img, big_cx = _two_faces(astronaut, big_on_left)
    candidates, _ = detector._detect_all(img)
    assert len(candidates) == 2, "both faces must be seen for this test to mean anything"
    d = detector.detect(img)
    assert d.found
    cx = (d.box[0] + d.box[2]) / 2
    assert abs(cx - big_cx) < 40
    assert d.box[2] - d.box[0] > 80  # the big face is ~100 px wide, the small one ~60


@pytest.mark.parametrize("max_faces", [1, 3])
def test_video_mode_keeps_tracking_the_same_face(astronaut, max_faces: int) -> None:
    import cv2

    small = _face_crop(astronaut, 0.6)
    big = _face_crop(astronaut, 1.0)
    frames = []
    for t in range(8):
        canvas = np.full((240, 480, 3), 200, np.uint8)
        x = 20 + 3 * t  # the small face drifts slowly to the right
        canvas[60 : 60 + small.shape[0], x : x + small.shape[1]] = small
        if t >= 3:  # a bigger face enters on the right
            canvas[15 : 15 + big.shape[0], 260 : 260 + big.shape[1]] = big
        frames.append(cv2.GaussianBlur(canvas, (3, 3), 0))
    with create_detector("mediapipe", video_mode=True, max_faces=max_faces) as det:
        ds = det.detect_many(frames)
    assert all(d.found for d in ds)
    centres = [(d.box[0] + d.box[2]) / 2 for d in ds]
    assert all(c < 200 for c in centres), centres  # stayed on the small face on the left
    with create_detector("mediapipe") as static:  # an image detector picks the big one on the same frame
        d = static.detect(frames[-1])
        assert (d.box[0] + d.box[2]) / 2 > 260


def test_video_mode_with_several_faces_starts_on_the_largest(astronaut) -> None:
    img, big_cx = _two_faces(astronaut, big_on_left=False)
    with create_detector("mediapipe", video_mode=True, max_faces=3) as det:
        ds = det.detect_many([img, img, img])
    assert all(d.found and abs((d.box[0] + d.box[2]) / 2 - big_cx) < 40 for d in ds)


@pytest.mark.shared
def test_video_mode_on_real_clip(shared_dir) -> None:
    from engine.media import read_frames

    frames = read_frames(shared_dir / "data" / "driving" / "d11.mp4", max_frames=40)
    assert len(frames) == 40
    with create_detector("mediapipe", video_mode=True) as det:
        ds = det.detect_many(frames)
    assert all(d.found for d in ds)
    pts = np.stack([schema.to_ibug68(d.points) for d in ds])  # [T, 68, 2]
    iod = np.linalg.norm(pts[:, 36] - pts[:, 45], axis=-1)
    assert iod.min() > 30
    step = np.linalg.norm(np.diff(pts, axis=0), axis=-1).mean(-1) / iod[1:]  # mean per-frame motion / IOD
    assert np.median(step) < 0.05 and step.max() < 0.25, step
    with create_detector("mediapipe") as static:
        s = [static.detect(frames[i]) for i in (0, 20, 39)]
    err = nme(pts[[0, 20, 39]], np.stack([schema.to_ibug68(d.points) for d in s]))
    assert np.all(err < 0.06), err
