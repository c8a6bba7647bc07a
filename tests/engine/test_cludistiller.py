"""CluDistiller on real FaceWorld renders + real mediapipe: the bank moves actions, PCA/random directions do not."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.distill.cludistiller import (
    DEFAULT_REGIONS,
    REGIONS,
    CluDistillerConfig,
    distill,
    find_directions,
    load_directions,
    region_features,
)
from engine.distill.direction_check import check_directions, pca_directions, random_directions
from engine.distill.sampling import SamplingConfig, sample_shards


@pytest.fixture(scope="module")
def fw():
    from engine.generators import load_generator

    return load_generator("faceworld", resolution=96)


@pytest.fixture(scope="module")
def run(fw, tmp_path_factory):
    out = tmp_path_factory.mktemp("bank")
    sampling = SamplingConfig(samples=384, batch=64, seed=0)
    cfg = CluDistillerConfig(regions=("pose", "nose", "mouth", "eye_right", "eye_left", "brows"), ks=(2, 3, 6),
                             effect_samples=2, max_directions=64, min_cluster=10)
    res = distill(fw, out, sampling, cfg, progress=False)
    return out, sampling, cfg, res


def test_outputs_and_stats(fw, run) -> None:
    out, _, cfg, res = run
    dirs, infos = load_directions(out / "directions.safetensors")
    assert dirs.shape == (res.stats["directions"], fw.num_ws, fw.w_dim) and len(dirs) >= 10
    assert torch.all(dirs[:, cfg.action_layers :] == 0)
    assert torch.all(dirs[:, : cfg.action_layers].abs().sum((1, 2)) > 0)
    doc = json.loads((out / "directions.json").read_text())
    assert doc["stats"]["drawn"] == 384 and doc["stats"]["kept_samples"] + doc["stats"]["dropped_undetected"] == 384
    for info in infos:
        assert {"region", "k", "origin", "norm", "effect", "group"} <= set(info)
        assert info["group"] in ("pose", "expression")
        assert info["effect"]["face"] >= cfg.min_effect
    assert {i["group"] for i in infos} == {"pose", "expression"}
    # Near-duplicates were pruned.
    flat = dirs.flatten(1)
    unit = flat / flat.norm(dim=1, keepdim=True)
    cos = (unit @ unit.T).abs() - torch.eye(len(unit))
    assert float(cos.max()) <= cfg.dup_cosine + 1e-5


def test_bank_moves_actions_and_controls_fail(fw, run) -> None:
    _, _, _, res = run
    bank = res.directions
    r_bank = check_directions(fw, bank)
    r_pca = check_directions(fw, pca_directions(fw, len(bank), bank))
    r_rand = check_directions(fw, random_directions(bank, len(bank)))
    # The bank finds most facial actions as dominant, sizeable effects; the controls find (almost) none.
    assert r_bank.targets_passed >= 6, r_bank.summary()  # measured 6 at this size (the full default bank: 8)
    # the per-eye lid regions find a blink. Which other targets pass at this size shifts with small render changes:
    # since the pucker change (session 4) the run finds smile (0.74 -> 1.47 sd) and misses pitch (1.25 -> 0.82 sd;
    # 0.74-0.82 over seeds 0-2); pitch is checked at full size instead (1.22 sd, RESULTS.md)
    assert r_bank.targets["blink"]["passed"], r_bank.summary()
    assert r_pca.targets_passed <= 1 and r_rand.targets_passed <= 1
    assert r_bank.targets_passed >= max(r_pca.targets_passed, r_rand.targets_passed) + 3
    assert not r_pca.passed and not r_rand.passed
    # Identity moves clearly less with the bank than with PCA / random directions of the same norm.
    assert r_bank.identity_ratio < 0.85 * min(r_pca.identity_ratio, r_rand.identity_ratio)


def test_localisation_lowers_identity_leakage(fw, run) -> None:
    """The opt-in localisation (engine.distill.locality) on this run's candidates: the expression candidates move
    identity clearly less relative to actions, and the blink is still there."""
    from engine.distill.cludistiller import _localise
    from engine.distill.locality import LocalityConfig
    from engine.distill.sampling import LandmarkRenderer, map_z

    out, sampling, cfg, _ = run
    samples = sample_shards(fw, out, sampling, progress=False)
    cand, infos = find_directions(samples.ws, samples.points, cfg, progress=False)
    expr = [i for i, info in enumerate(infos) if info["group"] == "expression"]
    cfg_loc = CluDistillerConfig(**{**cfg.__dict__, "localise": True,
                                    "locality": LocalityConfig(sources=4, probes=12)})
    base = map_z(fw, torch.randn(2, fw.z_dim, generator=torch.Generator().manual_seed(5)), 1.0)
    with LandmarkRenderer(fw) as renderer:
        loc = _localise(cand.clone(), [dict(i) for i in infos], fw, renderer, base, cfg_loc, progress=False)
    r_raw, r_loc = check_directions(fw, cand[expr]), check_directions(fw, loc[expr])
    # measured at this size: 0.48 -> 0.32 (full size, whole bank: 0.27 -> 0.13)
    assert r_loc.identity_ratio < 0.75 * r_raw.identity_ratio, (r_raw.identity_ratio, r_loc.identity_ratio)
    assert r_loc.targets["blink"]["passed"], r_loc.summary()
    assert torch.equal(loc[[i for i in range(len(infos)) if i not in expr]],
                       cand[[i for i in range(len(infos)) if i not in expr]])  # pose group untouched


def test_deterministic_and_resumable(fw, run) -> None:
    out, sampling, cfg, res = run
    s1 = sample_shards(fw, out, sampling, progress=False)
    shard = out / "samples" / "shard_00002.safetensors"
    shard.unlink()
    s2 = sample_shards(fw, out, sampling, progress=False)  # re-renders only the missing shard
    assert shard.exists()
    assert torch.equal(s1.ws, s2.ws)
    assert np.allclose(s1.points, s2.points, atol=1e-3)
    a, _ = find_directions(s1.ws, s1.points, cfg, progress=False)
    b, _ = find_directions(s2.ws, s2.points, cfg, progress=False)
    assert torch.allclose(a, b, atol=1e-5)


def test_region_features_are_similarity_invariant() -> None:
    """Every normalised region (all but "pose", which keeps rotation) ignores where the face is, its size and roll."""
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(5, 78, 2)) * 0.1 + np.linspace(-1, 1, 78)[None, :, None] * np.array([1.0, 0.3])
    pts[:, 36:48, 1] += 0.5  # eyes above the rest
    ang = 0.3
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    moved = 2.5 * pts @ rot.T + np.array([10.0, -4.0])
    for region in REGIONS:
        a, b = region_features(pts, region), region_features(moved, region)
        assert a.shape[0] == 5 and a.shape == b.shape
        if region != "pose":
            assert np.allclose(a, b, atol=1e-9), region
    with pytest.raises(ValueError, match="unknown region"):
        region_features(pts, "ears")


def test_cli_default_regions_match_the_library() -> None:
    from engine.commands.distill import command

    opt = next(p for p in command.params if p.name == "regions")
    assert tuple(opt.default.split(",")) == DEFAULT_REGIONS
    ks = next(p for p in command.params if p.name == "ks")
    assert tuple(int(k) for k in ks.default.split(",")) == CluDistillerConfig().ks
