"""The detector interface shared by all landmark backends, input checking, and face selection."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]


class BackendUnavailable(RuntimeError):
    """An optional landmark backend cannot run here; the message says what to install or where to put files."""


@dataclass
class Detection:
    """One detected face (or the absence of one).

    points:     np.float32 [K, 2] pixel (x, y); K = 478 for mediapipe, 68 for dlib / face-alignment.
                When ``found`` is False the points are all NaN (so that using them by mistake poisons results
                instead of silently drawing a face at the corner) and ``box`` is None.
    found:      whether a face was detected.
    confidence: in [0, 1]; 0 when not found. Backend-specific (see each backend's docstring).
    box:        (x0, y0, x1, y1) pixel bounds of the landmarks, or None.
    depth:      np.float32 [K] relative depth of each point in pixels (larger = further from the camera), when the
                backend estimates one (mediapipe's z); else None.
    """

    points: np.ndarray
    found: bool
    confidence: float = 0.0
    box: Box | None = None
    depth: np.ndarray | None = None

    @classmethod
    def missing(cls, num_points: int) -> Detection:
        """A ``found=False`` detection with NaN points."""
        return cls(np.full((num_points, 2), np.nan, dtype=np.float32), False, 0.0, None)


@dataclass
class DetectorConfig:
    """Options common to every backend."""

    video_mode: bool = False  # track across frames (keeps following the same face) instead of independent images
    max_faces: int = 3  # faces considered per frame; the largest (or, in video mode, the tracked one) is returned
    min_detection_confidence: float = 0.5  # backend detector threshold
    min_tracking_confidence: float = 0.5  # mediapipe video mode: below this, re-detect
    extra: dict = field(default_factory=dict)  # backend-specific options


def as_rgb_uint8(image) -> np.ndarray:
    """Validate and convert an image to a C-contiguous ``np.uint8 [H, W, 3]`` RGB array.

    Accepts uint8 ``[H, W]`` (grayscale), ``[H, W, 1]``, ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA, alpha dropped).
    Raises ValueError for anything else (float images, wrong shapes, empty images, non-arrays).
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy uint8 image [H, W, 3], got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(
            f"expected a uint8 RGB image, got dtype {image.dtype}; convert floats in [0, 1] with "
            "(img * 255).round().clip(0, 255).astype(np.uint8)"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif not (image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"expected an image [H, W], [H, W, 3] or [H, W, 4], got shape {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image too small: {image.shape}")
    return np.ascontiguousarray(image)


def points_box(points: np.ndarray) -> Box:
    """(x0, y0, x1, y1) bounds of ``points [K, 2]`` (ignoring NaN)."""
    x0, y0 = np.nanmin(points, axis=0)
    x1, y1 = np.nanmax(points, axis=0)
    return (float(x0), float(y0), float(x1), float(y1))


def box_area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def choose_face(candidates: list[np.ndarray], previous: Box | None) -> int:
    """Index of the face to return among ``candidates`` (each ``[K, 2]`` pixels).

    Without a previous box: the largest face (box area). With one (video mode): the face whose box centre is
    nearest to the previous box centre, relative to the previous box size, so a second, larger face entering the
    frame does not steal the track.
    """
    boxes = [points_box(c) for c in candidates]
    if previous is None:
        return int(np.argmax([box_area(b) for b in boxes]))
    px, py = (previous[0] + previous[2]) / 2, (previous[1] + previous[3]) / 2
    size = max(1.0, math.sqrt(box_area(previous)))
    dist = [math.hypot((b[0] + b[2]) / 2 - px, (b[1] + b[3]) / 2 - py) / size for b in boxes]
    return int(np.argmin(dist))


class LandmarkDetector:
    """Base class of the landmark backends: ``detect(image) -> Detection``; a context manager.

    Subclasses implement ``_detect_all(image) -> (list of [K, 2] candidate point arrays, list of confidences)``
    (or [K, 3] with a depth column) and ``_close()``; this class handles input conversion, face selection and tracking.
    """

    num_points: int = 0
    name: str = "base"

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self._previous_box: Box | None = None
        self._closed = False

    @property
    def video_mode(self) -> bool:
        return self.config.video_mode

    def detect(self, image: np.ndarray) -> Detection:
        """Landmarks of the main face in ``image`` (RGB uint8 [H, W, 3]; gray / RGBA accepted).

        Returns ``Detection(found=False)`` when there is no face; raises ValueError for invalid input.
        """
        if self._closed:
            raise RuntimeError(f"{self.name} detector is closed")
        rgb = as_rgb_uint8(image)
        candidates, scores = self._detect_all(rgb)
        if not candidates:
            self._previous_box = None
            return Detection.missing(self.num_points)
        arrays = [np.asarray(c, dtype=np.float32) for c in candidates]
        i = choose_face([a[:, :2] for a in arrays], self._previous_box if self.video_mode else None)
        pts = arrays[i][:, :2]
        depth = arrays[i][:, 2].copy() if arrays[i].shape[1] > 2 else None
        box = points_box(pts)
        if self.video_mode:
            self._previous_box = box
        return Detection(pts, True, float(np.clip(scores[i], 0.0, 1.0)), box, depth)

    def detect_many(self, images: Iterable[np.ndarray]) -> list[Detection]:
        """``detect`` on each image in turn (in video mode: as consecutive frames)."""
        return [self.detect(im) for im in images]

    def reset(self) -> None:
        """Forget the tracked face (video mode)."""
        self._previous_box = None

    def close(self) -> None:
        """Release the backend; further ``detect`` calls raise RuntimeError. Idempotent."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> LandmarkDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _detect_all(self, rgb: np.ndarray) -> tuple[list[np.ndarray], list[float]]:  # pragma: no cover
        raise NotImplementedError

    def _close(self) -> None:
        pass


def inside_fraction(points: np.ndarray, width: int, height: int) -> float:
    """Fraction of ``points [K, 2]`` inside the image; the confidence proxy of backends without a score."""
    x, y = points[:, 0], points[:, 1]
    ok = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return float(ok.mean())
