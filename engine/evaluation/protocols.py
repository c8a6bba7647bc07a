"""The evaluation protocols of ``d2a eval``: a bundle measured against FaceWorld's ground truth (and optionally on
real driving clips).

Protocols (all landmarks detected by mediapipe on the rendered images; NME = inter-ocular normalised mean error
over the 478 points, see ``engine.landmarks.geometry.nme``):

* **self_driving** — held-out source ws_s (seeds never used in training, psi 0.7), a ground-truth action
  Δw drawn as in the AugDistiller (Σ rᵢ vᵢ, rᵢ ~ U(−1, 1) over the bank, per-layer re-norm). The driver is the
  same identity with that action, G(ws_s + Δw); absolute mode (the paper's protocol). ``nme``: output vs driver;
  ``nme_no_motion``: source vs driver (the output = source baseline).
* **cross_identity** — source A, driver B (another held-out identity) with B's neutral frame as the relative
  mode reference and B + Δw as the driving frame. Ground truth: A performing the same action, G(ws_A + Δw).
  ``appearance_error``: mean |Δ| of FaceWorld's colour/texture parameters between the output code and A;
  ``identity_error`` the same over all identity parameters (geometry too). ``nme_absolute``: absolute mode.
  ``identity_similarity``: dlib embedding cosine of source vs output (CSIM; None when dlib is not installed),
  with source vs driver as the different-identity reference.
* **sequence** — the bundled FaceWorld driving clip (``resources/samples/driving.mp4``, ground-truth ws per
  frame) drives the bundled source in relative mode (reference = frame 0). Ground truth per frame:
  G(ws_src + ws_t − ws_0). ``jitter``: temporal jitter of the output landmarks (``engine.landmarks.geometry.jitter``),
  ``jitter_ground_truth`` the same for the ground-truth frames.
* **inversion** (``--inversion N``) — N held-out renders inverted with ``engine.inversion.invert``
  (landmark subspace: principal axes of w, or the bank with ``--inversion-basis bank``): mean/max absolute
  error of the pose and expression parameters, appearance error, and the landmark NME of the inverted
  rendering vs the target.
* **real** (``--real CLIP``) — a real driving video in relative mode: ``nme_to_target`` compares the output's
  landmarks with the target landmarks the Animator asked for, ``nme_no_motion`` the source's with them;
  ``mouth_corr`` correlates driver and output mouth opening; jitter of output and driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HELD_OUT_SEED = 900_000  # seeds of the evaluation identities (training samples use small seeds)
EVAL_PSI = 0.7


def _mouth_open(points: Any) -> float:
    import numpy as np

    from engine.landmarks.geometry import interocular

    return float(np.linalg.norm(points[13] - points[14]) / max(interocular(points), 1e-6))


def evaluate(
    bundle_path: str | None = None,
    pairs: int = 20,
    *,
    seed: int = 0,
    sequence: bool = True,
    sequence_frames: int | None = None,
    inversion: int = 0,
    inversion_steps: int = 300,
    inversion_basis: str = "pca",
    smoothing: float = 0.0,
    real: list[str] | tuple[str, ...] = (),
    device: str = "cpu",
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run the protocols above and return the JSON-able results."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from engine.animate import Animator, AnimatorConfig
    from engine.distill.augment import AugmentConfig, augment, measure_layer_radii, renorm_thresholds
    from engine.evaluation.faceworld import appearance_error, identity_error
    from engine.evaluation.identity import dlib_available, identity_similarity
    from engine.landmarks import create_detector
    from engine.landmarks.geometry import nme
    from engine.media import to_uint8

    anim = Animator(bundle_path, device=device, config=AnimatorConfig(mode="absolute"))
    g = anim.generator
    det = create_detector("mediapipe", video_mode=False)
    bank = anim.directions.detach().float().cpu()

    def detect_ws(ws: torch.Tensor) -> list[Any]:
        with torch.no_grad():
            imgs = to_uint8(g.synthesis(ws.to(anim.device), noise_mode="const"))
        out = []
        for im in imgs:
            d = det.detect(im)
            out.append(np.asarray(d.points, np.float32) if d.found else None)
        return out

    def detect_img(img: Any) -> Any:
        d = det.detect(img)
        return np.asarray(d.points, np.float32) if d.found else None

    results: dict[str, Any] = {"bundle": str(bundle_path or "default"), "pairs": pairs, "seed": seed}
    # ---- held-out identities and ground-truth actions
    gen = torch.Generator().manual_seed(HELD_OUT_SEED + seed)
    n_id = pairs + 1
    z = torch.randn(n_id, g.z_dim, generator=gen)
    with torch.no_grad():
        ws_id = g.mapping(z.to(anim.device), None, truncation_psi=EVAL_PSI).float().cpu()
    tau = renorm_thresholds(measure_layer_radii(g, samples=2000, seed=HELD_OUT_SEED + seed), 99.0)
    w_avg = g.w_avg.detach().float().cpu()
    ws_t, dws, _ = augment(ws_id, bank, w_avg, tau, AugmentConfig(), generator=gen)

    sd = {"nme": [], "nme_no_motion": [], "skipped": 0}
    ci = {"nme": [], "nme_no_motion": [], "nme_absolute": [], "appearance_error": [], "identity_error": [],
          "appearance_error_driver": [], "skipped": 0}
    id_pairs: list[tuple[Any, Any]] = []  # (source, output) images for the identity embedding
    id_driver_pairs: list[tuple[Any, Any]] = []  # (source, driver): the similarity of two different identities
    it = range(pairs)
    for i in tqdm(it, desc="eval pairs", disable=not show_progress):
        a, b = i, i + 1
        kp_s, kp_t, kp_b, kp_bt, kp_gt = detect_ws(
            torch.stack([ws_id[a], ws_t[a], ws_id[b], ws_id[b] + dws[a], ws_id[a] + dws[a]])
        )
        # self-driving (absolute mode, the paper's protocol)
        if kp_s is not None and kp_t is not None:
            anim.config.mode = "absolute"
            anim.set_source(ws_id[a : a + 1])
            out = detect_img(anim.step(kp_t))
            if out is None:
                sd["skipped"] += 1
            else:
                sd["nme"].append(nme(out, kp_t))
                sd["nme_no_motion"].append(nme(kp_s, kp_t))
        else:
            sd["skipped"] += 1
        # cross-identity (relative mode with the driver's neutral frame as reference)
        if any(p is None for p in (kp_s, kp_b, kp_bt, kp_gt)):
            ci["skipped"] += 1
            continue
        anim.config.mode = "relative"
        anim.set_source(ws_id[a : a + 1])
        anim.calibrate(kp_b)
        out_img = anim.step(kp_bt)
        ws_out = anim.last_ws.detach().cpu()
        id_pairs.append((anim.source_image, out_img))
        with torch.no_grad():
            id_driver_pairs.append((anim.source_image, to_uint8(g.synthesis(ws_id[b : b + 1].to(anim.device)))[0]))
        out = detect_img(out_img)
        anim.config.mode = "absolute"
        out_abs = detect_img(anim.step(kp_bt))
        if out is None or out_abs is None:
            ci["skipped"] += 1
            continue
        ci["nme"].append(nme(out, kp_gt))
        ci["nme_absolute"].append(nme(out_abs, kp_gt))
        ci["nme_no_motion"].append(nme(kp_s, kp_gt))
        ci["appearance_error"].append(appearance_error(g, ws_out, ws_id[a : a + 1]))
        ci["identity_error"].append(identity_error(g, ws_out, ws_id[a : a + 1]))
        ci["appearance_error_driver"].append(appearance_error(g, ws_id[b : b + 1], ws_id[a : a + 1]))
    results["self_driving"] = _summary(sd)
    results["cross_identity"] = _summary(ci)
    if dlib_available():
        results["cross_identity"]["identity_similarity"] = identity_similarity(id_pairs)
        results["cross_identity"]["identity_similarity_source_vs_driver"] = identity_similarity(id_driver_pairs)
    else:
        results["cross_identity"]["identity_similarity"] = None
        results["cross_identity"]["identity_similarity_note"] = "skipped: dlib / face_recognition_models not installed"

    anim.config.smoothing = smoothing  # One-Euro on the driver points for the sequence and real clips
    results["smoothing"] = smoothing
    if sequence:
        results["sequence"] = _sequence(anim, detect_ws, detect_img, show_progress, sequence_frames)
    if inversion:
        results["inversion"] = _inversion(
            anim, inversion, inversion_steps, seed, detect_img, show_progress, inversion_basis
        )
    for clip in real:
        results.setdefault("real", {})[Path(clip).name] = _real_clip(anim, clip, detect_img, show_progress)
    det.close()
    anim.close()
    return results


def _summary(d: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, list):
            out[k] = float(np.mean(v)) if v else None
            if k.startswith("nme") and v:
                out[k + "_median"] = float(np.median(v))
        else:
            out[k] = v
    n = [v for v in d.values() if isinstance(v, list)]
    out["n"] = len(n[0]) if n else 0
    return out


def _sequence(
    anim: Any, detect_ws: Any, detect_img: Any, show_progress: bool, max_frames: int | None = None
) -> dict[str, Any]:
    import numpy as np
    from safetensors.torch import load_file
    from tqdm import tqdm

    from engine.landmarks.geometry import jitter, nme
    from engine.media import read_frames
    from engine.resources import samples_dir

    s = samples_dir()
    gt = load_file(str(s / "driving_ws.safetensors"))
    ws_clip = gt["base"] + (gt["coeffs"] @ gt["basis"].flatten(1)).reshape(-1, *gt["base"].shape[1:])
    src_ws = load_file(str(s / "source_ws.safetensors"))["ws"]
    frames = read_frames(s / "driving.mp4", max_frames)
    anim.config.mode = "relative"
    anim.set_source(src_ws)
    outs, gts, errs, base_errs = [], [], [], []
    ref = None
    for t in tqdm(range(len(frames)), desc="eval sequence", disable=not show_progress):
        p = detect_img(frames[t])
        if ref is None:
            if p is None:
                continue
            ref = p
            anim.calibrate(ref)
        o = detect_img(anim.step(p))
        (q,) = detect_ws(src_ws + (ws_clip[t : t + 1] - ws_clip[0:1]))
        if o is None or q is None:
            continue
        outs.append(o)
        gts.append(q)
        errs.append(nme(o, q))
        base_errs.append(nme(anim.source_points, q))
    return {
        "frames": int(len(frames)),
        "n": len(errs),
        "nme": float(np.mean(errs)) if errs else None,
        "nme_no_motion": float(np.mean(base_errs)) if base_errs else None,
        "jitter": jitter(np.stack(outs)) if len(outs) >= 3 else None,
        "jitter_ground_truth": jitter(np.stack(gts)) if len(gts) >= 3 else None,
    }


def _inversion(
    anim: Any, n: int, steps: int, seed: int, detect_img: Any, show_progress: bool, basis: str = "pca"
) -> dict[str, Any]:
    import numpy as np
    import torch
    from tqdm import tqdm

    from engine.evaluation.faceworld import appearance_error, param_errors
    from engine.generators import require_ground_truth
    from engine.inversion import invert
    from engine.landmarks.geometry import nme
    from engine.media import to_uint8

    g = anim.generator
    truth = require_ground_truth(g, "the inversion check of d2a eval")
    gen = torch.Generator().manual_seed(HELD_OUT_SEED + 7 + seed)
    z = torch.randn(n, g.z_dim, generator=gen)
    with torch.no_grad():
        ws_all = g.mapping(z.to(anim.device), None, truncation_psi=EVAL_PSI).float()
    per, app, nmes, secs = [], [], [], []
    for i in tqdm(range(n), desc="eval inversion", disable=not show_progress):
        ws = ws_all[i : i + 1]
        with torch.no_grad():
            img = to_uint8(g.synthesis(ws, noise_mode="const"))[0]
        res = invert(g, img, steps=steps, basis=anim.directions if basis == "bank" else None)
        per.append(param_errors(g, res.ws, ws, truth.ACTION_PARAMS))
        app.append(appearance_error(g, res.ws, ws))
        p_t, p_o = detect_img(img), detect_img(res.image)
        if p_t is not None and p_o is not None:
            nmes.append(nme(p_o, p_t))
        secs.append(res.seconds)
    names = list(per[0])
    mean_per = {k: float(np.mean([p[k] for p in per])) for k in names}
    return {
        "n": n,
        "steps": steps,
        "basis": basis,
        "action_error_mean": float(np.mean([np.mean(list(p.values())) for p in per])),
        "pose_error_mean": float(np.mean([np.mean([p[k] for k in ("yaw", "pitch", "roll")]) for p in per])),
        "action_error_max": float(max(max(p.values()) for p in per)),
        "action_error_per_param": mean_per,
        "params_within_0.05": float(np.mean([[v <= 0.05 for v in p.values()] for p in per])),
        "appearance_error": float(np.mean(app)),
        "landmark_nme": float(np.mean(nmes)) if nmes else None,
        "landmark_nme_max": float(np.max(nmes)) if nmes else None,
        "seconds_per_image": float(np.mean(secs)),
    }


def _real_clip(anim: Any, clip: str, detect_img: Any, show_progress: bool) -> dict[str, Any]:
    import numpy as np
    from tqdm import tqdm

    from engine.animate.drive import driving_frames
    from engine.landmarks import create_detector
    from engine.landmarks.geometry import jitter, nme

    frames, _, count = driving_frames(clip)
    vdet = create_detector("mediapipe", video_mode=True)
    anim.config.mode = "relative"
    anim.reference_points = None
    anim.set_source(anim.source_ws)
    drv, out_pts, to_target, no_motion = [], [], [], []
    missing = 0
    try:
        for frame in tqdm(frames, total=count or None, desc=f"eval {Path(clip).name}", disable=not show_progress):
            d = vdet.detect(frame)
            if not d.found:
                missing += 1
                anim.step(None)
                continue
            p = np.asarray(d.points, np.float32)
            if anim.reference_points is None:
                anim.calibrate(p)
            target = anim.target_points(p)
            o = detect_img(anim.step(p))
            if o is None:
                missing += 1
                continue
            drv.append(p)
            out_pts.append(o)
            to_target.append(nme(o, target))
            no_motion.append(nme(anim.source_points, target))
    finally:
        vdet.close()
    mouth_d = [_mouth_open(p) for p in drv]
    mouth_o = [_mouth_open(p) for p in out_pts]
    corr = float(np.corrcoef(mouth_d, mouth_o)[0, 1]) if len(drv) > 2 and np.std(mouth_d) > 0 else None
    return {
        "frames": len(drv) + missing,
        "no_face_or_lost": missing,
        "nme_to_target": float(np.mean(to_target)) if to_target else None,
        "nme_no_motion": float(np.mean(no_motion)) if no_motion else None,
        "mouth_corr": corr,
        "jitter": jitter(np.stack(out_pts)) if len(out_pts) >= 3 else None,
        "driver_jitter": jitter(np.stack(drv)) if len(drv) >= 3 else None,
    }
