"""GAN inversion: a portrait -> a W+ code ŵ of the generator (and optionally a generator tuned around it).

    res = invert(generator, image_uint8, steps=300)      # InversionResult(ws [1, num_ws, w_dim], image, losses, ...)

Method (numbers and choices measured in ``docs/RESULTS.md``):

* **Pixel loss on a pyramid**: mean squared error between the rendering and the target at full resolution and at
  2x, 4x, 8x, 16x average-pooled resolutions (weights ``InversionConfig.scale_weights``). The coarse levels
  give the optimiser a wide basin for head pose and face shape, the fine levels the details.
* **Regularisation** toward w̄: ``w_reg * mean((ws - w̄)^2)`` keeps the code in the well-behaved region of W+, and
  ``layer_reg * mean((ws_l - mean_l ws_l)^2)`` keeps the 14 layer codes close to one another.
* **Start**: the best of w̄ and ``init_candidates`` random codes by landmark NME + coarse pixel loss.
* **Landmarks** (``landmarks=True``): mediapipe is not differentiable, so it is treated as a black box and
  linearised in a small subspace B of W+ (the bundle's direction bank when given, else the top principal axes of
  w on the action layers): the Jacobian J of the face points with respect to the coefficients along B is
  measured by finite differences (one batched render + detection per direction). A few Levenberg-Marquardt
  steps on the landmark error then fix the head pose, which pixel losses alone get stuck on (measured:
  RESULTS.md). During the pixel optimisation the linearised model ``p(ws) ≈ p_a + J B⁺(ws − ws_a)`` is a
  differentiable landmark term; its anchor (ws_a, p_a) is re-detected every ``landmark_every`` steps.
  The fit uses the jaw line, nose, mouth and iris points (``lm_fit_points="pose_iris"``) but not the eyelids and
  brows: on FaceWorld renders mediapipe's lid/brow points are biased (fitting them closed open eyes and flipped
  the vertical gaze), and the region loss below recovers those features from the pixels instead.
* **Appearance by style mixing** (``appearance_mix``, after the landmark fit): the fitted action layers are
  combined with the appearance layers (>= ``lm_action_layers``) of each start candidate and the lowest pixel
  loss is kept. A colour whose right value lies beyond worse ones (FaceWorld's cyclic background and shirt hues)
  is a basin gradient steps never leave; before, a wrong shirt or background dragged the expression fit off
  (RESULTS.md, session 5).
* **Region loss** (``region_weight``): the expressive features are small (an eye is ~10 px wide at 256²) and
  hardly count in a full-image MSE. ``RegionLoss`` adds a pixel loss on boxes around the target's detected eyes
  (with irises), brows and mouth (boxes fixed for the whole run, each region weighted equally whatever its area),
  at several Gaussian blur levels (``region_blurs``) so that an iris or lid that is off by more than its size
  still gets a gradient.
* **L-BFGS polish** (``lbfgs_fraction`` of the steps, after Adam): Adam's per-coordinate steps in W+ move the
  parameters with weak gradients (gaze, brows) slowly and keep jittering; on this smooth, noise-free objective
  L-BFGS (strong Wolfe line search; restarted every ``lbfgs_segment`` evaluations with the landmark term
  re-linearised at the current code) converges much further in the same number of renders.
  The returned code is the last one (``select_by_landmarks=True`` restores the older rule: action layers from the
  checkpoint with the best landmark NME, which undid the pixel phase's expression gains).
* **Region search** (``region_search`` sweeps, last): an eyelid is bistable for gradient steps (once shut it stays
  shut: with 2 threads 2 of the eval's 3 renders ended with a closed eye). The landmark-fit basis is localised to
  each eye, the brows and the mouth around the current code (``engine.latent.locality``: ridge against the
  Jacobian of the pixels outside the region's boxes) and a coordinate line search along those directions keeps any
  step that lowers the data loss (numbers: RESULTS.md, "Inversion: a localised line search"). The same escapes a
  saturated frown or pucker (a squashed "on" that gradient steps cannot turn off).
* **Gauss-Newton polish** (``gn_iters``, after the search): Levenberg-Marquardt on the pixel residuals (pyramid +
  region loss) in the dominant row space of their Jacobian, found by random residual probes (FaceWorld: a
  44-47-dimensional subspace, its parameter count). On a noise-free target it converges to the 8-bit
  quantisation floor where first-order steps crawl (RESULTS.md, session 4). Search and polish run
  ``refine_rounds`` times (default 2): once the polish has re-fitted the face, a second search finds steps the first
  could not take (measured: RESULTS.md, session 5).
* **No perceptual loss**: LPIPS/VGG weights are not available offline in this environment (no torchvision, no
  cached weights), so none is used.
* **Pivotal tuning** (``pivotal_tuning=True``, after PTI): fine-tune a copy of the generator for
  ``InversionConfig.pti_steps`` steps with ŵ fixed so that G'(ŵ) reproduces the portrait closely; the copy is
  returned as ``result.generator``. FaceWorld has no trainable weights that carry identity, so there it is a no-op
  that says so in ``result.notes``.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass
class InversionConfig:
    """Settings of ``invert`` (defaults chosen by measurement on FaceWorld renders)."""

    lr: float = 0.02  # Adam learning rate (cosine decay to 5 % over the run, 5 % warm-up)
    scales: tuple[int, ...] = (1, 2, 4, 8, 16)  # average-pooling factors of the pixel pyramid
    scale_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)  # weight of each pyramid level
    w_reg: float = 1e-3  # pull toward w̄
    layer_reg: float = 1e-3  # pull the per-layer codes toward their mean
    landmark_every: int = 25  # re-detect landmarks on the rendering every K steps (landmarks=True)
    early_stop_nme: float = 0.0  # stop once the NME is below this at two consecutive checks (0 = never)
    pti_steps: int = 100  # pivotal tuning steps
    pti_lr: float = 3e-4  # pivotal tuning learning rate
    init_candidates: int = 64  # random codes (z ~ N(0, I), psi below) scored to choose the start; 0 = start at w̄
    init_psi: float = 0.7  # truncation of the candidate codes
    init_batch: int = 16  # candidates rendered per batch
    appearance_mix: bool = True  # after the landmark fit, try each candidate's appearance layers (style mixing)
    seed: int = 0  # seed of the candidate codes (the whole inversion is deterministic for a seed)
    lm_basis: int = 24  # landmark fit subspace without a bank: top principal axes of w on the action layers
    lm_action_layers: int = 8  # layers the landmark subspace acts on
    lm_gn_iters: int = 4  # Gauss-Newton (Levenberg-Marquardt) iterations of the landmark fit before the pixels
    lm_fd_step: float = 0.5  # finite-difference step along each basis direction (in units of the direction)
    lm_weight: float = 300.0  # weight of the linearised landmark term during the pixel optimisation
    appearance_first: float = 0.3  # fraction of the steps that optimise only the layers >= lm_action_layers first
    region_weight: float = 1.0  # weight of the region pixel loss (eyes, brows, mouth located on the target; 0 = off)
    region_blurs: tuple[float, ...] = (0.0, 2.0, 4.0)  # Gaussian blur sigmas (pixels at 256^2) of the region loss
    region_pad: float = 0.25  # margin around each region's landmarks (fraction of the inter-ocular distance)
    lm_fit_points: str = "pose_iris"  # points of the landmark fit/term: "all" 78 | "pose" (no eyes/brows) | "pose_iris"
    lbfgs_fraction: float = 0.6  # fraction of the steps run as a final L-BFGS polish
    lbfgs_segment: int = 25  # L-BFGS evaluations between re-linearisations of the landmark term
    restarts: int = 1  # full runs from the best `restarts` start candidates; the lowest pixel+region loss wins
    select_by_landmarks: bool = False  # take the action layers from the best-NME checkpoint when clearly better
    region_search: int = 1  # sweeps of the final localised line search (0 = off; a deeply shut eye needs 2-3)
    region_search_regions: tuple[str, ...] = ("eye_right", "eye_left", "brows", "mouth")  # engine.latent.locality
    #   regions; the brows and mouth pay off with the Gauss-Newton polish after them (a saturated frown or pucker is
    #   switched off by a localised step, then re-fitted; RESULTS.md, session 4)
    region_search_probes: int = 32  # pixel probes of each region's out-of-region Jacobian
    region_search_grid: tuple[float, ...] = (-2.0, -1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 2.0)  # steps along a direction
    gn_iters: int = 10  # last: Gauss-Newton (Levenberg-Marquardt) iterations on the pixel residuals (0 = off)
    gn_probes: int = 64  # random residual probes that span the Jacobian's dominant row space (its subspace of W+)
    gn_rank_tol: float = 1e-5  # keep the subspace directions with a singular value above this share of the largest
    gn_fd_step: float = 0.02  # finite-difference step along each subspace direction (W+ units)
    refine_rounds: int = 2  # rounds of (region search, Gauss-Newton polish): a second round frees what the first
    #                         polish re-fitted around (action error 0.013 -> 0.007 on 9 images; RESULTS.md, session 5)
    gn_damping_floor: float = 1e-3  # Marquardt damping uses max(diag(JᵀJ), this x its largest entry)
    gn_resolution: int = 256  # residuals on renders average-pooled to at most this size (J is [directions, pixels])


@dataclass
class InversionResult:
    """What ``invert`` returns. ``ws`` [1, num_ws, w_dim]; ``image`` uint8 [H, W, 3] = G(ws) (or G'(ws));
    ``losses``: the pixel-pyramid loss per step (reported to ``progress`` too)."""

    ws: torch.Tensor
    image: np.ndarray
    losses: list[float]
    steps_run: int = 0
    cancelled: bool = False
    landmark_nme: float | None = None  # NME of the rendering's landmarks vs the target's (None: not measured)
    nme_history: list[tuple[int, float]] = field(default_factory=list)
    generator: Any = None  # the pivotally tuned copy (None without pivotal tuning)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _prepare_target(image: np.ndarray, resolution: int, device: Any) -> torch.Tensor:
    import torch
    import torch.nn.functional as F

    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        kind = getattr(image, "dtype", type(image))
        raise ValueError(f"invert needs an RGB uint8 image [H, W, 3], got {kind} {shape}")
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    h, w = x.shape[-2:]
    if h != w:  # centre crop to a square
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        x = x[..., top : top + s, left : left + s]
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
    return x


def pyramid_loss(img: torch.Tensor, target: torch.Tensor, scales: tuple[int, ...], weights: tuple[float, ...]):
    """Sum over pyramid levels of the MSE between average-pooled images [N, 3, H, W]."""
    return pyramid_residuals(img, target, scales, weights).pow(2).sum(1).mean()


def pyramid_residuals(img: torch.Tensor, target: torch.Tensor, scales: tuple[int, ...],
                      weights: tuple[float, ...]) -> torch.Tensor:
    """The pyramid loss as a residual vector per image: [N, R] whose squared norm is that image's pyramid loss."""
    import torch
    import torch.nn.functional as F

    parts = []
    for s, w in zip(scales, weights):
        a, b = (img, target) if s == 1 else (F.avg_pool2d(img, s), F.avg_pool2d(target, s))
        d = (a - b).flatten(1)
        parts.append(d * (w / d.shape[1]) ** 0.5)
    return torch.cat(parts, 1)


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of images [N, C, H, W] (std ``sigma`` pixels, reflect padding); sigma <= 0: identity."""
    import torch
    import torch.nn.functional as F

    if sigma <= 0:
        return img
    r = max(1, int(np.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=img.dtype, device=img.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = img.shape[1]
    out = F.pad(img, (r, r, r, r), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _region_indices() -> dict[str, np.ndarray]:
    """Indices into the 478-point mesh of the small expressive regions (eyes with irises, brows, mouth)."""
    from engine.landmarks import schema

    ib = np.asarray(schema.IBUG68)
    return {
        "right_eye": np.concatenate([ib[36:42], schema.RIGHT_IRIS]),
        "left_eye": np.concatenate([ib[42:48], schema.LEFT_IRIS]),
        "right_brow": ib[17:22],
        "left_brow": ib[22:27],
        "mouth": ib[48:68],
    }


class RegionLoss:
    """Pixel loss concentrated on the target's eyes, brows and mouth, at several blur levels.

    The regions are boxes around the target's detected landmarks (fixed during the optimisation), widened by
    ``pad`` inter-ocular distances plus 1.5 blur sigmas; every region weighs the same whatever its area, so a
    10-pixel eye counts as much as the mouth. Blurring both images widens the basin: an iris that is off by more
    than its radius still overlaps its blurred target. ``loss(img)``: img [1, 3, H, W] -> scalar (mean over regions
    and blur levels of the region-weighted mean squared error).
    """

    def __init__(self, target: torch.Tensor, points_478: np.ndarray, blurs: tuple[float, ...], pad: float) -> None:
        import torch

        from engine.metrics import interocular

        res = target.shape[-1]
        pts = np.asarray(points_478, np.float64)
        iod = max(interocular(pts), 1.0)
        yy, xx = torch.meshgrid(torch.arange(res, dtype=torch.float32) + 0.5,
                                torch.arange(res, dtype=torch.float32) + 0.5, indexing="ij")
        self.levels: list[tuple[float, torch.Tensor, torch.Tensor]] = []  # (sigma px, weight map, blurred target)
        for b in blurs:
            sigma = float(b) * res / 256.0
            m = pad * iod + 1.5 * sigma
            total = torch.zeros(res, res)
            regions = _region_indices()
            for idx in regions.values():
                q = pts[idx]
                x0, y0 = q.min(0) - m
                x1, y1 = q.max(0) + m
                box = (torch.sigmoid(xx - float(x0)) * torch.sigmoid(float(x1) - xx)
                       * torch.sigmoid(yy - float(y0)) * torch.sigmoid(float(y1) - yy))
                total = total + box / box.sum().clamp(min=1e-6)
            wmap = (total / len(regions)).to(target.device)[None, None]
            self.levels.append((sigma, wmap, gaussian_blur(target, sigma).detach()))

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return self.residuals(img).pow(2).sum(1).mean()

    def residuals(self, img: torch.Tensor) -> torch.Tensor:
        """The loss as a residual vector per image: [N, R] whose squared norm is that image's region loss."""
        import torch

        n = max(1, len(self.levels))
        return torch.cat([((gaussian_blur(img, sigma) - tb) * (wmap / (img.shape[1] * n)).sqrt()).flatten(1)
                          for sigma, wmap, tb in self.levels], 1)


def invert(
    generator: torch.nn.Module,
    image_uint8: np.ndarray,
    steps: int = 300,
    *,
    landmarks: bool = True,
    progress: Callable[[int, int, float], None] | None = None,
    cancel: threading.Event | None = None,
    pivotal_tuning: bool = False,
    config: InversionConfig | None = None,
    init_ws: torch.Tensor | None = None,
    basis: torch.Tensor | None = None,
) -> InversionResult:
    """Invert an RGB uint8 portrait [H, W, 3] into W+ [1, num_ws, w_dim] of ``generator``.

    ``progress(step, total, loss)`` is called every step (``total`` = ``steps`` plus the Gauss-Newton polish's
    iterations); setting ``cancel`` stops at the next step and returns the
    best code so far (``result.cancelled``). A non-square image is centre-cropped, then resized to the generator's
    resolution. ``init_ws`` overrides the start; ``basis`` [n, num_ws, w_dim] (e.g. a bundle's direction bank) is
    the subspace of the landmark fit (default: principal axes of w).
    """
    import torch

    from engine.metrics import nme

    cfg = config or InversionConfig()
    if steps < 0:
        raise ValueError("steps must be >= 0")
    if len(cfg.scales) != len(cfg.scale_weights):
        raise ValueError("InversionConfig.scales and scale_weights differ in length")
    t_start = time.perf_counter()
    device = next((b.device for b in generator.buffers()), torch.device("cpu"))
    res = int(generator.img_resolution)
    target = _prepare_target(image_uint8, res, device)
    if cfg.restarts > 1 and init_ws is None and cfg.init_candidates > 0 and landmarks:
        return _invert_restarts(generator, image_uint8, target, steps, progress, cancel, pivotal_tuning, cfg, basis)
    w_avg = generator.w_avg.detach().to(device).float()
    for p in generator.parameters():
        p.requires_grad_(False)

    detector = None
    target_points = None
    notes: list[str] = []
    if landmarks:
        from engine.landmarks import create_detector

        detector = create_detector("mediapipe", video_mode=False)
        d = detector.detect(_to_uint8(target))
        if d.found:
            target_points = np.asarray(d.points, np.float32)
        else:
            notes.append("no face detected on the target: landmark selection disabled")
    region = None
    if target_points is not None and cfg.region_weight > 0:
        region = RegionLoss(target, target_points, cfg.region_blurs, cfg.region_pad)
    cands = _candidate_codes(generator, cfg, w_avg) if init_ws is None and cfg.init_candidates > 0 else None
    if init_ws is not None:
        ws0 = init_ws.detach().to(device).float().reshape(1, generator.num_ws, generator.w_dim)
    elif cands is not None:
        ws0 = _choose_start(generator, target, target_points, detector, cfg, cands, notes)
    else:
        ws0 = w_avg[None, None].expand(1, generator.num_ws, generator.w_dim)
    proxy = None
    basis_t = basis
    if basis_t is None and target_points is not None and (cfg.lm_gn_iters > 0 or cfg.region_search > 0):
        basis_t = pca_basis(generator, cfg.lm_basis, cfg.lm_action_layers, cfg.seed)
    if target_points is not None and cfg.lm_gn_iters > 0:
        proxy = LandmarkProxy(generator, detector, basis_t, target_points, cfg.lm_fd_step, cfg.lm_fit_points)
        ws0 = proxy.fit(ws0, cfg.lm_gn_iters, notes, cancel)
    if cfg.appearance_mix and cands is not None:
        ws0 = _mix_appearance(generator, ws0, target, cands, cfg, notes)
    ws = ws0.clone().requires_grad_(True)
    n_lbfgs = int(round(cfg.lbfgs_fraction * steps))
    polish = max(0, cfg.gn_iters) if steps > 0 else 0  # steps=0 returns the start: no polish either
    rounds = max(1, cfg.refine_rounds) if polish > 0 else 1
    total = steps + rounds * polish  # progress units: optimisation steps, then every round's polish iterations
    n_adam = steps - n_lbfgs
    opt = torch.optim.Adam([ws], lr=cfg.lr, betas=(0.9, 0.999))
    n_app = int(cfg.appearance_first * n_adam) if proxy is not None else 0

    def objective(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(total loss, pixel-pyramid data term) of the code x [1, num_ws, w_dim]."""
        img = generator.synthesis(x, noise_mode="const")
        loss, pix = _data_loss(img, x, target, region, cfg, w_avg)
        if proxy is not None and proxy.ready:
            loss = loss + cfg.lm_weight * proxy.loss(x)
        return loss, pix

    losses: list[float] = []
    nme_hist: list[tuple[int, float]] = []
    best: tuple[float, float, torch.Tensor] | None = None  # (nme, loss, ws)
    cancelled = stopped = False
    below = 0
    step = 0
    if target_points is not None and proxy is not None:
        # the landmark fit's own result is a candidate too: the first pixel steps can undo part of it
        img0, d0 = _render_and_detect(generator, ws0, detector)
        if d0.found:
            pix0 = float(pyramid_loss(img0, target, cfg.scales, cfg.scale_weights))
            e0 = nme(np.asarray(d0.points, np.float32), target_points)
            nme_hist.append((0, e0))
            best = (e0, pix0, ws0.detach().clone())
    try:
        for step in range(1, n_adam + 1):
            if cancel is not None and cancel.is_set():
                cancelled = True
                step -= 1
                break
            lr = _lr_at(step, n_adam, cfg.lr)
            for group in opt.param_groups:
                group["lr"] = lr
            loss, pix = objective(ws)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if step <= n_app:  # first: colour/texture layers only, keeping the landmark fit of the action layers
                ws.grad[:, : cfg.lm_action_layers] = 0
            opt.step()
            lv = float(pix.detach())  # the data term (the landmark term's anchor moves, so it is left out)
            losses.append(lv)
            if progress is not None:
                progress(step, total, lv)
            if target_points is not None and (step % cfg.landmark_every == 0 or step == steps):
                _, d = _render_and_detect(generator, ws, detector)
                if d.found:
                    if proxy is not None:
                        proxy.anchor(ws.detach(), np.asarray(d.points, np.float32))
                    e = nme(np.asarray(d.points, np.float32), target_points)
                    nme_hist.append((step, e))
                    if best is None or (e, lv) < (best[0], best[1]):
                        best = (e, lv, ws.detach().clone())
                    below = below + 1 if e < cfg.early_stop_nme else 0
                    if below >= 2:
                        notes.append(f"early stop at step {step}: NME {e:.4f} < {cfg.early_stop_nme}")
                        stopped = True
                        break
        seg = max(1, cfg.lbfgs_segment)
        while n_lbfgs > 0 and step < steps and not (cancelled or stopped):
            # L-BFGS in segments; between them the landmark term is re-linearised at the current code
            end = min(steps, step + seg)
            ws_before = ws.detach().clone()
            nme_before = nme_hist[-1][1] if nme_hist else None
            step, cancelled = _lbfgs_phase(ws, objective, step, end, total, losses, progress, cancel)
            if target_points is not None and not cancelled:
                _, d = _render_and_detect(generator, ws, detector)
                e = nme(np.asarray(d.points, np.float32), target_points) if d.found else float("inf")
                if nme_before is not None and e > max(1.5 * nme_before, nme_before + 0.02):
                    # a quasi-Newton step ran off (e.g. along a direction where the linearised landmark term is
                    # wrong): keep the code from before the segment and stop polishing
                    with torch.no_grad():
                        ws.copy_(ws_before)
                    notes.append(f"L-BFGS segment rejected at step {step}: NME {nme_before:.4f} -> {e:.4f}")
                    nme_hist.append((step, nme_before))
                    break
                if d.found:
                    if proxy is not None:
                        proxy.anchor(ws.detach(), np.asarray(d.points, np.float32))
                    nme_hist.append((step, e))
            if step < end:  # converged inside the segment
                break
        if n_lbfgs > 0:
            notes.append(f"L-BFGS polish: {step - n_adam} evaluations in segments of {seg}")
        if n_lbfgs > 0 and step < steps and not cancelled and progress is not None and losses:
            progress(steps, total, losses[-1])  # converged before spending the budget
        final_ws = ws.detach().clone()
        moved = False
        polish_loss = [losses[-1] if losses else 0.0]
        for rnd in range(rounds):
            if cancelled or (cancel is not None and cancel.is_set()):
                break
            if cfg.region_search > 0 and target_points is not None:
                final_ws, searched = _region_search(generator, final_ws, target, target_points, region, basis_t,
                                                    cfg, w_avg, notes, cancel)
                moved = moved or searched
            if polish > 0:

                def tick(i: int, loss: float, done: int = steps + rnd * polish) -> None:
                    polish_loss[0] = loss
                    if progress is not None:
                        progress(done + i, total, loss)

                final_ws, polished = _gauss_newton(generator, final_ws, target, target_points, region, cfg, notes,
                                                   cancel, tick)
                moved = moved or polished
        cancelled = cancelled or (cancel is not None and cancel.is_set())  # also when set during a search or polish
        if polish > 0 and not cancelled and progress is not None:
            progress(total, total, polish_loss[0])  # a polish may stop before its last iteration
        landmark_nme = None
        if best is not None and not cfg.select_by_landmarks:
            last_nme = nme_hist[-1][1] if nme_hist and nme_hist[-1][0] == step and not moved else None
            if last_nme is None:
                _, d = _render_and_detect(generator, final_ws, detector)
                last_nme = nme(np.asarray(d.points, np.float32), target_points) if d.found else None
            landmark_nme = last_nme
        elif best is not None:
            # keep the last code unless an earlier checkpoint had clearly better landmarks (by > 0.002 NME)
            last_nme = nme_hist[-1][1] if nme_hist else None
            if last_nme is not None and nme_hist[-1][0] == step and best[0] < last_nme - 0.002:
                # pose/expression (action layers) from the best-landmark checkpoint, colour/texture from the last code
                n_act = cfg.lm_action_layers
                final_ws = torch.cat([best[2][:, :n_act], final_ws[:, n_act:]], dim=1)
                _, d = _render_and_detect(generator, final_ws, detector)
                landmark_nme = nme(np.asarray(d.points, np.float32), target_points) if d.found else float("inf")
                notes.append(
                    f"action layers from the checkpoint with the best landmark NME ({best[0]:.4f} vs last "
                    f"{last_nme:.4f}); combined code NME {landmark_nme:.4f}"
                )
            else:
                landmark_nme = last_nme if last_nme is not None else best[0]
    finally:
        if detector is not None:
            detector.close()
    tuned = None
    if pivotal_tuning and not cancelled:
        tuned = _pivotal_tuning(generator, final_ws, target, cfg, notes, progress, cancel)
    g_out = tuned if tuned is not None else generator
    with torch.no_grad():
        image = _to_uint8(g_out.synthesis(final_ws, noise_mode="const"))
    return InversionResult(
        ws=final_ws,
        image=image,
        losses=losses,
        steps_run=step,
        cancelled=cancelled,
        landmark_nme=landmark_nme,
        nme_history=nme_hist,
        generator=tuned,
        seconds=time.perf_counter() - t_start,
        notes=notes,
    )


def _data_loss(
    img: torch.Tensor, x: torch.Tensor, target: torch.Tensor, region: RegionLoss | None, cfg: InversionConfig,
    w_avg: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixel pyramid + regularisers + region loss, pixel pyramid) of one rendering img [1, 3, H, W] of x."""
    pix = pyramid_loss(img, target, cfg.scales, cfg.scale_weights)
    loss = pix + cfg.w_reg * (x - w_avg).pow(2).mean()
    loss = loss + cfg.layer_reg * (x - x.mean(1, keepdim=True)).pow(2).mean()
    if region is not None:
        loss = loss + cfg.region_weight * region(img)
    return loss, pix


def _pixel_residuals(img: torch.Tensor, target: torch.Tensor, region: RegionLoss | None,
                     cfg: InversionConfig) -> torch.Tensor:
    """The data terms without the regularisers (pixel pyramid + weighted region loss) as residuals [N, R]."""
    import torch

    r = pyramid_residuals(img, target, cfg.scales, cfg.scale_weights)
    if region is None:
        return r
    return torch.cat([r, region.residuals(img) * cfg.region_weight**0.5], 1)


def _region_search(
    generator: Any, ws: Any, target: Any, target_points: np.ndarray, region: RegionLoss | None, basis: Any,
    cfg: InversionConfig, w_avg: Any, notes: list[str], cancel: threading.Event | None,
) -> tuple[Any, bool]:
    """Final line search along the basis directions localised to each small region (ws [1, num_ws, w_dim] ->
    (ws, moved)).

    An eyelid is bistable for a gradient method: once the optimiser has closed an open eye, opening it raises the
    loss before it lowers it (measured: with 2 threads, 2 of the eval's 3 renders ended with a closed right eye).
    Here every basis direction is first localised to one region (each eye, the brows, the mouth) around *this* face
    (``engine.latent.locality``: the ridge against the Jacobian of the pixels outside that region's boxes,
    estimated at ws), so that moving along it opens or closes that eye, moves its iris, the brows or the lips without
    changing the rest of the face; then, direction by direction, the best of ``cfg.region_search_grid`` steps (by
    the data loss: pixel pyramid + region loss) is taken when it lowers the loss. Sweeps stop early when one finds
    nothing. Generic: needs only the generator's gradients and the target's landmarks.
    """
    import torch

    from engine.latent.locality import source_filter

    L = cfg.lm_action_layers
    dirs = []
    for name in cfg.region_search_regions:
        filt = source_filter(generator, ws, target_points, name, cfg.region_search_probes, L, seed=cfg.seed)
        d = basis.detach().float().clone()
        d[:, :L] = d[:, :L] @ filt.to(d.device, d.dtype)
        dirs.append(d)
    dirs_t = torch.cat(dirs)
    grid = torch.tensor(cfg.region_search_grid, dtype=ws.dtype, device=ws.device)

    @torch.no_grad()
    def data_loss(x: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, len(x), 8):
            img = generator.synthesis(x[i : i + 8], noise_mode="const")
            out += [_data_loss(img[j : j + 1], x[i + j : i + j + 1], target, region, cfg, w_avg)[0]
                    for j in range(len(img))]
        return torch.stack(out)

    cur = float(data_loss(ws)[0])
    start, moves = cur, 0
    for _ in range(cfg.region_search):
        moves_before = moves
        for v in dirs_t:
            if cancel is not None and cancel.is_set():
                break
            cand = ws + grid[:, None, None] * v[None]
            losses = data_loss(cand)
            j = int(losses.argmin())
            if float(losses[j]) < cur:
                ws, cur, moves = cand[j : j + 1].clone(), float(losses[j]), moves + 1
        if moves == moves_before:  # converged: a whole sweep found nothing better
            break
    notes.append(f"region search: {moves} moves along {len(dirs_t)} localised directions "
                 f"({', '.join(cfg.region_search_regions)}), loss {start:.5f} -> {cur:.5f}")
    return ws, moves > 0


def _gauss_newton(
    generator: Any, ws: Any, target: Any, target_points: np.ndarray | None, region: RegionLoss | None,
    cfg: InversionConfig, notes: list[str], cancel: threading.Event | None, tick: Callable[[int, float], None],
) -> tuple[Any, bool]:
    """Last phase: Levenberg-Marquardt on the pixel residuals (pyramid + region loss, no regulariser) in the
    dominant subspace of their Jacobian (ws [1, num_ws, w_dim] -> (ws, moved)); ``tick(iteration, loss)``.
    ``region`` is the objective's region loss, rebuilt here from ``target_points`` when the renders are pooled.

    A render depends on far fewer numbers than W+ holds (FaceWorld: its ~47 parameters; a StyleGAN2: a spectrum
    that decays fast), so the Jacobian J of the residuals with respect to W+ has a small dominant row space. It is
    found without knowing the generator: ``gn_probes`` random residual probes u give Jᵀu (one backward pass each),
    whose span, orthonormalised, is the subspace. There J is measured by finite differences (one batched render
    per direction) and damped Gauss-Newton steps are taken. On a noise-free target the residual at the true code is
    zero, and Gauss-Newton converges there quadratically where first-order methods crawl along the weakly
    observed parameters (vertical gaze, smile against mouth width). The regularisers are left out on purpose:
    with them the polish stalls at their bias (measured: RESULTS.md). Renders are average-pooled to at most
    ``gn_resolution`` so that J ([directions, pixels]) stays small at 1024².
    """
    import torch
    import torch.nn.functional as F

    f = max(1, int(target.shape[-1]) // max(1, cfg.gn_resolution))
    tgt = target
    if f > 1:
        tgt = F.avg_pool2d(target, f)
        if region is not None and target_points is not None:
            region = RegionLoss(tgt, np.asarray(target_points, np.float32) / f, cfg.region_blurs, cfg.region_pad)

    def residuals(img: torch.Tensor) -> torch.Tensor:
        return _pixel_residuals(F.avg_pool2d(img, f) if f > 1 else img, tgt, region, cfg)

    x = ws.detach().clone().requires_grad_(True)
    r = residuals(generator.synthesis(x, noise_mode="const"))
    gen = torch.Generator().manual_seed(cfg.seed)
    cols = []
    for i in range(cfg.gn_probes):
        u = torch.randn(r.shape, generator=gen).to(r)
        (gi,) = torch.autograd.grad(r, x, u, retain_graph=i < cfg.gn_probes - 1)
        cols.append(gi.flatten())
    del r
    left, sv, _ = torch.linalg.svd(torch.stack(cols, 1), full_matrices=False)
    basis = left[:, sv > cfg.gn_rank_tol * sv[0]].T.contiguous()  # [m, num_ws * w_dim], orthonormal rows
    dirs = basis.reshape(-1, *ws.shape[1:])

    @torch.no_grad()
    def residuals_of(xb: torch.Tensor) -> torch.Tensor:
        return torch.cat([residuals(generator.synthesis(xb[i : i + 8], noise_mode="const"))
                          for i in range(0, len(xb), 8)])

    cur = ws.detach().clone()
    r0 = residuals_of(cur)[0]
    start = cost = float(r0.pow(2).sum())
    lam, it = 1e-3, 0
    for it in range(1, cfg.gn_iters + 1):
        if cancel is not None and cancel.is_set():
            break
        jac = (residuals_of(cur + cfg.gn_fd_step * dirs) - r0) / cfg.gn_fd_step  # [m, R]
        jtj, jtr = jac @ jac.T, jac @ r0
        before = cost
        # Marquardt's scale-invariant damping (diag JᵀJ) with a floor: along a direction the pixels hardly see
        # (a squashed parameter near its bound, a near-confound) it would allow huge steps, which walked codes
        # hundreds of standard deviations out into saturated, wrong basins (RESULTS.md, session 5)
        damp = jtj.diagonal().clamp_min(max(cfg.gn_damping_floor * float(jtj.diagonal().max()), 1e-12))
        while lam <= 1e4:
            a = jtj + lam * torch.diag(damp)
            cand = cur + (torch.linalg.solve(a, -jtr) @ basis).reshape(cur.shape)
            rc = residuals_of(cand)[0]
            c = float(rc.pow(2).sum())
            if c < cost:
                cur, r0, cost = cand, rc, c
                lam = max(lam / 10, 1e-7)
                break
            lam *= 10
        tick(it, cost)
        if before - cost <= 1e-3 * before:  # no step found, or converged
            break
    notes.append(f"Gauss-Newton polish: {it} iterations in a {len(basis)}-dimensional subspace, "
                 f"pixel loss {start:.2e} -> {cost:.2e}")
    return cur, cost < start


def _invert_restarts(
    generator: torch.nn.Module,
    image_uint8: np.ndarray,
    target: torch.Tensor,
    steps: int,
    progress: Callable[[int, int, float], None] | None,
    cancel: threading.Event | None,
    pivotal_tuning: bool,
    cfg: InversionConfig,
    basis: torch.Tensor | None,
) -> InversionResult:
    """``cfg.restarts`` full inversions from the best start candidates; keeps the one whose rendering has the lowest
    pixel-pyramid + region loss (the data terms only). ``progress`` counts over all runs."""
    import dataclasses

    import torch

    from engine.landmarks import create_detector

    t_start = time.perf_counter()
    notes: list[str] = []
    w_avg = generator.w_avg.detach().float()
    detector = create_detector("mediapipe", video_mode=False)
    try:
        d = detector.detect(_to_uint8(target))
        points = np.asarray(d.points, np.float32) if d.found else None
        starts = _choose_start(generator, target, points, detector, cfg, _candidate_codes(generator, cfg, w_avg), notes,
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
            score = float(_pixel_residuals(img, target, region, cfg).pow(2).sum())
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
        tuned = _pivotal_tuning(generator, res.ws, target, cfg, notes, progress, cancel)
        if tuned is not None:
            with torch.no_grad():
                res.image = _to_uint8(tuned.synthesis(res.ws, noise_mode="const"))
    res.generator = tuned
    res.notes = notes + res.notes
    res.steps_run = runs
    res.seconds = time.perf_counter() - t_start
    return res


def _render_and_detect(generator: torch.nn.Module, ws: torch.Tensor, detector: Any) -> tuple[torch.Tensor, Any]:
    """Render ``ws`` [1, num_ws, w_dim] (no gradient) and detect its landmarks -> (image [1, 3, H, W], Detection)."""
    import torch

    with torch.no_grad():
        img = generator.synthesis(ws, noise_mode="const")
    return img, detector.detect(_to_uint8(img))


def pca_basis(generator: torch.nn.Module, n: int, action_layers: int = 8, seed: int = 0, samples: int = 2000):
    """Top-n principal axes of w (z ~ N(0, I)) on the first ``action_layers`` layers, each scaled to one standard
    deviation of w along it -> [n, num_ws, w_dim]."""
    import torch

    device = generator.w_avg.device
    z = torch.randn(samples, generator.z_dim, generator=torch.Generator().manual_seed(seed + 1)).to(device)
    with torch.no_grad():
        w = generator.mapping(z, None)[:, 0].float()
    w = w - w.mean(0)
    _, sv, vt = torch.linalg.svd(w, full_matrices=False)
    std = sv[:n] / (samples - 1) ** 0.5
    out = torch.zeros(n, generator.num_ws, generator.w_dim, device=device)
    out[:, :action_layers] = (vt[:n] * std[:, None])[:, None, :]
    return out


class LandmarkProxy:
    """mediapipe linearised in a subspace of W+: finite-difference Jacobian, Levenberg-Marquardt fit, and a
    differentiable landmark loss around an anchor (see the module docstring)."""

    def __init__(
        self, generator: Any, detector: Any, basis: Any, target_points: np.ndarray, fd_step: float, points: str = "all"
    ) -> None:
        import torch

        from engine.fan import default_points

        self.g = generator
        self.det = detector
        idx = np.asarray(default_points(), np.int64)  # iBUG-68 + irises: 78 points
        if points == "pose":  # jaw line, nose and mouth: the eyes, irises and brows are left to the region loss
            idx = np.concatenate([idx[:17], idx[27:36], idx[48:68]])
        elif points == "pose_iris":  # the same plus the 10 iris points (no eyelids, no brows)
            idx = np.concatenate([idx[:17], idx[27:36], idx[48:68], idx[68:78]])
        elif points == "contour_iris":  # jaw line, nose and irises only (the mouth is left to the region loss too)
            idx = np.concatenate([idx[:17], idx[27:36], idx[68:78]])
        elif points != "all":
            raise ValueError(
                f"InversionConfig.lm_fit_points must be 'all', 'pose', 'pose_iris' or 'contour_iris', got {points!r}"
            )
        self.idx = idx
        self.basis = basis.detach().float().to(generator.w_avg.device)  # [n, L, C]
        flat = self.basis.reshape(self.basis.shape[0], -1)
        self.pinv = torch.linalg.pinv(flat.double()).float()  # [L*C, n]: c = dws_flat @ pinv
        self.fd = fd_step
        self.pt = np.asarray(target_points, np.float64)[self.idx]
        from engine.metrics import interocular

        self.iod = max(interocular(np.asarray(target_points)), 1e-6)
        self.jac: Any = None  # [2K, n] in inter-ocular units per coefficient
        self.ws_a: Any = None
        self.p_a: Any = None
        self.ready = False

    def _err(self, q: np.ndarray) -> float:
        """Mean distance of the fitted points [K, 2] to the target's, in the target's inter-ocular distances."""
        return float(np.linalg.norm(q - self.pt, axis=-1).mean() / self.iod)

    def _detect(self, ws: Any) -> list[np.ndarray | None]:
        import torch

        from engine.generators import to_uint8

        out = []
        with torch.no_grad():
            for i in range(0, ws.shape[0], 16):
                imgs = to_uint8(self.g.synthesis(ws[i : i + 16], noise_mode="const"))
                for im in imgs:
                    d = self.det.detect(im)
                    out.append(np.asarray(d.points, np.float64)[self.idx] if d.found else None)
        return out

    def _jacobian(self, ws: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
        import torch

        n = self.basis.shape[0]
        batch = torch.cat([ws, ws + self.fd * self.basis])  # [n + 1, L, C]
        pts = self._detect(batch)
        if pts[0] is None:
            return None, None
        cols = []
        for i in range(n):
            q = pts[i + 1]
            cols.append(np.zeros(pts[0].size) if q is None else (q - pts[0]).ravel() / (self.fd * self.iod))
        return pts[0], np.stack(cols, 1)

    def fit(self, ws: Any, iters: int, notes: list[str], cancel: threading.Event | None) -> Any:
        """Levenberg-Marquardt on the landmark error in the subspace; returns the improved ws [1, L, C]."""
        import torch


        mu = 1e-2
        start = err = None
        for _ in range(iters):
            if cancel is not None and cancel.is_set():
                break
            p0, jac = self._jacobian(ws)
            if p0 is None:
                notes.append("landmark fit stopped: no face on the current rendering")
                break
            if start is None:
                start = err = self._err(p0)
            e = (self.pt - p0).ravel() / self.iod
            jtj, jte = jac.T @ jac, jac.T @ e
            improved = False
            for _try in range(4):
                delta = np.linalg.solve(jtj + mu * (np.diag(np.diag(jtj)) + 1e-3 * np.eye(len(jtj))), jte)
                step = torch.as_tensor(delta, dtype=torch.float32, device=ws.device) @ self.basis.flatten(1)
                cand = ws + step.reshape(ws.shape)
                q = self._detect(cand)[0]
                if q is not None and self._err(q) < err:
                    ws, err, improved = cand, self._err(q), True
                    mu = max(mu / 3, 1e-4)
                    break
                mu *= 4
            self.jac = jac
            if not improved:
                break
        if self.jac is not None:
            self.ws_a, self.p_a = ws.clone(), None
            q = self._detect(ws)[0]
            if q is not None:
                self.p_a = q
                self.ready = True
            notes.append(f"landmark fit: NME({len(self.idx)} pts) {start:.4f} -> {err:.4f}")
        return ws

    def anchor(self, ws: Any, points_478: np.ndarray) -> None:
        """Re-linearise around ws with its freshly detected landmarks [478, 2]."""
        if self.jac is None:
            return
        self.ws_a = ws.detach().clone()
        self.p_a = np.asarray(points_478, np.float64)[self.idx]
        self.ready = True

    def loss(self, ws: Any) -> Any:
        """Differentiable landmark loss: mean squared point error (inter-ocular units) of the linearised model."""
        import torch

        c = (ws - self.ws_a).reshape(1, -1) @ self.pinv  # [1, n]
        jac = torch.as_tensor(self.jac, dtype=torch.float32, device=ws.device)
        resid = torch.as_tensor((self.p_a - self.pt).ravel() / self.iod, dtype=torch.float32, device=ws.device)
        r = resid + (c @ jac.T)[0]
        return r.pow(2).reshape(-1, 2).sum(-1).mean()


def _choose_start(
    generator: torch.nn.Module,
    target: torch.Tensor,
    target_points: np.ndarray | None,
    detector: Any,
    cfg: InversionConfig,
    cands: torch.Tensor,
    notes: list[str],
    k: int = 1,
) -> torch.Tensor:
    """The best of the candidate codes ``cands`` (``_candidate_codes``: w̄ and ``cfg.init_candidates`` random codes):
    landmark NME to the target (when detected) plus the coarse pixel loss. Returns ws [1, num_ws, w_dim] (the ``k``
    best: [k, num_ws, w_dim], best first)."""
    import torch

    from engine.metrics import nme

    with torch.no_grad():
        scores = []
        coarse = tuple(s for s in cfg.scales if s >= 4) or cfg.scales[-1:]
        for i in range(0, len(cands), cfg.init_batch):
            imgs = generator.synthesis(cands[i : i + cfg.init_batch], noise_mode="const")
            for j in range(imgs.shape[0]):
                pix = float(pyramid_loss(imgs[j : j + 1], target, coarse, (1.0,) * len(coarse)))
                lm = 0.0
                if target_points is not None:
                    d = detector.detect(_to_uint8(imgs[j : j + 1]))
                    lm = nme(np.asarray(d.points, np.float32), target_points) if d.found else 1.0
                scores.append(lm + pix)
    order = [int(i) for i in np.argsort(scores, kind="stable")[: max(1, k)]]
    best = order[0]
    notes.append(f"start: candidate {best} of {len(cands)} (0 = w_avg), score {scores[best]:.4f}")
    return cands[order].clone()


def _candidate_codes(generator: torch.nn.Module, cfg: InversionConfig, w_avg: torch.Tensor) -> torch.Tensor:
    """w̄ and ``cfg.init_candidates`` random codes (seed ``cfg.seed``, truncation ``cfg.init_psi``): [1 + n, L, D]."""
    import torch

    gen = torch.Generator().manual_seed(cfg.seed)
    z = torch.randn(cfg.init_candidates, generator.z_dim, generator=gen).to(w_avg.device)
    with torch.no_grad():
        return torch.cat([w_avg[None, None].expand(1, generator.num_ws, generator.w_dim),
                          generator.mapping(z, None, truncation_psi=cfg.init_psi).float()])


def _mix_appearance(generator: torch.nn.Module, ws: torch.Tensor, target: torch.Tensor, cands: torch.Tensor,
                    cfg: InversionConfig, notes: list[str]) -> torch.Tensor:
    """Style mixing against wrong colour basins: the fitted action layers (< ``lm_action_layers``) with the
    appearance layers of each candidate code, scored by the pixel pyramid; the best mixture (or ``ws`` itself)
    is returned. Gradient steps cannot cross a colour that must pass through worse colours to reach the right one
    (FaceWorld's cyclic background and shirt hues; a StyleGAN2 background), a jump between candidates can."""
    import torch

    n_act = cfg.lm_action_layers
    with torch.no_grad():
        mixes = ws.detach().expand(len(cands) + 1, -1, -1).clone()
        mixes[1:, n_act:] = cands[:, n_act:]
        scores: list[float] = []
        for i in range(0, len(mixes), cfg.init_batch):
            imgs = generator.synthesis(mixes[i : i + cfg.init_batch], noise_mode="const")
            scores += [float(pyramid_loss(imgs[j : j + 1], target, cfg.scales, cfg.scale_weights))
                       for j in range(imgs.shape[0])]
    best = int(np.argmin(scores))
    if best > 0:
        notes.append(f"appearance layers from candidate {best - 1} (pixel loss {scores[0]:.4f} -> {scores[best]:.4f})")
    return mixes[best : best + 1].clone()


class _StopLBFGS(Exception):
    """Raised inside the L-BFGS closure to end the phase (budget spent or cancelled)."""


def _lbfgs_phase(
    ws: torch.Tensor,
    objective: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    step: int,
    end: int,
    steps: int,
    losses: list[float],
    progress: Callable[[int, int, float], None] | None,
    cancel: threading.Event | None,
) -> tuple[int, bool]:
    """Polish ``ws`` [1, num_ws, w_dim] in place with L-BFGS (strong Wolfe line search) on the objective for the
    evaluations ``step + 1 .. end`` (of ``steps`` in all, for ``progress``); leaves the lowest-loss code evaluated.
    Returns (last step, cancelled).

    Adam's per-coordinate steps keep jittering at the end of a run; on a smooth, noise-free objective L-BFGS
    converges far more precisely, which the small expression features (an iris shift of one pixel) need."""
    import torch

    count = [step]
    best: list[Any] = [float("inf"), ws.detach().clone()]
    was_cancelled = [False]
    budget = end - step
    opt = torch.optim.LBFGS([ws], lr=1.0, max_iter=budget, max_eval=budget, history_size=20,
                            tolerance_grad=1e-12, tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        if cancel is not None and cancel.is_set():
            was_cancelled[0] = True
            raise _StopLBFGS
        if count[0] >= end:
            raise _StopLBFGS
        opt.zero_grad(set_to_none=True)
        loss, pix = objective(ws)
        loss.backward()
        count[0] += 1
        lv = float(pix.detach())
        losses.append(lv)
        if float(loss.detach()) < best[0]:
            best[0], best[1] = float(loss.detach()), ws.detach().clone()
        if progress is not None:
            progress(count[0], steps, lv)
        return loss

    try:
        opt.step(closure)
    except _StopLBFGS:
        pass
    with torch.no_grad():
        ws.copy_(best[1])
    return count[0], was_cancelled[0]


def _lr_at(step: int, total: int, base: float) -> float:
    """5 % linear warm-up, then cosine decay to 5 % of ``base``."""
    warm = max(1, int(0.05 * total))
    if step <= warm:
        return base * step / warm
    t = (step - warm) / max(1, total - warm)
    return base * (0.05 + 0.95 * 0.5 * (1.0 + np.cos(np.pi * t)))


def _to_uint8(img: torch.Tensor) -> np.ndarray:
    from engine.generators import to_uint8

    return to_uint8(img)[0]


def _pivotal_tuning(
    generator: torch.nn.Module,
    ws: torch.Tensor,
    target: torch.Tensor,
    cfg: InversionConfig,
    notes: list[str],
    progress: Callable[[int, int, float], None] | None,
    cancel: threading.Event | None,
) -> torch.nn.Module | None:
    """Fine-tune a copy of the generator's synthesis weights with ws fixed (PTI). None when nothing is trainable."""
    import torch

    tuned = copy.deepcopy(generator)
    params = [p for p in tuned.synthesis.parameters()] if hasattr(tuned.synthesis, "parameters") else []
    params = [p for p in params if p.dtype.is_floating_point]
    if not params:
        notes.append("pivotal tuning skipped: the generator has no trainable synthesis weights (e.g. FaceWorld)")
        return None
    for p in tuned.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=cfg.pti_lr)
    ws = ws.detach()
    tuned.train(False)
    for i in range(1, cfg.pti_steps + 1):
        if cancel is not None and cancel.is_set():
            notes.append(f"pivotal tuning cancelled after {i - 1} steps")
            break
        img = tuned.synthesis(ws, noise_mode="const")
        loss = pyramid_loss(img, target, cfg.scales, cfg.scale_weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress(i, cfg.pti_steps, float(loss.detach()))
    for p in tuned.parameters():
        p.requires_grad_(False)
    notes.append(f"pivotal tuning: {cfg.pti_steps} steps on {sum(p.numel() for p in params)} weights")
    return tuned.eval()
