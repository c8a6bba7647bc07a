"""``d2a animate``: animate a source portrait with a driving video (or a folder of images) to an H.264 mp4."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

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
    """``seed:N`` -> int N; anything else -> an RGB image loaded from that path."""
    if text.lower().startswith("seed:"):
        try:
            return int(text.split(":", 1)[1])
        except ValueError as e:
            raise click.BadParameter(f"expected seed:N with an integer N, got {text!r}") from e
    from engine.media import load_image

    return load_image(text)


def side_by_side(driver: Any, output: Any) -> Any:
    """Driver frame (resized to the output's height) | output frame -> one uint8 image."""
    import numpy as np
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
    animator: Any,
    driving: str | Path,
    out: str | Path,
    *,
    side: bool = False,
    max_frames: int | None = None,
    calibrate: str = "first",
    show_progress: bool = True,
    on_frame: Any = None,
) -> dict[str, Any]:
    """Drive ``animator`` (source already set) with a video/image folder and write an H.264 mp4.

    calibrate: "first" (the first frame with a face is the neutral reference) or "auto" (the most neutral of the
    first frames, ``Animator.auto_calibrate``). Frames without a face repeat the last good output.
    ``on_frame(index, driver_frame, driver_points | None, output_frame)`` is called per written frame.
    Returns {"frames", "no_face_frames", "fps", "timings": rolling median/p95 per stage}.
    Raises ValueError when no face is found in the first ``NO_FACE_WINDOW`` frames.
    """
    import numpy as np
    from tqdm import tqdm

    from engine.landmarks import create_detector
    from engine.media import VideoWriter
    from engine.metrics import RollingStats

    frames, fps, count = driving_frames(driving)
    total = min(count, max_frames) if (count and max_frames) else (count or max_frames or None)
    det = create_detector("mediapipe", video_mode=True)
    state: dict[str, Any] = {"writer": None, "n": 0, "missing": 0}
    stats = RollingStats(window=10_000)
    bar = tqdm(total=total, desc="animate", unit="frame", disable=not show_progress)

    def emit(frame: Any, pts: Any) -> None:
        if pts is not None and animator.config.mode == "absolute":
            # absolute mode uses the driver's landmarks in the source's frame: rescale the driver frame to it
            h, w = animator.source_image.shape[:2]
            pts = pts * np.array([w / frame.shape[1], h / frame.shape[0]], np.float32)
        outs = animator.step_frames(pts, None)
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


@click.command("animate")
@click.option("--bundle", "bundle_path", type=click.Path(), default=None, help="Bundle folder (default: embedded).")
@click.option("--source", required=True, help="Source portrait: an image file, or seed:N for a generated face.")
@click.option("--driving", required=True, type=click.Path(), help="Driving video or folder of images.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .mp4 (H.264).")
@click.option("--mode", type=click.Choice(["relative", "absolute"]), default="relative", show_default=True)
@click.option("--side-by-side", "side", is_flag=True, help="Write driver | output side by side.")
@click.option("--calibrate", type=click.Choice(["first", "auto"]), default="first", show_default=True,
              help="Relative mode reference: the first frame with a face, or the most neutral early frame.")
@click.option("--smoothing", type=float, default=0.0, show_default=True, help="One-Euro strength (0 = off).")
@click.option("--interpolate", type=int, default=0, show_default=True, help="In-between frames per frame.")
@click.option("--steps", type=int, default=300, show_default=True, help="Inversion steps for an image source.")
@click.option("--max-frames", type=int, default=None, help="Stop after this many driving frames.")
@click.option("--device", default="cpu", show_default=True)
def command(
    bundle_path: str | None,
    source: str,
    driving: str,
    out: str,
    mode: str,
    side: bool,
    calibrate: str,
    smoothing: float,
    interpolate: int,
    steps: int,
    max_frames: int | None,
    device: str,
) -> None:
    """Animate a source portrait with a driving video to an mp4.

    \b
    Examples:
      d2a animate --source seed:3 --driving clip.mp4 --out out.mp4
      d2a animate --source me.png --driving frames/ --out out.mp4 --mode absolute --side-by-side
      d2a animate --bundle my_bundle --source seed:7 --driving clip.mp4 --out out.mp4 --smoothing 0.5
    """
    from engine.animate import Animator, AnimatorConfig
    from engine.media import MediaError

    try:
        probe_driving(driving)
        src = parse_source(source)
        cfg = AnimatorConfig(mode=mode, smoothing=smoothing, interpolate=interpolate)
        anim = Animator(bundle_path, device=device, config=cfg)
        if isinstance(src, int):
            anim.set_source(src)
        else:
            from tqdm import tqdm

            bar = tqdm(total=steps, desc="invert", unit="step")
            anim.set_source(src, steps=steps, progress=lambda i, n, loss: bar.update(1))
            bar.close()
        info = animate_video(anim, driving, out, side=side, max_frames=max_frames, calibrate=calibrate)
        anim.close()
    except (MediaError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    med = info["timings"].get("total", {}).get("median", float("nan"))
    click.echo(f"wrote {out}: {info['frames']} frames ({info['no_face_frames']} without a face), {med:.1f} ms/frame")
