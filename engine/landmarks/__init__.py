"""Facial landmarks: one detector interface over several backends, a shared schema, alignment, heatmaps, smoothing.

>>> det = create_detector("mediapipe", video_mode=False)
>>> d = det.detect(image_rgb_uint8)      # Detection(points [478, 2] px, found, confidence, box)

Backends (imported lazily): "mediapipe" (default, 478 points), "dlib" (68 points, optional extra ``[dlib]``),
"face-alignment" (68 points, optional extra ``[face-alignment]``; needs its weights in the torch hub cache).
The submodules ``schema``, ``geometry``, ``align``, ``heatmaps`` and ``smoothing`` are importable without any backend;
``tracking.LandmarkTracker`` combines a video-mode detector with One-Euro smoothing for live use.
"""

from __future__ import annotations

from engine.landmarks.base import BackendUnavailable, Detection, DetectorConfig, LandmarkDetector

BACKENDS = ("mediapipe", "dlib", "face-alignment")

__all__ = ["BACKENDS", "BackendUnavailable", "Detection", "DetectorConfig", "LandmarkDetector", "create_detector"]


def create_detector(
    backend: str = "mediapipe",
    *,
    video_mode: bool = False,
    max_faces: int | None = None,
    min_detection_confidence: float = 0.5,
    min_tracking_confidence: float = 0.5,
    **kw,
) -> LandmarkDetector:
    """A landmark detector.

    backend:    "mediapipe" (478 points, default), "dlib" (68) or "face-alignment" (68; alias "fa").
    video_mode: consecutive calls are frames of one video: track and keep following the same face.
    max_faces:  faces considered per frame. Default: 3 for images (the largest face is returned) and 1 in video
                mode, where mediapipe's own tracker then follows one face and skips its face detector on most
                frames (faster: 3.6 vs 5.7 ms per 512² frame at best here, 4 vs 20 ms median on a busy CPU;
                docs/RESULTS.md, 'Landmark stack and media I/O'); that face is the one
                mediapipe's detector finds first (usually the most prominent). With ``max_faces > 1`` in video
                mode, the largest face is taken first and then the one nearest the previous box is kept.
    kw:         backend-specific options (dlib: ``predictor_path``, ``upsample``; face-alignment: ``device``,
                ``allow_download``).
    Raises ValueError for an unknown backend and ``BackendUnavailable`` (a RuntimeError whose message says what to
    install or where to put files) when an optional backend cannot run.
    """
    config = DetectorConfig(
        video_mode=video_mode,
        max_faces=(1 if video_mode else 3) if max_faces is None else int(max_faces),
        min_detection_confidence=min_detection_confidence,
        min_tracking_confidence=min_tracking_confidence,
        extra=dict(kw),
    )
    name = backend.lower().replace("_", "-")
    if name == "mediapipe":
        from engine.landmarks.mediapipe_backend import MediapipeDetector

        return MediapipeDetector(config)
    if name == "dlib":
        from engine.landmarks.dlib_backend import DlibDetector

        return DlibDetector(config)
    if name in ("face-alignment", "fa", "facealignment"):
        from engine.landmarks.fa_backend import FaceAlignmentDetector

        return FaceAlignmentDetector(config)
    raise ValueError(f"unknown landmark backend {backend!r}; choose one of {', '.join(BACKENDS)}")
