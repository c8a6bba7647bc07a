"""Ablations of the AugDistiller on FaceWorld with a bank-independent, ground-truth test set.

Test pairs: a held-out source ws_s and a target that keeps ws_s's identity but performs the pose and expression of
another held-out sample — Δw is the minimum-norm latent change that sets FaceWorld's action scores to the other
sample's and leaves every identity score unchanged (``action_transfer``). The test set therefore does not depend
on any direction bank, so FANs trained on different banks are compared on the same targets. Metric: landmark
NME (inter-ocular, 78-point face set) between G(ws_s + FAN(kp_s, kp_t)) and the target, and the no-motion NME.

    python -m engine.evaluation.ablation --bank runs/default_bundle/bank/directions.safetensors --out runs/ablation
    python -m engine.evaluation.ablation --evaluate resources/models/faceworld runs/b2/fan/bundle --test-pairs 96

runs, at one budget, {CluDistiller bank, PCA directions of w (GANSpace-style), random directions} (same count and
norm), and fine-tuning vs none on a few sources; writes ``OUT/ablation.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from engine.generators.protocol import require_ground_truth

if TYPE_CHECKING:  # pragma: no cover
    from engine.generators.protocol import Generator, GroundTruth

TEST_SEED = 777_000


@torch.no_grad()
def action_transfer(
    generator: Generator, n: int, seed: int = TEST_SEED, psi: float = 0.8
) -> tuple[torch.Tensor, torch.Tensor]:
    """n held-out (ws_s, ws_t) pairs [n, num_ws, w_dim]: same identity, the actions of another sample."""
    fw = require_ground_truth(generator, "the action-transfer test set")
    g = torch.Generator().manual_seed(seed)
    ws_s = fw.mapping(torch.randn(n, fw.z_dim, generator=g), truncation_psi=psi)
    ws_o = fw.mapping(torch.randn(n, fw.z_dim, generator=g), truncation_psi=psi)
    return ws_s, _transfer_to(fw, ws_s, ws_o)


def nme78(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    from engine.distill.train import nme_points

    return nme_points(pred, target)


@torch.no_grad()
def evaluate_fan(
    fan: torch.nn.Module, renderer: Any, ws_s: torch.Tensor, ws_t: torch.Tensor, inputs: Any = None
) -> dict[str, float]:
    """NME of G(ws_s + FAN(kp_s, kp_t)) vs the target, and the no-motion baseline, over detected pairs.

    ``inputs(kp_s, kp_t, config) -> heatmaps`` replaces the FAN's own preprocessing (default ``fan_inputs``)."""
    from engine.fan import fan_inputs

    inputs = fan_inputs if inputs is None else inputs
    kp_s, f_s = renderer.landmarks(ws_s)
    kp_t, f_t = renderer.landmarks(ws_t)
    ok = f_s & f_t
    fan.eval()
    dw = fan(inputs(kp_s[ok], kp_t[ok], fan.config))
    kp_o, f_o = renderer.landmarks(ws_s[torch.from_numpy(ok)] + dw)
    t = kp_t[ok][f_o]
    out = nme78(kp_o[f_o], t)
    base = nme78(kp_s[ok][f_o], t)
    return {"nme": float(out.mean()), "nme_no_motion": float(base.mean()), "ratio": float(out.mean() / base.mean()),
            "pairs": int(f_o.sum())}


def main(argv: list[str] | None = None) -> None:
    import argparse

    from engine.distill.augment import AugmentConfig
    from engine.distill.finetune import finetune
    from engine.distill.sampling import LandmarkRenderer
    from engine.distill.train import FinetuneConfig, TrainConfig, train
    from engine.evaluation.directions import pca_directions, random_directions
    from engine.fan import FANConfig
    from engine.generators import load_generator
    from engine.latent.bank import load_directions

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bank", help="direction bank of the bank/PCA/random rows (and their norm budget)")
    ap.add_argument("--out", help="output folder (ablation.json, one training run per row)")
    ap.add_argument("--evaluate", nargs="+", metavar="BUNDLE",
                    help="only score these trained bundles on the ground-truth test pairs (no training)")
    ap.add_argument("--bundle", default=None, help="trained bundle for the fine-tuning ablation (default: embedded)")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--pairs", type=int, default=1024)
    ap.add_argument("--test-pairs", type=int, default=48)
    ap.add_argument("--finetune-sources", type=int, default=3)
    ap.add_argument("--finetune-steps", type=int, default=150)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--only", default="bank,pca,random,finetune")
    a = ap.parse_args(argv)
    if a.evaluate:
        _evaluate_bundles(a.evaluate, a.test_pairs, a.resolution)
        return
    if not a.bank or not a.out:
        ap.error("--bank and --out are required (unless --evaluate)")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    res_file = out / "ablation.json"
    results: dict[str, Any] = json.loads(res_file.read_text()) if res_file.exists() else {}
    fw = load_generator("faceworld", resolution=a.resolution)
    bank, infos = load_directions(a.bank)
    banks = {"bank": bank, "pca": pca_directions(fw, len(bank), bank), "random": random_directions(bank, len(bank))}
    ws_s, ws_t = action_transfer(fw, a.test_pairs)
    only = a.only.split(",")
    with LandmarkRenderer(fw) as renderer:
        for name, b in banks.items():
            if name not in only:
                continue
            cfg = TrainConfig(steps=a.steps, batch=32, pairs=a.pairs, val_pairs=64, val_render=0, targets_per_source=8,
                              checkpoint_every=100, fan=FANConfig(heatmap_size=32, width=32), augment=AugmentConfig())
            inf = infos if name == "bank" else [{"region": name, "k": 0, "origin": name, "group": "expression"}
                                                for _ in range(len(b))]
            bundle = train(fw, "faceworld", b, inf, out / name, cfg, progress=True,
                           train_generator_kwargs={"resolution": a.resolution})
            results[name] = {"test": evaluate_fan(bundle.fan, renderer, ws_s, ws_t),
                             "validation_own_bank": bundle.meta["last_validation"], "steps": a.steps,
                             "pairs": a.pairs}
            res_file.write_text(json.dumps(results, indent=1))
            print(name, results[name]["test"], flush=True)
        if "finetune" in only:
            from engine.bundle import load_bundle

            base = load_bundle(a.bundle)
            rows = []
            for i in range(a.finetune_sources):
                # pairs of ONE source: the same source with several target actions
                src = ws_s[i : i + 1]
                g = torch.Generator().manual_seed(TEST_SEED + 17 + i)
                others = fw.mapping(torch.randn(8, fw.z_dim, generator=g), truncation_psi=0.8)
                tgt = _transfer_to(fw, src.expand(8, -1, -1).clone(), others)
                before = evaluate_fan(base.fan, renderer, src.expand(8, -1, -1).clone(), tgt)
                tuned = finetune(base, src, steps=a.finetune_steps, config=FinetuneConfig(seed=i), generator=fw)
                after = evaluate_fan(tuned.fan, renderer, src.expand(8, -1, -1).clone(), tgt)
                rows.append({"source": i, "without": before, "with": after})
                print("finetune", rows[-1], flush=True)
            results["finetune"] = {
                "rows": rows,
                "nme_without": float(np.mean([r["without"]["nme"] for r in rows])),
                "nme_with": float(np.mean([r["with"]["nme"] for r in rows])),
                "nme_no_motion": float(np.mean([r["without"]["nme_no_motion"] for r in rows])),
                "steps": a.finetune_steps,
            }
            res_file.write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v.get("test", v) if isinstance(v, dict) else v for k, v in results.items()}, indent=1))


def _evaluate_bundles(paths: list[str], test_pairs: int, resolution: int) -> None:
    """Print each bundle's FAN score on the bank-independent test pairs (JSON lines)."""
    from engine.bundle import load_bundle
    from engine.distill.sampling import LandmarkRenderer
    from engine.generators import load_generator

    fw = load_generator("faceworld", resolution=resolution)
    ws_s, ws_t = action_transfer(fw, test_pairs)
    with LandmarkRenderer(fw) as renderer:
        for path in paths:
            print(json.dumps({"bundle": path, **evaluate_fan(load_bundle(path).fan, renderer, ws_s, ws_t)}), flush=True)


@torch.no_grad()
def _transfer_to(fw: GroundTruth, ws_s: torch.Tensor, ws_o: torch.Tensor) -> torch.Tensor:
    """ws_s with the action scores of ws_o (minimum-norm change, identity scores unchanged)."""
    names = list(fw.PARAM_NAMES)
    act = torch.tensor([names.index(p) for p in fw.ACTION_PARAMS])
    delta = torch.zeros(ws_s.shape[0], len(names))
    delta[:, act] = fw.scores(ws_o)[:, act] - fw.scores(ws_s)[:, act]
    A = (fw.proj / fw.score_std[:, None, None]).flatten(1)
    return ws_s + (torch.linalg.pinv(A) @ delta.T).T.view_as(ws_s)


if __name__ == "__main__":  # pragma: no cover
    main()
