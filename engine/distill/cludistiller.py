"""CluDistiller: discover latent directions for facial actions by clustering generated faces by their landmarks.

Pipeline (``distill``): sampling + detection (``engine.distill.sampling``) -> per region and per k, k-means over the
flattened normalised landmarks of that region -> per cluster the mean w (centroid) -> directions = centroid
differences on the first ``action_layers`` layers (all pairs for k <= 6, FastICA components for k > 6), the rest
zero -> pruning (near-duplicates by cosine, negligible landmark effect measured by rendering w + v) ->
``RUN_DIR/directions.safetensors`` [n, num_ws, w_dim] + ``RUN_DIR/directions.json``.

Normalisation per region (points: the 78-point face set, iBUG-68 + irises):

* ``pose``: the whole face normalised for translation and scale ONLY, so head rotation (roll, and yaw/pitch seen
  as foreshortening) is what the clusters split on. ``nose``: the nose points in the similarity-aligned face, whose
  foreshortening shows pitch (the whole-face pose clusters split on yaw and roll first and never isolate pitch).
  The directions of both are labelled group "pose".
* every other region is normalised in a frame that removes pose (see ``region_features``: eyes and mouth in their
  own local frames, brows relative to the eyes, face/jaw after a full similarity alignment). These directions are
  labelled group "expression" and have the top pose axes projected out (``orthogonalise_to_pose``): measured on
  FaceWorld, raw expression centroid differences also turn the head (yaw is the largest landmark variance).

Options against identity leakage: ``localise`` (expression directions lose what they change outside their region:
``engine.latent.locality``) and ``rotation_samples`` (three head-rotation directions regressed on each sample's 3D
head rotation replace the nose region: ``engine.distill.rotation``), both on in the "default" preset, which
also adds ``mouth_regression`` (a jaw and a smile direction regressed on the mouth measured in the head frame of the
same 3D fit; regression directions win the duplicate test against cluster directions: ``prune``); and,
opt-in, ``min_locality`` (expression directions whose landmark motion spreads beyond their region are pruned:
``landmark_locality``; judged on every region it lost a target on one sample set: RESULTS.md, 'Locality pruning').
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.landmarks import schema
from engine.landmarks.geometry import segment_frame
from engine.latent.axes import principal_axes, project_out
from engine.latent.bank import Direction, as_directions
from engine.latent.locality import REGION_EFFECT_KEYS, LocalityConfig

_R = schema.Region
REGIONS = (_R.POSE, _R.FACE, _R.MOUTH, _R.EYES, _R.EYE_RIGHT, _R.EYE_LEFT, _R.IRISES, _R.BROWS, _R.JAW, _R.NOSE)
DEFAULT_REGIONS = (_R.POSE, _R.NOSE, _R.MOUTH, _R.EYES, _R.EYE_RIGHT, _R.EYE_LEFT, _R.BROWS)  # chosen by measurement:
#  RESULTS.md, "CluDistiller regions and k" (face/jaw add identity shape and little action; per-eye lids find blinks)
POSE_REGIONS = (_R.POSE, _R.NOSE)  # their directions form the "pose" group (the nose's shape in the aligned face shows
#                                  pitch and yaw as foreshortening, which the whole-face normalisation hides)


@dataclass
class CluDistillerConfig:
    """Clustering, collecting and pruning settings."""

    regions: tuple[str, ...] = DEFAULT_REGIONS
    ks: tuple[int, ...] = (2, 3, 4, 6, 8, 12)  # cluster counts per region (12: the smile; RESULTS.md, 'CluDistiller
    #                                              regions and k')
    action_layers: int = 8  # directions live on ws[:, :action_layers]
    max_pairs_k: int = 6  # all centroid pairs up to this k; FastICA components beyond
    ica_components: int = 4  # FastICA components kept per (region, k) when k > max_pairs_k
    min_cluster: int = 20  # clusters smaller than this are ignored
    dup_cosine: float = 0.9  # |cos| above this -> near-duplicate, the one with the smaller effect is dropped
    min_effect: float = 0.02  # prune directions whose landmark effect < this (x inter-ocular): the whole-face mean
    #                           displacement, or with localise the largest region mean ("peak": a localised blink
    #                           moves 12 of 78 points)
    effect_samples: int = 4  # sources used to measure the landmark effect of a direction
    max_directions: int = 64  # keep at most this many (regions in turn, largest effect first)
    orthogonalise_pose: int = 3  # project the top-N pose axes out of expression directions (0 = off)
    localise: bool = False  # remove what expression directions change outside their region (engine.latent.locality):
    #                         identity/action 0.27 -> 0.13 on FaceWorld; 0.09 with the rotation and mouth regression
    #                         directions and the mouth's locality pruning (the "default" preset of recipes.py)
    locality: LocalityConfig = field(default_factory=LocalityConfig)
    min_locality: float = 0.0  # prune expression candidates whose landmark locality (own-region displacement /
    #                            whole-face displacement) is below this share of their region's most local candidate
    #                            (0 = off; ``landmark_locality``) ...
    min_locality_regions: tuple[str, ...] = (_R.MOUTH,)  # ... in these regions: only for the mouth does locality
    #                            predict identity leakage (r = -0.91; eyes are clean, the brows' identity is inside)
    rotation_samples: int = 0  # add three head-rotation directions regressed on the 3D head rotation of this many
    #                            samples (engine.distill.rotation; 0 = off). They replace the "nose" region, which is
    #                            then skipped: it was there for pitch only, and its clusters carry identity
    #                            (identity/action 0.140 -> 0.100 on FaceWorld: RESULTS.md, 'Head-rotation and mouth
    #                            regression directions')
    rotation_amplitude: float = 2.0  # their size: this many standard deviations of the sample rotations
    mouth_regression: bool = False  # with rotation_samples: also the jaw and smile directions regressed on the
    #                                 frontalised mesh's mouth with the head rotation held fixed (rotation.py)
    seed: int = 0


# ---------------------------------------------------------------------------------------------------------------
# Normalisation of the 78-point face set
# ---------------------------------------------------------------------------------------------------------------


def _eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eye centres ([N, 2], [N, 2]) of the 78-point face set: the mean of each eye's six iBUG lid points."""
    return points[:, schema.IBUG_RIGHT_EYE].mean(1), points[:, schema.IBUG_LEFT_EYE].mean(1)


def eye_frame(points: np.ndarray) -> np.ndarray:
    """[N, 78, 2] in the frame of the eyes: eye midpoint -> origin, eye line -> +x, eye-centre distance -> 1 (a
    similarity that removes the head's roll, scale and translation without a fit)."""
    return segment_frame(points, *_eye_centres(points))


def normalise_translation_scale(points: np.ndarray) -> np.ndarray:
    """[N, 78, 2] -> centroid at the origin, RMS radius 1; rotation is kept (for pose clustering)."""
    c = points - points.mean(1, keepdims=True)
    rms = np.sqrt((c**2).sum(-1).mean(-1)).clip(1e-6)
    return c / rms[:, None, None]


def _in_eye_frame(points: np.ndarray, side: str, lids: bool, iris: bool) -> np.ndarray:
    """One eye's lid and/or iris points [N, P, 2] in its corner-to-corner frame (image left to right)."""
    lid = schema.FACE_EYE_LIDS[side]
    parts = ([points[:, lid]] if lids else []) + ([points[:, schema.FACE_EYE_IRISES[side]]] if iris else [])
    pts = parts[0] if len(parts) == 1 else np.concatenate(parts, 1)
    return segment_frame(pts, points[:, lid[0]], points[:, lid[3]])


def region_features(points: np.ndarray, region: str) -> np.ndarray:
    """Flattened normalised landmarks of ``region`` for k-means: [N, 78, 2] -> [N, F].

    * ``pose``: all points, translation/scale only (rotation kept).
    * ``face``, ``jaw``, ``nose``: the region's points in the eye frame (``eye_frame``).
    * ``eyes``: each eye (6 lid points + 5 iris points) in its own corner-to-corner frame: lid aperture (blink) and
      iris position (gaze), independent of eye size/spacing and little affected by head pose.
    * ``eye_right``, ``eye_left``: one eye's 6 lid points in its corner frame (each eye blinks on its own; with
      the irises in the features k-means splits on gaze first). ``irises``: the 10 iris points in the eye frames.
    * ``mouth``: the 20 lip points in the mouth-corner frame (opening, smile curvature, pucker).
    * ``brows``: brow points relative to the eye centres in the eye frame (raise, frown).
    """
    n = len(points)
    R, regions = schema.Region, schema.FACE_REGIONS
    if region == R.POSE:
        return normalise_translation_scale(points).reshape(n, -1)
    if region == R.EYES:
        right = _in_eye_frame(points, R.EYE_RIGHT, lids=True, iris=True)
        left = _in_eye_frame(points, R.EYE_LEFT, lids=True, iris=True)
        return np.concatenate([right, left], 1).reshape(n, -1)
    if region in (R.EYE_RIGHT, R.EYE_LEFT):
        return _in_eye_frame(points, region, lids=True, iris=False).reshape(n, -1)
    if region == R.IRISES:
        right = _in_eye_frame(points, R.EYE_RIGHT, lids=False, iris=True)
        left = _in_eye_frame(points, R.EYE_LEFT, lids=False, iris=True)
        return np.concatenate([right, left], 1).reshape(n, -1)
    if region == R.MOUTH:
        corners = points[:, schema.IBUG_MOUTH_RIGHT], points[:, schema.IBUG_MOUTH_LEFT]
        return segment_frame(points[:, regions[R.MOUTH]], *corners).reshape(n, -1)
    a = eye_frame(points)
    if region == R.BROWS:
        return (a[:, regions[R.BROWS]] - a[:, regions[R.EYES]].mean(1, keepdims=True)).reshape(n, -1)
    if region == R.FACE:
        return a.reshape(n, -1)
    if region in (R.JAW, R.NOSE):
        return a[:, regions[region]].reshape(n, -1)
    raise ValueError(f"unknown region {region!r}; choose from {', '.join(REGIONS)}")


# ---------------------------------------------------------------------------------------------------------------
# Clustering and collecting
# ---------------------------------------------------------------------------------------------------------------


def cluster(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means labels [N] over features [N, F] (standardised by the global feature scale)."""
    from sklearn.cluster import KMeans

    x = features - features.mean(0)
    x = x / max(float(x.std()), 1e-8)
    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(x)


def collect(
    ws: torch.Tensor, labels: np.ndarray, k: int, config: CluDistillerConfig
) -> list[tuple[torch.Tensor, dict[str, Any]]]:
    """Candidate directions from cluster centroids. ws [N, L, D] -> list of (v [L, D], info)."""
    L = config.action_layers
    cents, sizes, ids = [], [], []
    for c in range(k):
        m = labels == c
        if m.sum() >= config.min_cluster:
            cents.append(ws[torch.from_numpy(m)].mean(0))
            sizes.append(int(m.sum()))
            ids.append(c)
    out: list[tuple[torch.Tensor, dict[str, Any]]] = []
    if len(cents) < 2:
        return out
    C = torch.stack(cents)  # [k', L, D]

    def _dir(v_act: torch.Tensor) -> torch.Tensor:
        v = torch.zeros_like(C[0])
        v[:L] = v_act
        return v

    if len(cents) <= config.max_pairs_k:
        for i, j in itertools.combinations(range(len(cents)), 2):
            v = _dir(C[j, :L] - C[i, :L])
            out.append((v, {"origin": {"pair": [ids[i], ids[j]], "sizes": [sizes[i], sizes[j]]}}))
        return out
    from sklearn.decomposition import FastICA

    X = C[:, :L].reshape(len(cents), -1).double().numpy()
    n_comp = min(config.ica_components, len(cents) - 1)
    ica = FastICA(n_components=n_comp, random_state=config.seed, whiten="unit-variance", max_iter=1000, tol=1e-3)
    S = ica.fit_transform(X)  # [k', n_comp]
    A = ica.mixing_  # [L*D, n_comp]
    for j in range(n_comp):
        span = float(S[:, j].max() - S[:, j].min())
        v_act = torch.from_numpy(A[:, j] * span).float().view(L, -1)
        out.append((_dir(v_act), {"origin": {"ica": j, "of": n_comp}}))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Landmark effect and pruning
# ---------------------------------------------------------------------------------------------------------------


def region_effects(src: np.ndarray, tgt: np.ndarray, found: np.ndarray) -> dict[str, float]:
    """Mean point displacement per region (x inter-ocular of the source) between [M, 78, 2] landmark sets."""
    if not found.any():
        return {_R.FACE: 0.0}
    s, t = src[found], tgt[found]
    r, l = _eye_centres(s)
    iod = np.linalg.norm(l - r, axis=1).clip(1e-6)
    disp = np.linalg.norm(t - s, axis=-1) / iod[:, None]  # [M, 78]
    eff = {_R.FACE: float(disp.mean())}
    for name, idx in schema.FACE_REGIONS.items():
        if name != _R.FACE:
            eff[name] = float(disp[:, idx].mean())
    # Non-rigid part: displacement left after a full similarity alignment of both.
    eff["expression"] = float(np.linalg.norm(eye_frame(t) - eye_frame(s), axis=-1).mean())
    # The largest per-region mean displacement (pruning ranks by it with localise: a blink moves 12 of 78 points,
    # so the whole-face mean of a localised blink direction is small although its eyelids move a lot).
    eff["peak"] = max(v for k, v in eff.items() if k != "expression")
    return eff


def measure_effects(
    directions: torch.Tensor, renderer: Any, base_ws: torch.Tensor, progress: bool = True
) -> list[dict[str, float]]:
    """Landmark effect of each direction: render base_ws + v for the sources base_ws [M, L, D], detect, compare."""
    from tqdm import tqdm

    src, found0 = renderer.landmarks(base_ws)
    effects = []
    for v in tqdm(directions, desc="effects", unit="dir", disable=not progress):
        tgt, found1 = renderer.landmarks(base_ws + v[None])
        effects.append(region_effects(src, tgt, found0 & found1))
    return effects


def _effect(info: dict[str, Any], key: str) -> float:
    """A candidate's landmark effect for pruning (x inter-ocular): ``key`` "face" or "peak" (see min_effect)."""
    eff = info["effect"]
    return float(eff.get(key, eff[_R.FACE]))


def landmark_locality(info: dict[str, Any]) -> float | None:
    """How much an expression candidate moves its own region's points relative to the whole face: the largest mean
    displacement of the region's effect keys (``locality.REGION_EFFECT_KEYS``) / the whole-face mean displacement.
    None for pose-group candidates and regions without keys."""
    keys = REGION_EFFECT_KEYS.get(str(info.get("region")), ())
    if info.get("group") != "expression" or not keys:
        return None
    eff = info["effect"]
    return max(eff.get(k, 0.0) for k in keys) / max(eff[_R.FACE], 1e-12)


def _is_regression(info: dict[str, Any]) -> bool:
    """A regression direction (engine.distill.rotation), not a cluster one."""
    return "regression" in info.get("origin", {})


def _mark_not_local(infos: list[dict[str, Any]], config: CluDistillerConfig, key: str) -> None:
    """Mark ``pruned`` the expression cluster candidates less local than ``min_locality`` x their region's most local
    one (among those with a non-negligible effect). A mouth direction that also moves the jaw line, the nose or the
    eyes carries face shape (identity) with its action; measured on FaceWorld, locality and identity leakage of the
    mouth clusters correlate at -0.91 (RESULTS.md, 'Locality pruning'). Regression directions are neither judged nor the
    reference: a smile moves the cheeks too, and its regression direction is the cleanest smile of the bank."""
    best: dict[str, float] = {}
    def judged(info: dict[str, Any]) -> bool:
        return info.get("region") in config.min_locality_regions and not _is_regression(info)

    for info in infos:
        loc = landmark_locality(info)
        if loc is not None and judged(info) and _effect(info, key) >= config.min_effect:
            best[info["region"]] = max(best.get(info["region"], 0.0), loc)
    for info in infos:
        loc = landmark_locality(info)
        ref = best.get(str(info.get("region")))
        if loc is not None and judged(info) and ref is not None and loc < config.min_locality * ref:
            info["pruned"] = f"not local ({loc:.3f} < {config.min_locality} x {ref:.3f})"


def prune(
    directions: torch.Tensor, infos: list[dict[str, Any]], config: CluDistillerConfig
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Drop negligible directions, then (with ``min_locality``) the least local expression directions of each region,
    then near-duplicates (|cos| > dup_cosine, keep the larger effect), then cap.

    Candidates are visited region by region in turn (each region's largest effect first), so the cap keeps every
    region represented: ranking by raw landmark effect alone would fill the bank with head-pose directions and drop
    the small but essential eyelid and brow motions (measured: brows kept 3 of 48 slots that way).
    """
    key = "peak" if config.localise else _R.FACE
    for info in infos:
        info.pop("pruned", None)
    if config.min_locality > 0:
        _mark_not_local(infos, config, key)
    regions: dict[str, list[int]] = {}
    # regression directions first (each isolates one action with the others held fixed: a cluster direction within
    # dup_cosine of one is the same action with more of everything else), then the largest effect first
    first = sorted(range(len(infos)), key=lambda i: (not _is_regression(infos[i]), -_effect(infos[i], key)))
    for i in first:
        regions.setdefault(str(infos[i].get("region")), []).append(i)
    order = [i for group in itertools.zip_longest(*regions.values()) for i in group if i is not None]
    kept: list[int] = []
    flat = directions.flatten(1)
    unit = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-8)
    for i in order:
        info = infos[i]
        if _effect(info, key) < config.min_effect:
            info["pruned"] = "negligible effect"
            continue
        if "pruned" in info:  # not local
            continue
        if kept:
            cos = (unit[kept] @ unit[i]).abs()
            if float(cos.max()) > config.dup_cosine:
                info["pruned"] = f"duplicate of candidate {kept[int(cos.argmax())]}"
                continue
        if len(kept) >= config.max_directions:
            info["pruned"] = "over max_directions"
            continue
        kept.append(i)
    kept.sort()
    return directions[kept], [infos[i] for i in kept]


# ---------------------------------------------------------------------------------------------------------------
# The whole CluDistiller
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class DistillResult:
    directions: torch.Tensor  # [n, num_ws, w_dim]
    infos: list[Direction]  # the records of directions.json (built as dicts while distilling)
    stats: dict[str, Any] = field(default_factory=dict)


def find_directions(
    ws: torch.Tensor, points: np.ndarray, config: CluDistillerConfig, progress: bool = True
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Cluster + collect over every (region, k): ws [N, L, D], points [N, 78, 2] -> candidates [m, L, D], infos."""
    from tqdm import tqdm

    dirs, infos = [], []
    regions = [r for r in config.regions if not (r == _R.NOSE and config.rotation_samples > 0)]  # see the config
    grid = [(r, k) for r in regions for k in config.ks]
    for region, k in tqdm(grid, desc="clustering", unit="run", disable=not progress):
        feats = region_features(points, region)
        labels = cluster(feats, k, config.seed)
        for v, info in collect(ws, labels, k, config):
            info.update(region=region, k=k, group="pose" if region in POSE_REGIONS else "expression")
            dirs.append(v)
            infos.append(info)
    if not dirs:
        raise RuntimeError("no candidate directions: too few detected samples for the requested k")
    cand = torch.stack(dirs)
    if config.orthogonalise_pose > 0:
        cand = orthogonalise_to_pose(cand, infos, config.orthogonalise_pose, config.action_layers)
    return cand, infos


def orthogonalise_to_pose(
    cand: torch.Tensor, infos: list[dict[str, Any]], rank: int, action_layers: int
) -> torch.Tensor:
    """Remove from every expression candidate its component in the span of the top ``rank`` pose directions.

    Expression clusters (mouth, eyes, brows, ...) also differ in head pose (yaw dominates landmark variance), so
    their raw centroid differences turn the head too; projecting the main pose axes out leaves the expression.
    cand [m, L, D] -> [m, L, D] (pose candidates unchanged).
    """
    pose = [i for i, info in enumerate(infos) if info["group"] == "pose"]
    if not pose:
        return cand
    flat = cand[:, :action_layers].flatten(1)
    basis = principal_axes(flat[pose], rank)
    out = cand.clone()
    for i, info in enumerate(infos):
        if info["group"] != "pose":
            out[i, :action_layers] = project_out(flat[i : i + 1], basis).view(action_layers, -1)
            info["orthogonalised_to_pose"] = int(basis.shape[0])
    return out


def distill(
    generator: torch.nn.Module,
    out_dir: str | Path,
    sampling: Any,
    config: CluDistillerConfig,
    progress: bool = True,
    renderer: Any = None,
) -> DistillResult:
    """Run the CluDistiller end to end and write ``out_dir/directions.safetensors`` + ``directions.json``."""
    from safetensors.torch import save_file

    from engine.distill.sampling import LandmarkRenderer, sample_shards
    from engine.latent.mapping import map_z

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    own = renderer is None
    renderer = renderer or LandmarkRenderer(generator, detect_size=sampling.detect_size)
    try:
        samples = sample_shards(generator, out, sampling, renderer=renderer, progress=progress)
        if len(samples.ws) < 2 * config.min_cluster:
            raise RuntimeError(f"only {len(samples.ws)} of {samples.drawn} samples had a detected face")
        cand, infos = find_directions(samples.ws, samples.points, config, progress)
        if config.rotation_samples > 0:
            from engine.distill.rotation import rotation_directions

            rot, rot_infos = rotation_directions(
                samples.ws[: config.rotation_samples], renderer, config.action_layers, config.rotation_amplitude,
                mouth=config.mouth_regression,
            )
            cand = torch.cat([cand, rot])
            infos = infos + rot_infos
        g = torch.Generator().manual_seed(config.seed + 7919)
        z = torch.randn(config.effect_samples, generator.z_dim, generator=g)
        base = map_z(generator, z, sampling.truncation_psi)
        if config.localise:
            cand = _localise(cand, infos, generator, renderer, base, config, progress)
        effects = measure_effects(cand, renderer, base, progress)
    finally:
        if own:
            renderer.close()
    for info, v, eff in zip(infos, cand, effects):
        info["norm"] = float(v.norm())
        info["effect"] = eff
    dirs, kept = prune(cand, infos, config)
    for i, info in enumerate(kept):
        info["index"] = i
    stats = {
        "drawn": samples.drawn,
        "dropped_undetected": samples.dropped,
        "kept_samples": int(len(samples.ws)),
        "candidates": int(len(infos)),
        "directions": int(len(kept)),
        "pruned": {
            reason: sum(1 for i in infos if str(i.get("pruned", "")).startswith(reason))
            for reason in ("negligible", "not local", "duplicate", "over")
        },
    }
    save_file({"directions": dirs.contiguous()}, str(out / "directions.safetensors"))
    doc = {
        "config": asdict(config),
        "sampling": asdict(sampling),
        "stats": stats,
        "directions": kept,
        "w_avg_layers": int(dirs.shape[1]),
    }
    (out / "directions.json").write_text(json.dumps(doc, indent=1))
    return DistillResult(dirs, as_directions(kept), stats)


def _localise(
    cand: torch.Tensor, infos: list[dict[str, Any]], generator: torch.nn.Module, renderer: Any, base: torch.Tensor,
    config: CluDistillerConfig, progress: bool,
) -> torch.Tensor:
    """Localise the expression candidates, then give each back its own region's landmark effect (measured on the
    same sources before and after: the soft projection also shrinks the action a little)."""
    from engine.latent.locality import REGION_EFFECT_KEYS, amplitude_factor, localise_directions

    todo = set(REGION_EFFECT_KEYS) & set(config.locality.regions)
    # regression directions are localised but not rescaled: most of their landmark motion before the localisation was
    # side effects it removes (the smile's pitch and frown), and giving that back doubled them (RESULTS.md,
    # 'Head-rotation and mouth regression directions')
    idx = [i for i, info in enumerate(infos)
           if info["group"] == "expression" and info["region"] in todo and not _is_regression(info)]
    if not idx:
        return cand
    before = measure_effects(cand[idx], renderer, base, progress)
    out = localise_directions(cand, infos, generator, renderer, config.locality, config.action_layers, progress)
    after = measure_effects(out[idx], renderer, base, progress)
    for j, i in enumerate(idx):
        f = amplitude_factor(infos[i]["region"], before[j], after[j], config.locality.rescale_cap)
        out[i] = out[i] * f
        infos[i]["localised_rescale"] = round(f, 4)
    return out


