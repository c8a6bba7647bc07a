"""Landmark stack and media I/O benchmark: latency, jitter, backend agreement, heatmap speed.

Usage (numbers go to docs/RESULTS.md, section "Landmark stack and media I/O"):
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_landmarks.py [--clip ../shared/data/driving/d11.mp4]
        [--frames 120] [--repeats 20] [--threads N]
Prints a Markdown table. Per-frame detector times are medians over the frames; other times are "median (min)" over
the repeats, in ms (the min approximates an idle machine: the CPU is shared with other work here).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _median_ms(fn, repeats: int) -> str:
    """'median (min)' wall time of ``fn`` in ms; the min approximates the cost on an idle machine."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    med, low = statistics.median(times), min(times)
    digits = 3 if low < 1 else 2 if low < 10 else 1
    return f"{med:.{digits}f} ({low:.{digits}f})"


def _jitter(points: np.ndarray) -> float:
    """Mean per-point frame-to-frame motion of [T, 68, 2] points, in units of the inter-ocular distance."""
    iod = np.linalg.norm(points[:, 36] - points[:, 45], axis=-1)
    return float((np.linalg.norm(np.diff(points, axis=0), axis=-1).mean(-1) / iod[1:]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default=str(REPO.parent / "shared" / "data" / "driving" / "d11.mp4"))
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    ap.add_argument("--faceworld", type=int, default=50, help="FaceWorld samples for the ground-truth check (0: skip)")
    args = ap.parse_args()

    import skimage.data
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from engine.landmarks import create_detector, schema
    from engine.landmarks.align import align_image, align_points
    from engine.landmarks.geometry import nme
    from engine.landmarks.heatmaps import heatmaps
    from engine.landmarks.smoothing import OneEuroFilter
    from engine.media import VideoWriter, read_frames

    rows: list[tuple[str, str]] = []
    frames = read_frames(args.clip, max_frames=args.frames)
    fps = 25.0
    rows.append(("clip", f"{Path(args.clip).name}: {len(frames)} frames {frames.shape[2]}x{frames.shape[1]}"))

    results = {}
    for mode, faces in ((False, 3), (True, 1), (True, 3)):
        with create_detector("mediapipe", video_mode=mode, max_faces=faces) as det:
            det.detect(frames[0])  # warm-up
            det.reset()
            times, pts = [], []
            for f in frames:
                t0 = time.perf_counter()
                d = det.detect(f)
                times.append((time.perf_counter() - t0) * 1e3)
                pts.append(schema.to_ibug68(d.points))
            if faces == 1 or not mode:
                results[mode] = np.stack(pts)
            name = f"video (tracking, max_faces={faces})" if mode else "image (static, max_faces=3)"
            rows.append((f"mediapipe {name} mode, ms/frame", f"{statistics.median(times):.1f} ({min(times):.1f})"))
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
            rows.append(("dlib (HOG + 68-pt predictor) ms/frame", f"{statistics.median(times):.1f} ({min(times):.1f})"))
            rows.append(("NME mediapipe->iBUG68 vs dlib (mean over frames)", f"{np.mean(errs):.4f}"))
    except RuntimeError as exc:
        rows.append(("dlib", f"not available ({str(exc)[:60]}...)"))

    astro = skimage.data.astronaut()
    with create_detector("mediapipe") as det:
        d = det.detect(astro)
        rows.append(("mediapipe image mode on astronaut 512², ms", _median_ms(lambda: det.detect(astro), 10)))
    rows.append(("align_points (Umeyama, 478 pts), ms", _median_ms(lambda: align_points(d.points), 200)))
    rows.append(("align_image 256², ms", _median_ms(lambda: align_image(astro, d.points, 256), 50)))

    pts = torch.rand(32, 78, 2)
    for groups, label in ((None, "per point [32,78,64,64]"), (True, "per region [32,6,64,64]")):
        with torch.no_grad():
            heatmaps(pts, 64, 1.5, groups)
            ms = _median_ms(lambda g=groups: heatmaps(pts, 64, 1.5, g), args.repeats)
        rows.append((f"heatmaps {label}, forward, ms", ms))
        p = pts.clone().requires_grad_(True)
        with torch.no_grad():
            upstream = torch.randn_like(heatmaps(pts, 64, 1.5, groups))  # a fixed incoming gradient

        def fwd_bwd(g=groups, p=p, up=upstream) -> None:
            heatmaps(p, 64, 1.5, g).backward(up)

        rows.append((f"heatmaps {label}, forward+backward, ms", _median_ms(fwd_bwd, args.repeats)))

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

    if args.faceworld:
        rows.extend(_faceworld_rows(args.faceworld))

    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"torch threads: {torch.get_num_threads()}; load average at the end (1/5/15 min): {load}")
    print("| measure | value |\n| --- | --- |")
    for k, v in rows:
        print(f"| {k} | {v} |")


def _faceworld_rows(n: int) -> list[tuple[str, str]]:
    """Detected mediapipe points vs FaceWorld's analytic key points on ``n`` random faces (psi 0.7, 256²)."""
    import torch

    from engine.generators import load_generator
    from engine.landmarks import create_detector, schema
    from engine.media import to_uint8

    pairs = {
        "irises": (("iris_right", schema.RIGHT_IRIS_CENTER), ("iris_left", schema.LEFT_IRIS_CENTER)),
        "mouth corners": (("mouth_right", schema.MOUTH_RIGHT), ("mouth_left", schema.MOUTH_LEFT)),
        "lip centres (outer)": (("lip_upper", schema.UPPER_LIP_TOP), ("lip_lower", schema.LOWER_LIP_BOTTOM)),
        "lip centres (inner)": (
            ("lip_upper_inner", schema.UPPER_LIP_INNER),
            ("lip_lower_inner", schema.LOWER_LIP_INNER),
        ),
        "nose tip": (("nose_tip", schema.NOSE_TIP),),
        "chin": (("chin", schema.CHIN),),
    }
    g = load_generator("faceworld")
    z = torch.randn(n, g.z_dim, generator=torch.Generator().manual_seed(123))
    errs: dict[str, list[float]] = {k: [] for k in pairs}
    found = 0
    with create_detector("mediapipe") as det, torch.no_grad():
        for i in range(n):
            ws = g.mapping(z[i : i + 1], truncation_psi=0.7)
            img = to_uint8(g.synthesis(ws))[0]
            kp = {k: v[0].numpy() for k, v in g.keypoints(ws).items()}
            d = det.detect(img)
            if not d.found:
                continue
            found += 1
            iod = float(np.linalg.norm(kp["iris_left"] - kp["iris_right"]))
            for name, members in pairs.items():
                errs[name].extend(float(np.linalg.norm(d.points[idx] - kp[k])) / iod for k, idx in members)
    rows = [(f"FaceWorld ({n} faces, psi 0.7): detection rate", f"{found / n:.3f}")]
    for name, e in errs.items():
        rows.append((f"FaceWorld: detected vs analytic {name}, mean error / IOD", f"{np.mean(e):.3f}"))
    return rows


if __name__ == "__main__":
    main()
