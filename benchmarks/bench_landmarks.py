"""Landmark stack and media I/O benchmark: latency, jitter, backend agreement, heatmap speed.

Usage (numbers go to docs/RESULTS.md, section "FaceWorld and landmarks"):
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_landmarks.py [--clip ../shared/data/driving/d11.mp4]
        [--frames 120] [--repeats 20]
Prints a Markdown table. Times are medians over the frames (or repeats), in ms, on whatever this machine is.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _jitter(points: np.ndarray) -> float:
    """Mean per-point frame-to-frame motion of [T, 68, 2] points, in units of the inter-ocular distance."""
    iod = np.linalg.norm(points[:, 36] - points[:, 45], axis=-1)
    return float((np.linalg.norm(np.diff(points, axis=0), axis=-1).mean(-1) / iod[1:]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default=str(REPO.parent / "shared" / "data" / "driving" / "d11.mp4"))
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()

    import skimage.data
    import torch

    from engine.landmarks import create_detector, schema
    from engine.landmarks.align import align_image, align_points, nme
    from engine.landmarks.heatmaps import heatmaps
    from engine.landmarks.smoothing import OneEuroFilter
    from engine.media import VideoWriter, read_frames

    rows: list[tuple[str, str]] = []
    frames = read_frames(args.clip, max_frames=args.frames)
    fps = 25.0
    rows.append(("clip", f"{Path(args.clip).name}: {len(frames)} frames {frames.shape[2]}x{frames.shape[1]}"))

    results = {}
    for mode in (False, True):
        with create_detector("mediapipe", video_mode=mode) as det:
            det.detect(frames[0])  # warm-up
            det.reset()
            times, pts = [], []
            for f in frames:
                t0 = time.perf_counter()
                d = det.detect(f)
                times.append((time.perf_counter() - t0) * 1e3)
                pts.append(schema.to_ibug68(d.points))
            results[mode] = np.stack(pts)
            name = "video (tracking)" if mode else "image (static)"
            rows.append((f"mediapipe {name} mode, ms/frame", f"{statistics.median(times):.1f}"))
    found = np.isfinite(results[True]).all(axis=(1, 2))
    rows.append(("mediapipe video-mode detection rate", f"{found.mean():.3f}"))
    rows.append(("jitter static mode (mean per-point motion / IOD per frame)", f"{_jitter(results[False]):.4f}"))
    rows.append(("jitter video mode", f"{_jitter(results[True]):.4f}"))
    f1 = OneEuroFilter(min_cutoff=1.0, beta=0.05)
    smooth = np.stack([f1(p, i / fps) for i, p in enumerate(results[True])])
    rows.append(("jitter video mode + One-Euro (1.0 Hz, beta 0.05)", f"{_jitter(smooth):.4f}"))
    rows.append(("NME video vs static mode (mean)", f"{float(nme(results[True], results[False]).mean()):.4f}"))

    try:
        with create_detector("dlib") as dl:
            dl.detect(frames[0])
            times, errs = [], []
            for i, f in enumerate(frames[:: max(1, len(frames) // 30)]):
                t0 = time.perf_counter()
                d = dl.detect(f)
                times.append((time.perf_counter() - t0) * 1e3)
                if d.found:
                    errs.append(float(nme(results[False][i * max(1, len(frames) // 30)], d.points)))
            rows.append(("dlib (HOG + 68-pt predictor) ms/frame", f"{statistics.median(times):.1f}"))
            rows.append(("NME mediapipe->iBUG68 vs dlib (mean over frames)", f"{np.mean(errs):.4f}"))
    except RuntimeError as exc:
        rows.append(("dlib", f"not available ({str(exc)[:60]}...)"))

    astro = skimage.data.astronaut()
    with create_detector("mediapipe") as det:
        d = det.detect(astro)
        rows.append(("mediapipe image mode on astronaut 512², ms", f"{_median_ms(lambda: det.detect(astro), 10):.1f}"))
    rows.append(("align_points (Umeyama, 478 pts), ms", f"{_median_ms(lambda: align_points(d.points), 200):.3f}"))
    rows.append(("align_image 256², ms", f"{_median_ms(lambda: align_image(astro, d.points, 256), 50):.2f}"))

    pts = torch.rand(32, 78, 2)
    for groups, label in ((None, "per point [32,78,64,64]"), (True, "per region [32,6,64,64]")):
        with torch.no_grad():
            heatmaps(pts, 64, 1.5, groups)
            ms = _median_ms(lambda g=groups: heatmaps(pts, 64, 1.5, g), args.repeats)
        rows.append((f"heatmaps {label}, forward, ms", f"{ms:.2f}"))
        p = pts.clone().requires_grad_(True)

        def fwd_bwd(g=groups, p=p) -> None:
            heatmaps(p, 64, 1.5, g).square().mean().backward()

        rows.append((f"heatmaps {label}, forward+backward, ms", f"{_median_ms(fwd_bwd, args.repeats):.2f}"))

    with tempfile.TemporaryDirectory() as tmp:
        h, w = frames.shape[1:3]
        t0 = time.perf_counter()
        with VideoWriter(Path(tmp) / "out.mp4", fps, (w, h)) as vw:
            for f in frames:
                vw.write(f)
        enc = len(frames) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        n = len(read_frames(Path(tmp) / "out.mp4"))
        dec = n / (time.perf_counter() - t0)
    rows.append((f"VideoWriter H.264 {w}x{h} (veryfast, crf 20), frames/s", f"{enc:.0f}"))
    rows.append((f"VideoReader decode {w}x{h}, frames/s", f"{dec:.0f}"))

    print(f"torch threads: {torch.get_num_threads()}")
    print("| measure | value |\n| --- | --- |")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
