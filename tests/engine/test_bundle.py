"""Bundle save/load round-trip and FAN shapes (no generator needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.bundle import Bundle, BundleError, load_bundle
from engine.fan import FAN, FANConfig, fan_inputs

POINTS = list(range(0, 40))


def _bundle(output: str = "coeffs") -> Bundle:
    torch.manual_seed(0)
    dirs = torch.randn(5, 6, 32)
    dirs[:, 4:] = 0
    cfg = FANConfig(num_ws=6, w_dim=32, action_layers=4, points=POINTS, heatmap_size=32, output=output, width=16,
                    hidden=32)
    fan = FAN(cfg, bank=dirs)
    for p in fan.parameters():
        torch.nn.init.normal_(p, std=0.05)
    info = [{"region": "mouth", "k": 3, "origin": [0, 1], "norm": 1.0, "group": "expression"} for _ in range(5)]
    return Bundle("faceworld", {"resolution": 64}, dirs, info, fan=fan, landmark_points=np.array(POINTS),
                  meta={"note": "test"})


@pytest.mark.parametrize("output", ["coeffs", "full"])
def test_round_trip(tmp_path, output) -> None:
    b = _bundle(output)
    b.save(tmp_path / "b")
    b2 = load_bundle(tmp_path / "b")
    assert torch.equal(b2.directions, b.directions)
    assert b2.directions_info == b.directions_info
    assert b2.generator_kwargs == {"resolution": 64}
    assert b2.meta == {"note": "test"}
    assert list(b2.landmark_points) == POINTS
    rng = np.random.default_rng(0)
    src = rng.uniform(100, 200, (3, 478, 2)).astype(np.float32)
    tgt = src + rng.normal(0, 2, src.shape).astype(np.float32)
    cfg = b2.fan_config_obj()
    x = fan_inputs(src, tgt, cfg)
    assert x.shape == (3, 2 * len(POINTS), 32, 32)
    with torch.no_grad():
        y1, y2 = b.fan(x), b2.fan(x)
    assert y1.shape == (3, 6, 32)
    assert torch.allclose(y1, y2)
    assert y1.abs().sum() > 0
    assert torch.all(y1[:, 4:] == 0)


def test_bad_bundles(tmp_path) -> None:
    with pytest.raises(BundleError, match="bundle.json"):
        Bundle.load(tmp_path)
    (tmp_path / "bundle.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(BundleError, match="format"):
        Bundle.load(tmp_path)
    with pytest.raises(BundleError, match="directions_info"):
        Bundle("faceworld", {}, torch.zeros(2, 3, 4), [{}])
    with pytest.raises(BundleError, match="group"):
        Bundle("faceworld", {}, torch.zeros(1, 3, 4), [{"group": "colour"}])


def test_default_bundle_beats_no_motion() -> None:
    """The embedded default bundle loads, and its FAN moves held-out sources towards ground-truth targets."""
    from engine.distill.sampling import LandmarkRenderer
    from engine.evaluation.ablation import action_transfer, evaluate_fan
    from engine.generators import load_generator
    from engine.resources import default_bundle_dir

    b = load_bundle()
    assert b.path == default_bundle_dir() and b.fan is not None and b.generator_ref == "faceworld"
    assert b.directions.shape[0] == len(b.directions_info) == b.fan.bank.shape[0]
    assert {i["group"] for i in b.directions_info} == {"pose", "expression"}
    size = sum(f.stat().st_size for f in default_bundle_dir().iterdir())
    assert size < 10 * 2**20
    # Bank-independent targets: the same identity with another held-out sample's pose and expression.
    fw = load_generator("faceworld", **b.meta.get("train_generator_kwargs", {"resolution": 128}))
    ws_s, ws_t = action_transfer(fw, 8, seed=4242)
    with LandmarkRenderer(fw) as renderer:
        r = evaluate_fan(b.fan, renderer, ws_s, ws_t)
    assert r["pairs"] >= 6
    assert r["nme"] < 0.7 * r["nme_no_motion"], r
