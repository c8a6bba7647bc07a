"""Measure FaceWorld against real mediapipe face-mesh landmarks (the numbers in docs/RESULTS.md).

On N random samples at moderate poses (|yaw| <= --max-yaw; pitch and roll at their natural ranges):
- detection rate;
- Pearson correlation between each ground-truth parameter and its landmark measure
  (engine.generators.faceworld.measure: normalised by inter-ocular distance, de-rolled);
- the cross-talk of the blinks (left blink vs right-eye measure and vice versa);
- a negative control: the same heads rendered with ``features=False`` (no painted eyes, brows, mouth);
- appearance layers: replacing ws[:, 8:] by another sample's changes the image but barely moves the landmarks;
- analytic keypoints vs detected points (NME in inter-ocular units).

Usage:
    OMP_NUM_THREADS=2 .venv/bin/python scripts/faceworld_report.py --n 200 --json out/faceworld_report.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click
import numpy as np

# landmark index of the mediapipe point that corresponds to an analytic FaceWorld keypoint
MEASURE_TEXT = {
    "yaw": "nose tip between the face-contour extremes (234, 454)",
    "pitch": "nose tip between forehead (10) and chin (152)",
    "roll": "eye-line angle",
    "jaw_open": "inner-lip gap (13-14) / iod",
    "blink_left": "1 - lid gap (386-374) / eye width",
    "blink_right": "1 - lid gap (159-145) / eye width",
    "smile": "mouth width (61-291) / iod",
    "brow_raise": "brow centre (105, 334) above eye centre / iod",
    "gaze_x": "iris centre vs eye-corner midpoint / eye width",
    "blink_left_vs_right_measure": "left blink vs the right eye's measure (cross-talk)",
    "blink_right_vs_left_measure": "right blink vs the left eye's measure (cross-talk)",
    "blink_left_vs_blink_right_truth": "ground truth: left vs right blink (no landmarks)",
}

KEYPOINT_TO_MESH = {
    "iris_left": 473,
    "iris_right": 468,
    "nose_tip": 1,
    "mouth_left": 291,
    "mouth_right": 61,
    "lip_upper_inner": 13,
    "lip_lower_inner": 14,
    "chin": 152,
}


def _sample_moderate(fw, n: int, seed: int, max_yaw: float, psi: float):
    """Draw z ~ N(0, I) in order and keep the first n with |yaw| <= max_yaw -> ws [n, 14, 512]."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    all_ws, masks = [], []
    with torch.no_grad():
        while sum(int(m.sum()) for m in masks) < n:
            ws = fw.mapping(torch.randn(256, fw.z_dim, generator=gen), truncation_psi=psi)
            all_ws.append(ws)
            masks.append(fw.decode(ws)["yaw"].abs() <= max_yaw)
    mask = torch.cat(masks)
    drawn = int(torch.nonzero(mask)[n - 1]) + 1  # draws needed to keep n samples
    return torch.cat(all_ws)[mask][:n], drawn


def _detect_all(fw, det, params: dict, features: bool = True, batch: int = 16):
    """Render params in batches and detect -> (list of points or None, uint8 images)."""
    import torch

    from engine.media import to_uint8

    n = next(iter(params.values())).shape[0]
    pts: list[np.ndarray | None] = []
    imgs = []
    with torch.no_grad():
        for i in range(0, n, batch):
            sub = {k: v[i : i + batch] for k, v in params.items()}
            u8 = to_uint8(fw.render_params(sub, features=features))
            imgs.append(u8)
            for im in u8:
                d = det.detect(im)
                pts.append(d.points if d.found else None)
    return pts, np.concatenate(imgs)


def _correlations(params: dict, pts: list) -> dict[str, float]:
    from engine.generators.faceworld.measure import MEASURE_OF, landmark_measures, pearson

    idx = [i for i, p in enumerate(pts) if p is not None]
    meas = [landmark_measures(pts[i]) for i in idx]
    out = {}
    for m, name in MEASURE_OF.items():
        gt = params[name].numpy()[idx]
        out[m] = pearson(gt, np.array([x[m] for x in meas]))
    gl, gr = params["blink_left"].numpy()[idx], params["blink_right"].numpy()[idx]
    out["blink_left_vs_right_measure"] = pearson(gl, np.array([x["blink_right"] for x in meas]))
    out["blink_right_vs_left_measure"] = pearson(gr, np.array([x["blink_left"] for x in meas]))
    out["blink_left_vs_blink_right_truth"] = pearson(gl, gr)
    return out


@click.command()
@click.option("--n", default=200, show_default=True, help="Number of samples at moderate poses.")
@click.option("--resolution", default=256, show_default=True)
@click.option("--seed", default=2024, show_default=True, help="Seed of the latent samples.")
@click.option("--max-yaw", default=0.35, show_default=True, help="Moderate poses: |yaw| <= this (radians).")
@click.option("--psi", default=1.0, show_default=True, help="Truncation of the samples.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the numbers here.")
def main(n: int, resolution: int, seed: int, max_yaw: float, psi: float, json_path: Path | None) -> None:
    """Print FaceWorld's landmark measurements (markdown) and optionally save them as JSON."""
    import torch

    from engine.generators import load_generator
    from engine.landmarks import create_detector
    from engine.landmarks.schema import LEFT_EYE, RIGHT_EYE

    t0 = time.time()
    fw = load_generator("faceworld", resolution=resolution)
    det = create_detector("mediapipe")
    ws, drawn = _sample_moderate(fw, n, seed, max_yaw, psi)
    with torch.no_grad():
        params = fw.decode(ws)
        kps = fw.keypoints(ws)
    pts, imgs = _detect_all(fw, det, params)
    found = [p is not None for p in pts]
    res: dict[str, object] = {
        "n": n,
        "drawn": drawn,
        "resolution": resolution,
        "max_yaw": max_yaw,
        "psi": psi,
        "detection_rate": float(np.mean(found)),
        "correlation": _correlations(params, pts),
    }

    # analytic keypoints vs detections
    def iod(p: np.ndarray) -> float:
        return float(np.linalg.norm(p[LEFT_EYE].mean(0) - p[RIGHT_EYE].mean(0)))

    nme = {}
    for name, mesh in KEYPOINT_TO_MESH.items():
        errs = [np.linalg.norm(kps[name][i].numpy() - p[mesh]) / iod(p) for i, p in enumerate(pts) if p is not None]
        nme[name] = float(np.mean(errs))
    res["keypoint_nme"] = nme

    # negative control: same heads without painted features
    neg_pts, _ = _detect_all(fw, det, params, features=False)
    res["negative_control"] = {
        "detection_rate": float(np.mean([p is not None for p in neg_pts])),
        "correlation": _correlations(params, neg_pts),
    }

    # appearance layers: swap ws[:, 8:] with another sample's
    perm = torch.roll(torch.arange(n), 1)
    ws_app = ws.clone()
    ws_app[:, 8:] = ws[perm, 8:]
    with torch.no_grad():
        p_app = fw.decode(ws_app)
    app_pts, app_imgs = _detect_all(fw, det, p_app)
    moves, diffs = [], []
    for i in range(n):
        diffs.append(float(np.abs(app_imgs[i].astype(np.float32) - imgs[i].astype(np.float32)).mean()))
        if pts[i] is not None and app_pts[i] is not None:
            moves.append(float(np.linalg.norm(app_pts[i] - pts[i], axis=1).mean() / iod(pts[i])))
    geo_change = max(float((p_app[k] - params[k]).abs().max()) for k in fw.ACTION_PARAMS + fw.IDENTITY_GEOMETRY_PARAMS)
    res["appearance_layers"] = {
        "mean_abs_pixel_change_0_255": float(np.mean(diffs)),
        "landmark_move_over_iod_mean": float(np.mean(moves)),
        "landmark_move_over_iod_p95": float(np.percentile(moves, 95)),
        "both_detected": len(moves),
        "max_geometry_param_change": geo_change,
    }
    res["seconds"] = time.time() - t0
    det.close()

    c = res["correlation"]
    nc = res["negative_control"]["correlation"]
    print(f"FaceWorld report: {n} samples at |yaw| <= {max_yaw} rad ({drawn} drawn), {resolution}px, seed {seed}")
    print(f"detection: {res['detection_rate']:.1%} (negative control: {res['negative_control']['detection_rate']:.1%})")
    print("| parameter | landmark measure | Pearson r | without painted features |")
    print("|---|---|---|---|")
    for m in c:
        print(f"| {m} | {MEASURE_TEXT[m]} | {c[m]:+.3f} | {nc[m]:+.3f} |")
    a = res["appearance_layers"]
    print(f"appearance layers 8..13 swapped: mean |pixel change| {a['mean_abs_pixel_change_0_255']:.1f}/255, "
          f"landmarks move {a['landmark_move_over_iod_mean']:.2%} of iod (p95 {a['landmark_move_over_iod_p95']:.2%}), "
          f"max geometry-parameter change {a['max_geometry_param_change']:.2e}")
    print("analytic keypoints vs mediapipe (NME, iod): " + ", ".join(f"{k} {v:.3f}" for k, v in nme.items()))
    print(f"({res['seconds']:.0f} s)")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    sys.exit(main())
