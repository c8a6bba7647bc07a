"""How clean can a cluster-mean direction be on FaceWorld? Split samples by the TRUE value of one action (median)
and take the difference of the two mean latents: the best any clustering of landmarks could do for that action.

    .venv/bin/python benchmarks/oracle_directions.py --stats-samples 4096 --samples 32768
    .venv/bin/python benchmarks/oracle_directions.py --stats-samples 65536 --samples 32768

Prints, per action, the effect on the action itself and the mean effects over the 15 action and the 18 identity
geometry parameters (natural stds, ``engine.evaluation.directions``), their ratio, and the largest correlation
between action and identity-geometry scores on fresh samples. Used for RESULTS.md ("FaceWorld's score whitening").
"""

from __future__ import annotations

import argparse
import json

import torch

from engine.evaluation.directions import CheckConfig, direction_effects
from engine.generators.faceworld.model import FaceWorld, FaceWorldConfig

ACTIONS = ("yaw", "pitch", "jaw_open", "smile", "blink_left", "brow_raise", "gaze_x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stats-samples", type=int, default=65536, help="FaceWorldConfig.stats_samples of the world")
    ap.add_argument("--samples", type=int, default=32768, help="samples split by each action's true value")
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args()
    fw = FaceWorld(config=FaceWorldConfig(resolution=64, stats_samples=a.stats_samples, cache_stats=False))
    names = list(fw.PARAM_NAMES)
    act = [names.index(n) for n in fw.ACTION_PARAMS]
    geo = [names.index(n) for n in fw.IDENTITY_GEOMETRY_PARAMS]
    with torch.no_grad():
        ws = fw.mapping(torch.randn(a.samples, fw.z_dim, generator=torch.Generator().manual_seed(a.seed)))
        params, scores = fw.decode(ws), fw.scores(ws)
    corr = torch.corrcoef(scores[:, act + geo].T)[: len(act), len(act) :]
    dirs = []
    for name in ACTIONS:
        hi = params[name] > params[name].median()
        d = torch.zeros(fw.num_ws, fw.w_dim)
        d[:8] = ws[hi, 0].mean(0) - ws[~hi, 0].mean(0)
        dirs.append(d)
    eff, _ = direction_effects(fw, torch.stack(dirs), CheckConfig())
    rows = {}
    for i, name in enumerate(ACTIONS):
        e_act, e_geo = float(eff[i, act].mean()), float(eff[i, geo].mean())
        rows[name] = {"target": round(float(eff[i, names.index(name)]), 3), "actions_mean": round(e_act, 4),
                      "identity_geometry_mean": round(e_geo, 4), "geometry_over_action": round(e_geo / e_act, 3)}
    out = {"stats_samples": a.stats_samples, "samples": a.samples,
           "max_abs_corr_action_identity": round(float(corr.abs().max()), 4), "directions": rows}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
