"""Per-region sliders, raw bank directions vs localised around the source (RESULTS.md, "Per-region sliders").

    .venv/bin/python benchmarks/slider_locality.py [--seed 3] [--per-region 3]

For the first directions of each expression region of the default bundle: the change of FaceWorld's identity
geometry (mean |Δ| over its 18 parameters) and the three largest action changes when the slider is at 1.0, with
``AnimatorConfig.localise_sliders`` off and on, and the time of the first (uncached) localisation.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from engine.animate import Animator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--per-region", type=int, default=3)
    a = ap.parse_args()
    anim = Animator()
    fw = anim.generator
    anim.set_source(a.seed)
    with torch.no_grad():
        p0 = fw.decode(anim.source_ws)
    for region in ("eye_left", "eye_right", "eyes", "brows", "mouth"):
        idx = [i for i, d in enumerate(anim.bundle.directions_info) if d.get("region") == region][: a.per_region]
        for i in idx:
            row = {}
            for localise in (False, True):
                anim.config.localise_sliders = localise
                t0 = time.perf_counter()
                v = anim._slider_direction(i)
                seconds = time.perf_counter() - t0
                with torch.no_grad():
                    p = fw.decode(anim.source_ws + v[None])
                ident = float(np.mean([abs(float(p[k][0] - p0[k][0])) for k in fw.IDENTITY_GEOMETRY_PARAMS]))
                acts = {k: round(abs(float(p[k][0] - p0[k][0])), 3) for k in fw.ACTION_PARAMS}
                top = sorted(acts.items(), key=lambda kv: -kv[1])[:3]
                row["localised" if localise else "raw"] = {"identity": round(ident, 4), "top": top,
                                                           "seconds": round(seconds, 2)}
            print(region, i, row, flush=True)


if __name__ == "__main__":
    main()
