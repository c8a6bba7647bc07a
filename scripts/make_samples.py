"""Render the sample media of ``resources/samples/`` reproducibly from FaceWorld (no external data).

Writes:
  source.png              a neutral, frontal FaceWorld portrait (256², the demo's source)
  source_ws.safetensors   its W+ code {"ws": [1, 14, 512]} (so the demo needs no inversion)
  driving.mp4             a driver of another identity performing a scripted sequence of actions
                          (yaw, pitch, roll, jaw, smile, blinks, brows, gaze), 256², 25 fps, H.264
  driving_ws.safetensors  the clip's ground truth: ws_t = base + coeffs[t] @ basis
                          {"base": [1, 14, 512], "basis": [P, 14, 512], "coeffs": [T, P]} (P action parameters)
  driving.json            the script: parameter names, per-frame target values, seeds

Usage:
  .venv/bin/python scripts/make_samples.py [--out resources/samples] [--frames 100]

The edit that puts a FaceWorld face into a given pose/expression changes its latent by the least-norm Δw that
moves the chosen parameters' latent scores to their targets while keeping every other score (identity and the
remaining actions) fixed — FaceWorld's scores are linear in ws, so this is exact before the squashing.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

SOURCE_SEED = 11
DRIVER_SEED = 4
PSI = 0.7
FPS = 25.0


def score_of(fw, name: str, value: float) -> float:
    """Inverse of FaceWorld's squashing: the standardised score giving ``value`` for parameter ``name``."""
    from engine.generators.faceworld import params as P

    sq = P.SQUASH[name]
    if sq.kind == "tanh":
        u = (value - sq.offset) / sq.scale
        r = math.atanh(max(-0.999, min(0.999, u)))
    else:
        v = max(1e-3, min(1 - 1e-3, value))
        r = math.log(v / (1 - v))
    return (r - sq.bias) / sq.gain


def param_rows(fw) -> torch.Tensor:
    """[P_all, L*C]: the linear maps ws -> standardised scores (one row per parameter)."""
    return (fw.proj / fw.score_std[:, None, None]).reshape(fw.proj.shape[0], -1)


def edit_basis(fw, names: list[str]) -> torch.Tensor:
    """[len(names), L, C]: Δw moving the score of names[i] by +1 and every other score by 0 (least norm)."""
    rows = param_rows(fw).double()  # [P, D]
    gram_inv = torch.linalg.inv(rows @ rows.T)  # [P, P]
    order = list(fw.PARAM_NAMES)
    sel = torch.zeros(len(order), len(names), dtype=torch.float64)
    for j, n in enumerate(names):
        sel[order.index(n), j] = 1.0
    basis = (rows.T @ gram_inv @ sel).T  # [len(names), D]
    return basis.float().reshape(len(names), fw.num_ws, fw.w_dim)


def set_params(fw, ws: torch.Tensor, values: dict[str, float], basis: torch.Tensor, names: list[str]) -> torch.Tensor:
    """Coefficients [len(names)] over ``basis`` that bring ``ws`` [1, L, C] to the parameter ``values``."""
    scores = fw.scores(ws)[0]
    order = list(fw.PARAM_NAMES)
    coeffs = torch.zeros(len(names))
    for j, n in enumerate(names):
        if n in values:
            coeffs[j] = score_of(fw, n, values[n]) - float(scores[order.index(n)])
    return coeffs


def neutral_values(fw) -> dict[str, float]:
    """Frontal, centred, eyes open, mouth closed, gaze ahead."""
    v = {k: 0.0 for k in ("yaw", "pitch", "roll", "tx", "ty", "gaze_x", "gaze_y")}
    v.update({"scale": 1.0, "jaw_open": 0.03, "smile": 0.1, "pucker": 0.03, "blink_left": 0.03,
              "blink_right": 0.03, "brow_raise": 0.1, "frown": 0.05})
    return v


def script(frames: int) -> list[dict[str, float]]:
    """Per-frame action targets: a neutral start, then one smooth bump per action."""
    events = [  # (parameter, peak value, start fraction, end fraction)
        ("yaw", 0.45, 0.06, 0.22), ("yaw", -0.45, 0.20, 0.36), ("pitch", 0.25, 0.34, 0.46),
        ("jaw_open", 0.8, 0.44, 0.58), ("smile", 0.85, 0.56, 0.70), ("blink_left", 0.95, 0.68, 0.74),
        ("blink_right", 0.95, 0.68, 0.74), ("brow_raise", 0.9, 0.74, 0.86), ("gaze_x", 0.7, 0.84, 0.94),
        ("roll", 0.2, 0.86, 0.98),
    ]
    out = []
    for t in range(frames):
        f = t / max(frames - 1, 1)
        vals: dict[str, float] = {}
        for name, peak, a, b in events:
            if a <= f <= b:
                env = math.sin(math.pi * (f - a) / (b - a)) ** 2
                vals[name] = vals.get(name, 0.0) + peak * env
        out.append(vals)
    return out


def main() -> None:
    from safetensors.torch import save_file

    from engine.generators import load_generator
    from engine.landmarks import create_detector
    from engine.media import VideoWriter, save_image, to_uint8

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "resources" / "samples"))
    ap.add_argument("--frames", type=int, default=100)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    fw = load_generator("faceworld")
    from engine.generators.faceworld import ACTION_PARAMS

    names = list(ACTION_PARAMS)
    basis = edit_basis(fw, names)
    neutral = neutral_values(fw)

    def seeded(seed: int) -> torch.Tensor:
        z = torch.randn(1, fw.z_dim, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            ws = fw.mapping(z, None, truncation_psi=PSI)
        c = set_params(fw, ws, neutral, basis, names)
        return ws + (c @ basis.flatten(1)).reshape(1, fw.num_ws, fw.w_dim)

    det = create_detector("mediapipe", video_mode=False)
    with torch.no_grad():
        src_ws = seeded(SOURCE_SEED)
        src = to_uint8(fw.synthesis(src_ws))[0]
        if not det.detect(src).found:
            raise SystemExit("no face detected on the sample source: pick another SOURCE_SEED")
        save_image(out / "source.png", src)
        save_file({"ws": src_ws.contiguous()}, str(out / "source_ws.safetensors"))

        base = seeded(DRIVER_SEED)
        plan = script(args.frames)
        coeffs = torch.stack([set_params(fw, base, {**neutral, **p}, basis, names) for p in plan])  # [T, P]
        # keep the base exactly neutral at frame 0: express every frame relative to the neutral base
        ws_all = base + (coeffs @ basis.flatten(1)).reshape(-1, fw.num_ws, fw.w_dim)
        missing = 0
        with VideoWriter(out / "driving.mp4", FPS, (fw.img_resolution, fw.img_resolution), crf=23) as w:
            for i in range(0, len(ws_all), 16):
                for frame in to_uint8(fw.synthesis(ws_all[i : i + 16])):
                    missing += not det.detect(frame).found
                    w.write(frame)
        save_file(
            {"base": base.contiguous(), "basis": basis.contiguous(), "coeffs": coeffs.contiguous()},
            str(out / "driving_ws.safetensors"),
        )
    det.close()
    doc = {"source_seed": SOURCE_SEED, "driver_seed": DRIVER_SEED, "psi": PSI, "fps": FPS, "names": names,
           "frames": args.frames, "script": plan, "frames_without_face": missing}
    (out / "driving.json").write_text(json.dumps(doc, indent=1))
    sizes = {p.name: p.stat().st_size for p in out.iterdir()}
    print(json.dumps({"out": str(out), "frames_without_face": missing, "bytes": sizes}, indent=1))
    if missing:
        raise SystemExit(f"{missing} frames without a detected face: adjust the script")


def load_driving_ws(path: str | Path) -> torch.Tensor:
    """The ground-truth ws [T, 14, 512] of a clip written by this script."""
    from safetensors.torch import load_file

    d = load_file(str(path))
    return d["base"] + (d["coeffs"] @ d["basis"].flatten(1)).reshape(-1, *d["base"].shape[1:])


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
