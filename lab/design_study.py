"""FAN design measurements on one cached pair set (no re-rendering of training pairs): output head, heatmap size
and sigma, landmark points, alignment. Each variant trains the same number of steps on the same pairs and is scored
on the held-out pairs (Δw error, landmark NME after re-rendering) and on bank-independent ground-truth pairs
(``engine.evaluation.ablation.action_transfer``).

    python -m lab.design_study --run runs/default_bundle/fan --steps 400 --out runs/design/design.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> None:
    import engine.distill.train as T
    from engine.distill.sampling import LandmarkRenderer
    from engine.evaluation.ablation import action_transfer
    from engine.fan import FAN, FANConfig, canonical_points
    from engine.generators import load_generator
    from engine.landmarks import schema
    from engine.landmarks.heatmaps import pixel_heatmaps

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a `d2a train` run folder (its pairs/ and val/ caches are used)")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="")
    a = ap.parse_args(argv)
    run = Path(a.run)
    doc = json.loads((run / "train_config.json").read_text())
    cfg = T.TrainConfig.from_dict(doc["config"])
    cfg = replace(cfg, steps=a.steps, val_render=32, checkpoint_every=10**9, max_epochs_val=1)
    from safetensors.torch import load_file

    bank = load_file(str(run / "bundle" / "directions.safetensors"))["directions"]
    fw = load_generator("faceworld", resolution=128)
    th, _ = T._thresholds(fw, cfg)
    dist = T.Dist()
    data = T.build_cache(fw, run / "pairs", cfg.pairs, cfg.seed, bank, th, cfg, dist, False)
    val = T.build_cache(fw, run / "val", cfg.val_pairs, cfg.seed + 100_003, bank, th, cfg, dist, False)
    ws_s, ws_t = action_transfer(fw, 48, seed=5151)
    out_file = Path(a.out)
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    base = FANConfig(num_ws=fw.num_ws, w_dim=fw.w_dim, heatmap_size=32, width=32)
    ibug = [int(i) for i in schema.IBUG68]
    variants = {
        "default (coeffs, S=32, sigma=1, 78 pts, source transform)": (base, "source"),
        "full Δw output": (replace(base, output="full"), "source"),
        "68 iBUG points (no irises)": (replace(base, points=ibug), "source"),
        "separate alignment of source and target": (base, "separate"),
        "source transform incl. rotation": (replace(base, align_rotation=True), "source"),
        "S=48": (replace(base, heatmap_size=48), "source"),
        "sigma=2": (replace(base, sigma=2.0), "source"),
    }
    original = T.fan_inputs

    def separate_inputs(src, tgt, config):  # each set aligned with ITS OWN transform (pose normalised away)
        cs, _ = canonical_points(src, src, config)
        ct, _ = canonical_points(tgt, tgt, config)
        s, sg = config.heatmap_size, config.sigma
        return torch.cat([pixel_heatmaps(cs, s, sg), pixel_heatmaps(ct, s, sg)], 1)

    with LandmarkRenderer(fw) as renderer:
        for name, (fc, mode) in variants.items():
            if name in results or (a.only and a.only not in name):
                continue
            torch.manual_seed(0)
            fan = FAN(fc, bank=bank)
            T.fan_inputs = separate_inputs if mode == "separate" else original
            try:
                last = T.fit(fan, data, bank, th, cfg, None, val, renderer, dist, True)
                test = _evaluate(fan, renderer, ws_s, ws_t, separate_inputs if mode == "separate" else None)
            finally:
                T.fan_inputs = original
            results[name] = {k: v for k, v in last.items() if k.startswith("val_")} | {"test": test}
            out_file.parent.mkdir(parents=True, exist_ok=True)
            out_file.write_text(json.dumps(results, indent=1))
            print(name, results[name], flush=True)


@torch.no_grad()
def _evaluate(fan, renderer, ws_s, ws_t, inputs=None):
    from engine.evaluation.ablation import evaluate_fan

    return evaluate_fan(fan, renderer, ws_s, ws_t, inputs)


if __name__ == "__main__":  # pragma: no cover
    main()
