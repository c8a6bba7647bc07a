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
    region_features,
)
from engine.distill.sampling import SamplingConfig, sample_shards
from engine.evaluation.directions import check_directions, pca_directions, random_directions
from engine.latent.bank import load_directions


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
    # since FaceWorld's pucker became visible the run finds smile (0.74 -> 1.47 sd) and misses pitch (1.25 -> 0.82 sd;
    # 0.74-0.82 over seeds 0-2); pitch passes at full size (RESULTS.md, 'The shipped recipe')
    assert r_bank.targets["blink"]["passed"], r_bank.summary()
    assert r_pca.targets_passed <= 1 and r_rand.targets_passed <= 1
    assert r_bank.targets_passed >= max(r_pca.targets_passed, r_rand.targets_passed) + 3
    assert not r_pca.passed and not r_rand.passed
    # Identity moves clearly less with the bank than with PCA / random directions of the same norm.
    assert r_bank.identity_ratio < 0.85 * min(r_pca.identity_ratio, r_rand.identity_ratio)


def test_localisation_lowers_identity_leakage(fw, run) -> None:
    """The opt-in localisation (engine.latent.locality) on this run's candidates: the expression candidates move
    identity clearly less relative to actions, and the blink is still there."""
    from engine.distill.cludistiller import _localise
    from engine.distill.sampling import LandmarkRenderer
    from engine.latent.locality import LocalityConfig
    from engine.latent.mapping import map_z

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


def test_prune_drops_the_least_local_expression_directions() -> None:
    """With ``min_locality`` an expression candidate whose landmark motion spreads over the face (a mouth direction
    that also moves the jaw line and the eyes: face shape) is pruned; the region's local ones and the pose group
    stay. Off (0) by default; by default only mouth candidates are judged."""
    from engine.distill.cludistiller import landmark_locality, prune

    def info(region: str, group: str, own: float, face: float) -> dict:
        eff = {"face": face, "mouth": 0.0, "eyes": 0.0, "irises": 0.0, "jaw": 0.0, "brows": 0.0}
        if region in eff:
            eff[region] = own
        eff["peak"] = max(eff.values())
        return {"region": region, "group": group, "effect": eff}

    infos = [info("mouth", "expression", 0.20, 0.09), info("mouth", "expression", 0.20, 0.13),
             info("mouth", "expression", 0.10, 0.049), info("pose", "pose", 0.0, 0.5),
             info("eyes", "expression", 0.06, 0.02)]
    assert landmark_locality(infos[0]) == pytest.approx(0.20 / 0.09) and landmark_locality(infos[3]) is None
    dirs = torch.eye(len(infos))[:, None, :].repeat(1, 2, 1)  # orthogonal: no duplicates
    kept, kept_infos = prune(dirs, [dict(i) for i in infos], CluDistillerConfig(localise=True))
    assert len(kept) == 5  # off by default
    cfg = CluDistillerConfig(localise=True, min_locality=0.9)
    work = [dict(i) for i in infos]
    kept, kept_infos = prune(dirs, work, cfg)
    assert len(kept) == 4 and str(work[1]["pruned"]).startswith("not local")  # 1.54 < 0.9 x 2.22
    assert torch.equal(kept, dirs[[0, 2, 3, 4]])
    kept, _ = prune(dirs, work, CluDistillerConfig(localise=True))  # a later prune starts afresh
    assert len(kept) == 5
    # only the mouth is judged by default (its locality predicts identity leakage; the eyes' and brows' does not)
    infos.append(info("eyes", "expression", 0.03, 0.03))  # locality 1.0 < 0.9 x 3.0
    dirs = torch.eye(len(infos))[:, None, :].repeat(1, 2, 1)
    work = [dict(i) for i in infos]
    assert len(prune(dirs, work, cfg)[0]) == 5 and "pruned" not in work[5]
    cfg = CluDistillerConfig(localise=True, min_locality=0.9, min_locality_regions=("mouth", "eyes"))
    assert len(prune(dirs, work, cfg)[0]) == 4 and str(work[5]["pruned"]).startswith("not local")


def test_prune_keeps_a_regression_direction_over_its_cluster_duplicate() -> None:
    """Of two near-duplicates the larger landmark effect stays, unless the other is a regression direction (one action
    with the others held fixed): a cluster direction that is the same action plus a little of everything else goes."""
    from engine.distill.cludistiller import prune

    eff = {"face": 0.1, "mouth": 0.3, "peak": 0.3}
    cluster = {"region": "mouth", "group": "expression", "origin": {"pair": [0, 1]}, "effect": eff}
    regression = {"region": "mouth", "group": "expression", "origin": {"regression": "smile"},
                  "effect": {**eff, "mouth": 0.2, "peak": 0.2}}
    dirs = torch.tensor([[1.0, 0.3, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])[:, None, :]  # cos(0, 1) = 0.96
    kept, infos = prune(dirs, [dict(cluster), dict(regression), dict(cluster)], CluDistillerConfig(localise=True))
    assert torch.equal(kept, dirs[[1, 2]])
    assert [i["origin"] for i in infos] == [{"regression": "smile"}, {"pair": [0, 1]}]
    kept, _ = prune(dirs, [dict(cluster), dict(cluster), dict(cluster)], CluDistillerConfig(localise=True))
    assert torch.equal(kept, dirs[[0, 2]])  # between clusters the larger effect wins (ties: the first)


def test_head_rotations_and_regression_directions() -> None:
    """A rigid fit of 3D point sets recovers each sample's rotation despite non-rigid shape changes; regressing w on
    those rotations gives the latent axis of the rotation with far less of the shape axes than a centroid difference
    of samples split by a 2D shape feature that shows the rotation."""
    from engine.distill.rotation import head_rotations, regression_directions

    rng = np.random.default_rng(0)
    n, p, d = 600, 60, 32
    shape = rng.normal(size=(p, 3)) * np.array([1.0, 1.2, 0.5])
    modes = rng.normal(size=(4, p, 3)) * 0.08  # identity: non-rigid shape modes
    angles = rng.normal(size=(n, 3)) * np.array([0.15, 0.3, 0.1])
    ident = rng.normal(size=(n, 4))
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_rotvec(angles).as_matrix()  # [n, 3, 3]
    pts = np.einsum("nij,npj->npi", rot, shape[None] + np.einsum("nk,kpj->npj", ident, modes))
    pts = pts * rng.uniform(0.8, 1.2, size=(n, 1, 1)) + rng.normal(size=(n, 1, 3))
    est = head_rotations(pts)
    est = est - est.mean(0)
    for j in range(3):
        assert np.corrcoef(est[:, j], angles[:, j])[0, 1] > 0.98, j
    a_rot, a_id = rng.normal(size=(3, d)), rng.normal(size=(4, d))
    w = angles @ a_rot + ident @ a_id + 0.01 * rng.normal(size=(n, d))
    ws = torch.from_numpy(w).float()[:, None, :].repeat(1, 3, 1)
    dirs = regression_directions(ws, est, action_layers=2, amplitude=2.0)
    assert dirs.shape == (3, 3, d) and torch.all(dirs[:, 2] == 0)
    basis = np.concatenate([a_rot, a_id]).T  # latent axes: 3 rotations, 4 identity modes
    coef = np.linalg.lstsq(basis, dirs[0, 0].double().numpy(), rcond=None)[0]
    # the nose's vertical position (the points nearest the camera, relative to the centroid, in 2D) splits the
    # samples by pitch and by identity: its centroid difference carries more identity than pitch (measured 3.4x);
    # the regression on the rigid fit's x rotation mainly pitch (identity 0.39x: random shape modes also have a
    # rotational component, which a rigid fit cannot tell from a rotation)
    near = np.argsort(shape[:, 2])[:8]
    c2 = pts[:, :, :2] - pts[:, :, :2].mean(1, keepdims=True)
    nose_y = c2[:, near, 1].mean(1) / np.sqrt((c2**2).sum(-1).mean(-1))
    hi = nose_y > np.median(nose_y)
    cent = np.linalg.lstsq(basis, w[hi].mean(0) - w[~hi].mean(0), rcond=None)[0]
    share_reg, share_cent = np.abs(coef[3:]).max() / abs(coef[0]), np.abs(cent[3:]).max() / abs(cent[0])
    assert abs(coef[0]) > 0.25 and np.abs(coef[1:3]).max() < 0.05 * abs(coef[0]), coef
    assert share_reg < 0.5 and share_cent > 2.0, (share_reg, share_cent)


def test_mouth_signals_are_measured_in_the_head_frame() -> None:
    """Jaw opening and smile of synthetic meshes are recovered from the frontalised mesh whatever the head's rotation,
    scale and position; in the image plane the same measure of the smile mixes in the pitch."""
    from scipy.spatial.transform import Rotation

    from engine.distill.rotation import frontalise, head_rotations, mouth_signals
    from engine.landmarks.schema import IBUG68

    rng = np.random.default_rng(1)
    n = 400
    base = rng.normal(size=(478, 3)) * np.array([1.0, 1.2, 0.5])
    pts = np.repeat(base[None], n, 0) + 0.01 * rng.normal(size=(n, 478, 3))  # identity/detector noise
    jaw, smile = rng.uniform(0, 0.3, n), rng.uniform(-0.1, 0.1, n)
    pts[:, IBUG68[61:64], 1] -= jaw[:, None] / 2  # the inner lips part about their middle (y down)
    pts[:, IBUG68[65:68], 1] += jaw[:, None] / 2
    pts[:, IBUG68[[48, 54]], 1] -= smile[:, None]  # corners up
    angles = rng.normal(size=(n, 3)) * np.array([0.2, 0.35, 0.15])
    posed = np.einsum("nij,npj->npi", Rotation.from_rotvec(angles).as_matrix(), pts)
    posed = posed * rng.uniform(50, 80, size=(n, 1, 1)) + rng.normal(size=(n, 1, 3)) * 30
    sig = mouth_signals(frontalise(posed, head_rotations(posed)))
    assert np.corrcoef(sig[:, 0], jaw)[0, 1] > 0.98 and np.corrcoef(sig[:, 1], smile)[0, 1] > 0.95
    flat = posed.copy()
    flat[..., 2] = 0.0  # the same measure in the image plane: the corners' height also moves with the pitch
    in_2d = mouth_signals(flat / np.sqrt((flat**2).sum(-1).mean(-1))[:, None, None])
    assert np.corrcoef(in_2d[:, 1], smile)[0, 1] < 0.8, np.corrcoef(in_2d[:, 1], smile)[0, 1]


def test_rotation_directions_on_renders(fw, run) -> None:
    """On FaceWorld renders + mediapipe's 3D mesh: the three rotation directions turn the head (pitch, which this
    reduced run's clusters miss, included) and move identity less than the reduced run's bank does; the mouth
    regression's jaw and smile directions each move their action most."""
    from engine.distill.rotation import rotation_directions
    from engine.distill.sampling import LandmarkRenderer

    out, sampling, cfg, res = run
    samples = sample_shards(fw, out, sampling, progress=False)
    with LandmarkRenderer(fw) as renderer:
        dirs, infos = rotation_directions(samples.ws[:256], renderer, cfg.action_layers, mouth=True)
    assert [(i["region"], i["group"]) for i in infos] == [("rotation", "pose")] * 3 + [("mouth", "expression")] * 2
    r = check_directions(fw, dirs[:3])
    assert {r.targets[t]["direction"] for t in ("pitch", "yaw", "roll")} == {0, 1, 2}, r.summary()
    assert r.targets["pitch"]["passed"] and r.targets["roll"]["passed"], r.summary()
    bank = check_directions(fw, res.directions)
    assert r.identity_ratio < bank.identity_ratio, r.summary()
    # the jaw and smile columns of the joint regression on (angles, frontal mouth signals) each move their action
    # most, by more than one natural std
    m = check_directions(fw, dirs)
    assert (m.targets["jaw"]["direction"], m.targets["smile"]["direction"]) == (3, 4), m.summary()
    assert m.targets["jaw"]["passed"] and m.targets["smile"]["passed"], m.summary()


def test_localise_turns_on_rotation_directions() -> None:
    """``d2a distill --localise`` uses the rotation directions (4096 samples), the mouth regression and the mouth's
    locality pruning unless told otherwise; without --localise all stay off. With rotation directions the nose
    region is skipped."""
    from engine.commands.distill import command, distiller_config

    opts = {p.name: p.default for p in command.params}

    def cfg_for(**over):
        o = {**opts, **over}
        return distiller_config(o["regions"], o["ks"], o["action_layers"], o["max_directions"], o["effect_samples"],
                                o["localise"], o["locality_tau"], o["rotation_samples"], o["min_locality"], o["seed"],
                                o["mouth_regression"])

    seen = [cfg_for(localise=True), cfg_for(), cfg_for(localise=True, rotation_samples=0, min_locality=0.5),
            cfg_for(localise=True, mouth_regression=False), cfg_for(rotation_samples=64)]
    assert [(c.localise, c.rotation_samples, c.mouth_regression, c.min_locality) for c in seen] == [
        (True, 4096, True, 0.95), (False, 0, False, 0.0), (True, 0, False, 0.5), (True, 4096, False, 0.0),
        (False, 64, True, 0.95)]
    rng = np.random.default_rng(0)
    ws, pts = torch.randn(60, 2, 4), rng.normal(size=(78, 2)) + 0.05 * rng.normal(size=(60, 78, 2))
    cfg = CluDistillerConfig(regions=("pose", "nose"), ks=(2,), action_layers=1, min_cluster=5)
    _, infos = find_directions(ws, pts, cfg, progress=False)
    assert {i["region"] for i in infos} == {"pose", "nose"}
    _, infos = find_directions(ws, pts, CluDistillerConfig(**{**cfg.__dict__, "rotation_samples": 64}), progress=False)
    assert {i["region"] for i in infos} == {"pose"}
