"""AugDistiller: loss formula, re-norm bound, FAN input geometry and shapes, training, resume after a kill."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.distill.augment import AugmentConfig, augment, measure_layer_radii, renorm_thresholds
from engine.fan import FAN, FANConfig, canonical_points, fan_inputs, fan_loss

REPO = Path(__file__).resolve().parents[3]


def test_loss_matches_formula() -> None:
    torch.manual_seed(0)
    pred, target = torch.randn(4, 14, 32), torch.randn(4, 14, 32)
    d = (pred - target)[:, :8].flatten(1).double()
    expected = (torch.log(torch.cosh(d)).sum(1) + 0.1 * torch.sqrt((d**2).sum(1))).mean()
    assert torch.allclose(fan_loss(pred, target, 0.1, 8).double(), expected, atol=1e-5)
    # Layers beyond action_layers do not count; the loss is finite for huge residuals (log cosh ~ |x| - log 2).
    pred2 = pred.clone()
    pred2[:, 8:] += 100.0
    assert torch.allclose(fan_loss(pred2, target, 0.1, 8), fan_loss(pred, target, 0.1, 8))
    big = fan_loss(torch.full((1, 2, 3), 1e4), torch.zeros(1, 2, 3), 0.0)
    assert torch.isfinite(big) and abs(float(big) - 6 * (1e4 - math.log(2))) < 1.0


def test_eye_directions_get_their_own_augmentation_range() -> None:
    """``--eye-range``: the coefficients of the bank's eye directions are drawn from U(-x, x), the others from U(-1, 1);
    the config survives the JSON round trip of a resumed run; a range list that does not fit the bank is refused."""
    from engine.distill.augment import eye_ranges, sample_delta
    from engine.distill.train import TrainConfig

    infos = [{"region": "pose"}, {"region": "eye_left"}, {"region": "mouth"}, {"region": "eyes"}]
    cfg = AugmentConfig(direction_ranges=eye_ranges(infos, 0.5))
    assert cfg.direction_ranges == (1.0, 0.5, 1.0, 0.5)
    bank = torch.eye(4)[:, None, :]  # Δw reads back r
    dw, r = sample_delta(bank, 4000, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(dw[:, 0], r)
    top = r.abs().max(0).values
    assert torch.all(top[[1, 3]] <= 0.5) and torch.all(top[[1, 3]] > 0.49) and torch.all(top[[0, 2]] > 0.99)
    assert TrainConfig.from_dict(asdict(TrainConfig(augment=cfg))).augment == cfg
    with pytest.raises(ValueError, match="direction_ranges"):
        sample_delta(torch.zeros(3, 1, 4), 2, cfg)


def test_renorm_bound_holds(fw) -> None:
    radii = measure_layer_radii(fw, samples=500, seed=0)
    tau = renorm_thresholds(radii, 90.0)
    assert tau.shape == (fw.num_ws,)
    g = torch.Generator().manual_seed(0)
    ws = fw.mapping(torch.randn(200, fw.z_dim, generator=g))
    bank = torch.zeros(10, fw.num_ws, fw.w_dim)
    bank[:, :8] = torch.randn(10, 1, fw.w_dim, generator=g) * 0.5  # big: many targets exceed the bound
    w_t, dw, r = augment(ws, bank, fw.w_avg, tau, AugmentConfig(), generator=g)
    assert r.abs().max() <= 1.0 and r.shape == (200, 10)
    rad_t = (w_t - fw.w_avg).norm(dim=-1)
    rad_s = (ws - fw.w_avg).norm(dim=-1)
    assert torch.all(rad_t <= torch.maximum(tau[None], rad_s) + 1e-4)
    assert torch.allclose(dw, w_t - ws)
    assert torch.all(dw[:, 8:] == 0)  # layers without a direction are never touched
    raw = (ws + torch.einsum("nk,kld->nld", r, bank) - fw.w_avg).norm(dim=-1)
    assert (raw[:, :8] > tau[:8] + 1e-3).any()  # the bound was active


def _face(n: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.uniform(-1, 1, (78, 2)).astype(np.float32) * 30 + 100
    return np.stack([base + rng.normal(0, 0.5, base.shape).astype(np.float32) for _ in range(n)])


def test_fan_inputs_keep_pose_differences() -> None:
    cfg = FANConfig(points=list(range(78)), heatmap_size=32)
    src = _face()
    # Same motion of source and target (camera shift/zoom): the input does not change.
    moved = (src - 100) * 1.7 + 40
    x0 = fan_inputs(src, src + 1.0, cfg)
    x1 = fan_inputs(moved, (src + 1.0 - 100) * 1.7 + 40, cfg)
    assert torch.allclose(x0, x1, atol=1e-4)
    # A target rotated/shifted/scaled relative to the source stays visibly different (pose is not aligned away).
    ang = np.deg2rad(10)
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]], np.float32)
    tgt = (src - 100) @ rot.T * 1.1 + 105
    cs, ct = canonical_points(src, tgt, cfg)
    assert float((ct - cs).norm(dim=-1).mean()) > 1.0
    # Full 478-point input and the pre-selected subset give the same input.
    full = np.zeros((2, 478, 2), np.float32)
    idx = list(range(100, 178))
    full[:, idx] = src
    cfg2 = FANConfig(points=idx, heatmap_size=32)
    assert torch.allclose(fan_inputs(full, full, cfg2), fan_inputs(src, src, cfg2))


@pytest.mark.parametrize("output", ["coeffs", "full"])
def test_fan_shapes(output) -> None:
    bank = torch.randn(7, 14, 64)
    cfg = FANConfig(num_ws=14, w_dim=64, action_layers=8, points=list(range(78)), heatmap_size=48, output=output,
                    width=16, hidden=32)
    fan = FAN(cfg, bank=bank)
    torch.nn.init.normal_(fan.head[-1].weight, std=0.1)
    x = fan_inputs(_face(3), _face(3), fan.config)
    assert x.shape == (3, 156, 48, 48)
    y = fan(x)
    assert y.shape == (3, 14, 64) and torch.all(y[:, 8:] == 0) and y[:, :8].abs().sum() > 0
    if output == "coeffs":  # the output is exactly a combination of the bank
        c = fan.forward_coeffs(x)
        assert torch.allclose(y[:, :8], torch.einsum("nk,kld->nld", c, bank[:, :8]), atol=1e-5)
    with pytest.raises(ValueError):
        fan(torch.zeros(1, 10, 48, 48))


def _small_cfg(steps: int, **kw):
    from engine.distill.train import TrainConfig

    return TrainConfig(steps=steps, batch=16, lr=2e-3, warmup=3, pairs=128, val_pairs=32, val_render=8,
                       targets_per_source=4, shard_sources=16, radii_samples=300, checkpoint_every=5, log_every=1,
                       fan=FANConfig(heatmap_size=32, width=16, hidden=64), **kw)


def _bank(fw):
    from engine.evaluation.directions import pca_directions

    like = torch.zeros(1, fw.num_ws, fw.w_dim)
    like[0, 0, 0] = 8.0  # bank norm of the order of the CluDistiller's directions
    return pca_directions(fw, 6, like, samples=1000)


def test_train_loss_decreases_and_validates(fw, tmp_path) -> None:
    from engine.bundle import load_bundle
    from engine.distill.train import train

    bank = _bank(fw)
    infos = [{"region": "pca", "k": 0, "origin": {"pca": i}, "group": "expression"} for i in range(len(bank))]
    b = train(fw, "faceworld", bank, infos, tmp_path, _small_cfg(40), progress=False)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    losses = [float(r["loss"]) for r in rows]
    assert len(losses) == 40
    assert np.mean(losses[-8:]) < 0.9 * np.mean(losses[:5])
    val = b.meta["last_validation"]
    assert {"val_loss", "val_dw_rel_error", "val_nme", "val_nme_no_motion"} <= set(val)
    b2 = load_bundle(tmp_path / "bundle")
    assert b2.fan is not None and b2.meta["trained_steps"] == 40


def test_resume_after_kill(fw, tmp_path) -> None:
    from safetensors.torch import save_file

    from engine.distill.train import load_checkpoint, train

    bank = _bank(fw)
    save_file({"directions": bank.contiguous()}, str(tmp_path / "directions.safetensors"))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "engine.cli", "train", "--preset", "plain",
           "--directions", str(tmp_path / "directions.safetensors"),
           "--out", str(run), "--steps", "100000", "--batch", "16", "--pairs", "128", "--val-pairs", "32",
           "--val-render", "0", "--heatmap-size", "32", "--width", "16", "--resolution", "96",
           "--checkpoint-every", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = run / "checkpoint.pt"
    try:
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline and proc.poll() is None:
            if ckpt.exists() and load_checkpoint(ckpt)["step"] >= 10:
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    killed_at = int(load_checkpoint(ckpt)["step"])
    assert killed_at >= 10
    from engine.distill.train import TrainConfig

    cfg = TrainConfig(steps=killed_at + 5, batch=16, pairs=128, val_pairs=32, val_render=0, checkpoint_every=5,
                      log_every=1, fan=FANConfig(heatmap_size=32, width=16))
    infos = [{"region": "x", "k": 0, "origin": "test", "group": "expression"} for _ in range(len(bank))]
    b = train(fw, "faceworld", bank, infos, run, cfg, progress=False)
    assert int(load_checkpoint(ckpt)["step"]) == killed_at + 5
    assert b.meta["trained_steps"] == killed_at + 5
    steps = [int(r["step"]) for r in csv.DictReader((run / "metrics.csv").open())]
    assert steps[-5:] == list(range(killed_at + 1, killed_at + 6))


def test_finetune_api_progress_and_cancel() -> None:
    """Fine-tuning the default bundle on one source: progress callback, cooperative cancel, a new bundle."""
    import threading

    from engine.bundle import load_bundle
    from engine.distill.finetune import finetune
    from engine.distill.train import FinetuneConfig
    from engine.generators import load_generator

    base = load_bundle()
    fw = load_generator("faceworld", resolution=128)
    src = fw.mapping(torch.randn(1, fw.z_dim, generator=torch.Generator().manual_seed(99)))
    cancel = threading.Event()
    seen: list[tuple[int, str]] = []

    def progress(step: int, total: int, metrics: dict) -> None:
        seen.append((step, metrics.get("stage", "")))
        if step >= 3:
            cancel.set()

    cfg = FinetuneConfig(sources=4, targets_per_source=8, val_pairs=16, batch=16)
    tuned = finetune(base, src, steps=50, progress=progress, cancel=cancel, config=cfg, generator=fw)
    ft = tuned.meta["finetune"]
    assert ft["cancelled"] and ft["steps"] == 3
    assert {"rendering pairs", "training"} <= {s for _, s in seen}
    assert tuned.fan is not base.fan and tuned.directions.shape == base.directions.shape
    changed = any(not torch.equal(a, b) for a, b in zip(tuned.fan.parameters(), base.fan.parameters()))
    assert changed and "finetune" not in base.meta  # the input bundle is untouched
