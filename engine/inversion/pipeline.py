"""``invert``: a portrait -> its W+ code ŵ, as the list of its phases (each in its own module of this package)."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from engine.inversion.config import InversionConfig, InversionResult
from engine.inversion.context import Progress, Run
from engine.inversion.landmarks import final_code, fit_landmarks, landmark_basis
from engine.inversion.optimise import optimise
from engine.inversion.pivotal import pivotal_tuning as tune_pivotally
from engine.inversion.polish import refine, refine_plan
from engine.inversion.start import candidate_codes, choose_start, mix_appearance, start_code
from engine.inversion.targets import RegionLoss, pixel_residuals, prepare_target
from engine.media import to_uint8

if TYPE_CHECKING:  # pragma: no cover
    import torch


def invert(
    generator: torch.nn.Module,
    image_uint8: np.ndarray,
    steps: int = 300,
    *,
    landmarks: bool = True,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    pivotal_tuning: bool = False,
    config: InversionConfig | None = None,
    init_ws: torch.Tensor | None = None,
    basis: torch.Tensor | None = None,
) -> InversionResult:
    """Invert an RGB uint8 portrait [H, W, 3] into W+ [1, num_ws, w_dim] of ``generator``.

    ``progress(step, total, loss)`` is called every step (``total`` = ``steps`` plus the Gauss-Newton polish's
    iterations); setting ``cancel`` stops at the next step and returns the best code so far
    (``result.cancelled``). A non-square image is centre-cropped, then resized to the generator's resolution.
    ``config``: default ``InversionConfig.preset("faceworld")``. ``init_ws`` overrides the start; ``basis``
    [n, num_ws, w_dim] (e.g. a bundle's direction bank) is the subspace of the landmark fit and the region search
    (default: principal axes of w). ``pivotal_tuning``: also return a generator tuned around the code.
    """
    import torch

    cfg = config or InversionConfig()
    if steps < 0:
        raise ValueError("steps must be >= 0")
    if len(cfg.scales) != len(cfg.scale_weights):
        raise ValueError("InversionConfig.scales and scale_weights differ in length")
    t_start = time.perf_counter()
    device = next((b.device for b in generator.buffers()), torch.device("cpu"))
    target = prepare_target(image_uint8, int(generator.img_resolution), device)
    if cfg.restarts > 1 and init_ws is None and cfg.init_candidates > 0 and landmarks:
        return _invert_restarts(generator, image_uint8, target, steps, progress, cancel, pivotal_tuning, cfg, basis)
    rounds, polish = refine_plan(cfg, steps)
    run = Run.open(generator, cfg, target, steps + rounds * polish, landmarks, progress, cancel)
    try:
        cands = candidate_codes(generator, cfg, run.w_avg) if init_ws is None and cfg.init_candidates > 0 else None
        ws = start_code(run, init_ws, cands)
        basis = landmark_basis(run, basis)
        ws, proxy = fit_landmarks(run, ws, basis)
        if cfg.appearance_mix and cands is not None:
            ws = mix_appearance(generator, ws, target, cands, cfg, run.notes)
        ws, step = optimise(run, ws, steps, proxy)
        ws, moved = refine(run, ws, basis, steps)
        ws, landmark_nme = final_code(run, ws, step, moved)
    finally:
        run.close()
    tuned = None
    if pivotal_tuning and not run.halted:
        tuned = tune_pivotally(generator, ws, target, cfg, run.notes, progress, cancel)
    with torch.no_grad():
        image = to_uint8((tuned if tuned is not None else generator).synthesis(ws, noise_mode="const"))[0]
    return InversionResult(
        ws=ws, image=image, losses=run.losses, steps_run=step, cancelled=run.halted, landmark_nme=landmark_nme,
        nme_history=run.nme_history, generator=tuned, seconds=time.perf_counter() - t_start, notes=run.notes,
    )


def _invert_restarts(
    generator: torch.nn.Module,
    image_uint8: np.ndarray,
    target: torch.Tensor,
    steps: int,
    progress: Progress | None,
    cancel: threading.Event | None,
    pivotal_tuning: bool,
    cfg: InversionConfig,
    basis: torch.Tensor | None,
) -> InversionResult:
    """``cfg.restarts`` full inversions from the best start candidates; keeps the one whose rendering has the lowest
    pixel-pyramid + region loss (the data terms only). ``progress`` counts over all runs."""
    import torch

    from engine.landmarks import create_detector

    t_start = time.perf_counter()
    notes: list[str] = []
    w_avg = generator.w_avg.detach().float()
    detector = create_detector("mediapipe", video_mode=False)
    try:
        d = detector.detect(to_uint8(target)[0])
        points = np.asarray(d.points, np.float32) if d.found else None
        starts = choose_start(generator, target, points, detector, cfg, candidate_codes(generator, cfg, w_avg), notes,
                              k=cfg.restarts)
    finally:
        detector.close()
    region = RegionLoss(target, points, cfg.region_blurs, cfg.region_pad) if points is not None else None
    sub_cfg = dataclasses.replace(cfg, restarts=1)
    best: tuple[float, InversionResult, int] | None = None
    runs = 0
    for i in range(len(starts)):
        def sub_progress(s: int, n: int, loss: float, run: int = i) -> None:
            if progress is not None:
                progress(run * n + s, n * len(starts), loss)

        r = invert(generator, image_uint8, steps, progress=sub_progress, cancel=cancel, config=sub_cfg,
                   init_ws=starts[i : i + 1], basis=basis)
        runs += r.steps_run
        with torch.no_grad():
            img = generator.synthesis(r.ws, noise_mode="const")
            score = float(pixel_residuals(img, target, region, cfg).pow(2).sum())
        notes.append(f"run {i + 1}/{len(starts)}: data loss {score:.5f}, landmark NME {r.landmark_nme}")
        if best is None or score < best[0]:
            best = (score, r, i + 1)
        if r.cancelled:
            break
    if best is None:
        raise RuntimeError("no inversion run")  # unreachable: there is always at least one start
    res = best[1]
    notes.append(f"kept run {best[2]}")
    tuned = None
    if pivotal_tuning and not res.cancelled:
        tuned = tune_pivotally(generator, res.ws, target, cfg, notes, progress, cancel)
        if tuned is not None:
            with torch.no_grad():
                res.image = to_uint8(tuned.synthesis(res.ws, noise_mode="const"))[0]
    res.generator = tuned
    res.notes = notes + res.notes
    res.steps_run = runs
    res.seconds = time.perf_counter() - t_start
    return res
