"""Video driving, shared by ``d2a animate``/``d2a demo`` and the app: driving inputs (a video or an image folder),
source specs, the absolute-mode driver rescale, and the offline loop ``animate_video`` that writes an mp4.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from engine.animate.animator import Animator

NO_FACE_WINDOW = 30  # frames at the start of the driving input that must contain a face
AUTO_WINDOW = 15  # "auto" calibration picks the most neutral of this many first frames


def driving_frames(path: str | Path) -> tuple[Iterator[Any], float, int]:
    """Frames of a driving video or image folder -> (iterator of RGB uint8 [H, W, 3], fps, frame count or 0)."""
    from engine.media import IMAGE_EXTENSIONS, MediaError, VideoReader, load_image

    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise MediaError(f"{p}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
        return (load_image(f) for f in files), 25.0, len(files)
    reader = VideoReader(p)

    def gen() -> Iterator[Any]:
        with reader:
            yield from reader

    return gen(), float(reader.fps or 25.0), int(reader.frame_count or 0)


def probe_driving(path: str | Path) -> None:
    """Fail fast (MediaError) on a missing/unreadable driving input, before any model is loaded."""
    from engine.media import IMAGE_EXTENSIONS, MediaError, VideoReader

    p = Path(path)
    if p.is_dir():
        if not any(f.suffix.lower() in IMAGE_EXTENSIONS for f in p.iterdir()):
            raise MediaError(f"{p}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
        return
    VideoReader(p).close()


def parse_source(text: str) -> Any:
    """``seed:N`` -> int N; anything else -> an RGB image loaded from that path. ValueError on a bad ``seed:``."""
    if text.lower().startswith("seed:"):
        try:
            return int(text.split(":", 1)[1])
        except ValueError as e:
            raise ValueError(f"expected seed:N with an integer N, got {text!r}") from e
    from engine.media import load_image

    return load_image(text)


def load_sample_source(samples: Path) -> Any:
    """The sample source: its shipped W+ code when present, else the image (inverted on the fly)."""
    ws_file = samples / "source_ws.safetensors"
    if ws_file.is_file():
        from safetensors.torch import load_file

        return load_file(str(ws_file))["ws"]
    from engine.media import load_image

    return load_image(samples / "source.png")


def side_by_side(driver: Any, output: Any) -> Any:
    """Driver frame (resized to the output's height) | output frame -> one uint8 image."""
    import torch
    import torch.nn.functional as F

    h = output.shape[0]
    if driver.shape[0] != h:
        t = torch.from_numpy(np.ascontiguousarray(driver)).permute(2, 0, 1)[None].float()
        w = max(2, round(driver.shape[1] * h / driver.shape[0]))
        t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        driver = t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return np.concatenate([driver, output], axis=1)


def animate_video(
    animator: Animator,
    driving: str | Path,
    out: str | Path,
    *,
    side: bool = False,
    max_frames: int | None = None,
    calibrate: str = "first",
    show_progress: bool = True,
    on_frame: Callable[[int, Any, Any, Any], None] | None = None,
) -> dict[str, Any]:
    """Drive ``animator`` (source already set) with a video/image folder and write an H.264 mp4.

    calibrate: "first" (the first frame with a face is the neutral reference) or "auto" (the most neutral of the
    first frames, ``Animator.auto_calibrate``). Frames without a face repeat the last good output.
    ``on_frame(index, driver_frame, driver_points | None, output_frame)`` is called per written frame.
    Returns {"frames", "no_face_frames", "fps", "timings": rolling median/p95 per stage}.
    Raises ValueError when no face is found in the first ``NO_FACE_WINDOW`` frames.
    """
    from tqdm import tqdm

    from engine.landmarks import create_detector
    from engine.media import VideoWriter
    from engine.timing import RollingStats

    frames, fps, count = driving_frames(driving)
    total = min(count, max_frames) if (count and max_frames) else (count or max_frames or None)
    det = create_detector("mediapipe", video_mode=True)
    state: dict[str, Any] = {"writer": None, "n": 0, "missing": 0}
    stats = RollingStats(window=10_000)
    bar = tqdm(total=total, desc="animate", unit="frame", disable=not show_progress)

    def emit(frame: Any, pts: Any) -> None:
        outs = animator.step_frames(pts, None, frame_shape=frame.shape)
        stats.add(animator.last_timings)
        state["missing"] += pts is None
        for o in outs:
            img = side_by_side(frame, o) if side else o
            if state["writer"] is None:
                rate = fps * (1 + animator.config.interpolate)
                state["writer"] = VideoWriter(out, rate, (img.shape[1], img.shape[0]))
            state["writer"].write(img)
        if on_frame is not None:
            on_frame(state["n"], frame, pts, outs[-1])
        state["n"] += 1
        bar.update(1)

    def start(head: list[tuple[Any, Any]]) -> None:
        faces = [p for _, p in head if p is not None]
        if animator.config.mode == "relative":
            if calibrate == "auto":
                animator.auto_calibrate(faces)
            else:
                animator.calibrate(faces[0])
        for fr, p in head:
            emit(fr, p)

    head: list[tuple[Any, Any]] = []  # frames buffered until the reference is chosen
    started = False
    consumed = 0
    try:
        for frame in frames:
            if max_frames is not None and consumed >= max_frames:
                break
            consumed += 1
            d = det.detect(frame)
            pts = d.points if d.found else None
            if started:
                emit(frame, pts)
                continue
            head.append((frame, pts))
            n_faces = sum(p is not None for _, p in head)
            if n_faces == 0 and len(head) >= NO_FACE_WINDOW:
                raise ValueError(f"{driving}: no face found in the first {len(head)} frames")
            if n_faces and (calibrate == "first" or len(head) >= AUTO_WINDOW):
                start(head)
                started, head = True, []
        if not started:
            if not head:
                raise ValueError(f"{driving}: no frames to read")
            if not any(p is not None for _, p in head):
                raise ValueError(f"{driving}: no face found in the first {len(head)} frames")
            start(head)
    finally:
        bar.close()
        det.close()
        if state["writer"] is not None:
            state["writer"].close()
    n, missing = state["n"], state["missing"]
    return {"frames": n, "no_face_frames": int(missing), "fps": fps, "timings": stats.summary()}
