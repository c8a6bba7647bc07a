"""Inversion on a real FaceWorld render with real mediapipe (FaceWorld's decode is the ground truth)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def fw():
    from engine.generators import load_generator

    return load_generator("faceworld")


@pytest.fixture(scope="module")
def target(fw):
    from engine.media import to_uint8

    z = torch.randn(1, fw.z_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ws = fw.mapping(z, None, truncation_psi=0.7)
        return ws, to_uint8(fw.synthesis(ws))[0]


def test_inversion_converges_on_a_render(fw, target) -> None:
    from engine.evaluation.faceworld import param_error
    from engine.inversion import InversionConfig, invert

    ws_true, image = target
    calls: list[tuple[int, int, float]] = []
    cfg = InversionConfig(init_candidates=8, lm_gn_iters=3, lm_basis=12, landmark_every=10, gn_iters=4)
    res = invert(fw, image, steps=40, config=cfg, progress=lambda i, n, loss: calls.append((i, n, loss)))
    assert res.ws.shape == (1, fw.num_ws, fw.w_dim)
    assert res.image.shape == image.shape and res.image.dtype == np.uint8
    total = 40 + cfg.refine_rounds * cfg.gn_iters  # the optimisation steps, then each round's polish iterations
    assert [c[0] for c in calls[:40]] == list(range(1, 41)) and {c[1] for c in calls} == {total}
    assert calls[-1][0] == total and all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))
    assert sum(n.startswith("Gauss-Newton polish") for n in res.notes) == cfg.refine_rounds == 2
    assert res.losses[-1] < res.losses[0]
    # landmarks close to the target's, pose recovered much better than the average face
    assert res.landmark_nme is not None and res.landmark_nme < 0.05
    w_avg = fw.w_avg.expand(1, fw.num_ws, fw.w_dim)
    pose = ("yaw", "pitch", "roll")
    assert param_error(fw, res.ws, ws_true, pose) < 0.5 * param_error(fw, w_avg, ws_true, pose)
    assert param_error(fw, res.ws, ws_true, pose) < 0.08
    # pixels: far closer to the target than the average face
    err = np.abs(res.image.astype(int) - image).mean()
    with torch.no_grad():
        from engine.media import to_uint8

        avg = to_uint8(fw.synthesis(w_avg))[0]
    assert err < 0.5 * np.abs(avg.astype(int) - image).mean()


def test_inversion_cancel_and_bad_input(fw, target) -> None:
    from engine.inversion import InversionConfig, invert

    _, image = target
    stop = threading.Event()

    def progress(i: int, n: int, loss: float) -> None:
        if i == 3:
            stop.set()

    cfg = InversionConfig(init_candidates=0, lm_gn_iters=0)
    res = invert(fw, image, steps=50, config=cfg, landmarks=False, progress=progress, cancel=stop)
    assert res.cancelled and res.steps_run == 3 and len(res.losses) == 3
    with pytest.raises(ValueError, match="RGB uint8"):
        invert(fw, image.astype(np.float32), steps=1)
    # cancelled during the Gauss-Newton polish: reported as cancelled, progress never claims to be complete
    stop.clear()
    seen: list[tuple[int, int]] = []

    def progress_polish(i: int, n: int, loss: float) -> None:
        seen.append((i, n))
        if i == 5:
            stop.set()

    cfg = InversionConfig(init_candidates=0, lm_gn_iters=0, gn_iters=4, refine_rounds=2)
    res = invert(fw, image, steps=3, config=cfg, landmarks=False, progress=progress_polish, cancel=stop)
    assert res.cancelled and seen[-1] == (5, 3 + 2 * 4), seen


def test_pivotal_tuning_on_faceworld_is_a_clear_no_op(fw, target) -> None:
    from engine.inversion import InversionConfig, invert

    _, image = target
    cfg = InversionConfig(init_candidates=0, lm_gn_iters=0)
    res = invert(fw, image, steps=2, config=cfg, landmarks=False, pivotal_tuning=True)
    assert res.generator is None
    assert any("pivotal tuning skipped" in n for n in res.notes)


def _shift_scores(fw, ws: torch.Tensor, shifts: dict[str, float]) -> torch.Tensor:
    """Test-only ground truth: the minimal W+ change that moves the named latent scores by ``shifts`` (in standard
    deviations) and leaves every other FaceWorld parameter unchanged."""
    names = list(fw.PARAM_NAMES)
    proj = fw.proj.flatten(1).double() / fw.score_std.double()[:, None]  # [P, L*C]: score = proj @ (ws - w_avg)
    target = torch.zeros(len(names), dtype=torch.float64)
    for k, v in shifts.items():
        target[names.index(k)] = v
    delta = proj.T @ torch.linalg.solve(proj @ proj.T, target)
    return ws + delta.float().reshape(ws.shape)


def _points_and_target(fw, image: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """The target's mediapipe points and the image as the inversion's target tensor."""
    from engine.inversion.targets import prepare_target as _prepare_target
    from engine.landmarks import create_detector

    det = create_detector("mediapipe", video_mode=False)
    try:
        points = np.asarray(det.detect(image).points, np.float32)
    finally:
        det.close()
    return points, _prepare_target(image, fw.img_resolution, torch.device("cpu"))


def test_lbfgs_polish_brings_back_a_shifted_expression(fw, target) -> None:
    """From the right pose and identity but a wrong gaze, brow, smile and jaw, 30 L-BFGS evaluations on the pixel +
    region loss bring most of the expression back without disturbing the pose."""
    from engine.evaluation.faceworld import param_errors
    from engine.inversion import InversionConfig, invert

    ws_true, image = target
    moved = {"gaze_x": -1.2, "gaze_y": 1.0, "brow_raise": 1.0, "smile": 1.0, "jaw_open": 0.8}
    start = _shift_scores(fw, ws_true, moved)
    names = fw.ACTION_PARAMS
    before = param_errors(fw, start, ws_true, names)
    assert min(before[k] for k in moved) > 0.15  # the start is clearly wrong on every shifted parameter
    res = invert(fw, image, steps=30, init_ws=start,
                 config=InversionConfig(lm_gn_iters=0, lbfgs_fraction=1.0, gn_iters=0, region_search=0))
    after = param_errors(fw, res.ws, ws_true, names)
    assert np.mean(list(after.values())) < min(0.08, 0.5 * np.mean(list(before.values()))), after
    assert max(after[k] for k in ("yaw", "pitch", "roll")) < 0.02, after
    assert after["gaze_x"] < 0.1 and after["brow_raise"] < 0.1, after


def test_region_loss_weighs_the_eyes_like_the_whole_face(fw, target) -> None:
    """A one-iris gaze change barely moves the full-image pyramid loss but is a sizeable share of the region loss;
    a background change (outside every region box) hardly moves the region loss."""
    from engine.inversion import InversionConfig, RegionLoss, pyramid_loss
    from engine.landmarks import create_detector
    from engine.media import to_uint8

    ws_true, image = target
    cfg = InversionConfig()
    det = create_detector("mediapipe", video_mode=False)
    try:
        d = det.detect(image)
    finally:
        det.close()
    assert d.found
    with torch.no_grad():
        t = fw.synthesis(ws_true)
        region = RegionLoss(t, np.asarray(d.points, np.float32), cfg.region_blurs, cfg.region_pad)
        gaze = fw.synthesis(_shift_scores(fw, ws_true, {"gaze_x": 1.5}))
        back = fw.synthesis(_shift_scores(fw, ws_true, {"background": 1.5, "background_value": 1.5}))
        assert np.abs(to_uint8(back)[0].astype(int) - image).mean() > 5 * np.abs(to_uint8(gaze)[0].astype(int)
                                                                                  - image).mean()
        pyr = {k: float(pyramid_loss(v, t, cfg.scales, cfg.scale_weights)) for k, v in (("gaze", gaze), ("back", back))}
        reg = {k: float(region(v)) for k, v in (("gaze", gaze), ("back", back))}
    assert float(region(t)) == 0.0
    assert reg["gaze"] / pyr["gaze"] > 20 * reg["back"] / pyr["back"], (reg, pyr)


def test_region_search_opens_a_wrongly_closed_eye(fw, target) -> None:
    """The bistable-eyelid trap: from the true code with the right eye shut, gradient steps would stay there; the
    final region search (basis localised to each eye around this face; 3 sweeps for an eye this deeply shut) opens it
    and leaves the pose alone; without it the eye stays shut."""
    from engine.evaluation.faceworld import param_errors
    from engine.inversion import InversionConfig, invert

    ws_true, image = target
    shut = _shift_scores(fw, ws_true, {"blink_right": 1.5})
    names = ("blink_right", "blink_left", "yaw", "pitch", "roll")
    before = param_errors(fw, shut, ws_true, names)
    assert before["blink_right"] > 0.5  # the start has the eye (mostly) closed
    cfg = InversionConfig(lm_gn_iters=0, lm_basis=12, region_search=3, region_search_probes=16,
                          region_search_regions=("eye_right", "eye_left"))
    off = invert(fw, image, steps=0, init_ws=shut, config=InversionConfig(lm_gn_iters=0, region_search=0))
    assert param_errors(fw, off.ws, ws_true, names)["blink_right"] == pytest.approx(before["blink_right"])
    res = invert(fw, image, steps=0, init_ws=shut, config=cfg)
    after = param_errors(fw, res.ws, ws_true, names)
    assert after["blink_right"] < 0.15 and after["blink_left"] < 0.1, (before, after)
    assert max(after[k] for k in ("yaw", "pitch", "roll")) < 0.02, after
    assert any(n.startswith("region search:") for n in res.notes)


def test_gauss_newton_polish_finds_the_parameter_subspace_and_converges(fw, target) -> None:
    """From a wrong gaze, brow, smile and jaw, the Gauss-Newton polish finds on its own (random residual
    probes) a subspace of W+ about as large as FaceWorld's parameter count, and converges there to the true
    expression (mean error well below the L-BFGS test's tolerance), the pixel loss falling by orders of magnitude
    to the floor set by the target's 8-bit quantisation (where the weakest parameters, brows and vertical gaze,
    stay a few hundredths off)."""
    from engine.evaluation.faceworld import param_errors
    from engine.inversion import InversionConfig, RegionLoss, pyramid_loss
    from engine.inversion.polish import gauss_newton as _gauss_newton

    ws_true, image = target
    moved = {"gaze_x": -0.8, "gaze_y": 0.8, "brow_raise": 0.8, "smile": 0.8, "jaw_open": 0.6}
    start = _shift_scores(fw, ws_true, moved)
    points, t = _points_and_target(fw, image)
    cfg = InversionConfig(gn_probes=56)
    notes: list[str] = []
    ticks: list[tuple[int, float]] = []
    region = RegionLoss(t, points, cfg.region_blurs, cfg.region_pad)
    out, moved_flag = _gauss_newton(fw, start, t, points, region, cfg, notes, None,
                                    lambda i, loss: ticks.append((i, loss)))
    names = fw.ACTION_PARAMS
    before, after = param_errors(fw, start, ws_true, names), param_errors(fw, out, ws_true, names)
    assert min(before[k] for k in ("gaze_x", "gaze_y", "brow_raise", "smile", "jaw_open")) > 0.1, before
    assert moved_flag and ticks and ticks[0][0] == 1
    assert max(after[k] for k in moved) < 0.08 and np.mean(list(after.values())) < 0.02, after
    dims = int(notes[-1].split("in a ")[1].split("-dimensional")[0])
    assert 35 <= dims <= 50, notes  # FaceWorld renders 47 parameters (15 actions, 18 geometry, 14 appearance)
    with torch.no_grad():
        loss = [float(pyramid_loss(fw.synthesis(w), t, cfg.scales, cfg.scale_weights)) for w in (start, out)]
        floor = float(pyramid_loss(fw.synthesis(ws_true), t, cfg.scales, cfg.scale_weights))  # uint8 rounding
    assert loss[1] < 1e-2 * loss[0] and loss[1] < 10 * floor, (loss, floor)


def test_appearance_mix_jumps_out_of_a_wrong_colour_basin(fw, target) -> None:
    """The true face and pose but the appearance layers of w̄ (wrong background and shirt hues, which gradient
    steps cannot cross: a cyclic hue must pass through worse colours): style mixing with the start candidates
    picks appearance layers closer to the target's large colour areas and leaves the action layers untouched;
    from the true code itself no candidate is better, so nothing changes."""
    from engine.evaluation.faceworld import param_errors
    from engine.inversion import InversionConfig, pyramid_loss
    from engine.inversion.start import candidate_codes as _candidate_codes
    from engine.inversion.start import mix_appearance as _mix_appearance
    from engine.inversion.targets import prepare_target as _prepare_target

    ws_true, image = target
    cfg = InversionConfig()
    w_avg = fw.w_avg.float()
    wrong = ws_true.clone()
    wrong[:, cfg.lm_action_layers :] = w_avg
    t = _prepare_target(image, fw.img_resolution, torch.device("cpu"))
    cands = _candidate_codes(fw, cfg, w_avg)
    assert cands.shape == (cfg.init_candidates + 1, fw.num_ws, fw.w_dim)
    notes: list[str] = []
    out = _mix_appearance(fw, wrong, t, cands, cfg, notes)
    assert torch.equal(out[:, : cfg.lm_action_layers], wrong[:, : cfg.lm_action_layers])
    assert notes and notes[0].startswith("appearance layers from candidate")
    with torch.no_grad():
        loss = [float(pyramid_loss(fw.synthesis(w), t, cfg.scales, cfg.scale_weights)) for w in (wrong, out)]
    assert loss[1] < 0.6 * loss[0], loss
    colours = ("background", "shirt_color")  # the largest areas of one colour (measured: 0.45 -> 0.12)
    before, after = param_errors(fw, wrong, ws_true, colours), param_errors(fw, out, ws_true, colours)
    assert sum(after.values()) < 0.5 * sum(before.values()), (before, after)
    same = _mix_appearance(fw, ws_true, t, cands, cfg, notes := [])
    assert torch.equal(same, ws_true) and not notes


def test_gauss_newton_damping_floor_keeps_the_code_out_of_saturation(fw) -> None:
    """From a wrong pucker, smile, frown and brow (face seed 5), Marquardt's scale-invariant damping lets the polish
    take huge steps along directions the pixels hardly see: the code walks tens of standard deviations out
    (squashed parameters saturate) into a wrong pucker. With the damping floor (default) it stays in range and
    converges to the true expression."""
    from engine.evaluation.faceworld import param_errors
    from engine.inversion import InversionConfig, RegionLoss
    from engine.inversion.polish import gauss_newton as _gauss_newton
    from engine.media import to_uint8

    z = torch.randn(1, fw.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ws_true = fw.mapping(z, None, truncation_psi=0.7)
        image = to_uint8(fw.synthesis(ws_true))[0]
    points, t = _points_and_target(fw, image)
    start = _shift_scores(fw, ws_true, {"pucker": 1.5, "smile": 0.8, "frown": 1.0, "brow_raise": 0.8})
    out = {}
    for floor in (0.0, InversionConfig().gn_damping_floor):
        cfg = InversionConfig(gn_probes=56, gn_damping_floor=floor)
        region = RegionLoss(t, points, cfg.region_blurs, cfg.region_pad)
        ws, _ = _gauss_newton(fw, start, t, points, region, cfg, [], None, lambda i, loss: None)
        out[floor] = (float(fw.scores(ws).abs().max()), max(param_errors(fw, ws, ws_true, fw.ACTION_PARAMS).values()))
    undamped, damped = out[0.0], out[InversionConfig().gn_damping_floor]
    assert undamped[0] > 20 and undamped[1] > 0.3, out  # measured: |score| 83, pucker off by 0.76
    assert damped[0] < 5 and damped[1] < 0.1, out  # measured: 2.2 and 0.038
