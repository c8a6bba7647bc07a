"""The Gauss-Newton polish of the pixel residuals, and the refinement rounds (region search, then polish).

A render depends on far fewer numbers than W+ holds (FaceWorld: its ~47 parameters; a StyleGAN2: a spectrum that
decays fast), so the Jacobian J of the residuals (pixel pyramid + region loss) with respect to W+ has a small
dominant row space. It is found without knowing the generator: ``gn_probes`` random residual probes u give Jᵀu
(one backward pass each), whose span, orthonormalised, is the subspace. There J is measured by finite differences
and damped Gauss-Newton steps are taken: on a noise-free target the residual at the true code is zero, and
Gauss-Newton converges there quadratically, down to the target's 8-bit quantisation, where first-order methods
crawl along the weakly observed parameters (vertical gaze, smile against mouth width). The regularisers are left
out: with them the polish stalls at their bias.

Search and polish run ``refine_rounds`` times: once the polish has re-fitted the face, a second search finds steps
the first could not take.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.inversion.context import requested
from engine.inversion.search import region_search
from engine.inversion.targets import RegionLoss, pixel_residuals

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from engine.generators.protocol import Generator
    from engine.inversion.config import InversionConfig
    from engine.inversion.context import Run


def gauss_newton(
    generator: Generator, ws: Any, target: Any, target_points: np.ndarray | None, region: RegionLoss | None,
    cfg: InversionConfig, notes: list[str], cancel: threading.Event | None, tick: Callable[[int, float], None],
) -> tuple[Any, bool]:
    """Levenberg-Marquardt on the pixel residuals in the dominant subspace of their Jacobian (ws [1, num_ws,
    w_dim] -> (ws, moved)); ``tick(iteration, loss)`` after every iteration. ``region`` is the objective's region
    loss, rebuilt here from ``target_points`` when the renders are pooled to ``gn_resolution`` (which keeps J,
    [directions, pixels], small at 1024²)."""
    import torch
    import torch.nn.functional as F

    f = max(1, int(target.shape[-1]) // max(1, cfg.gn_resolution))
    tgt = target
    if f > 1:
        tgt = F.avg_pool2d(target, f)
        if region is not None and target_points is not None:
            region = RegionLoss(tgt, np.asarray(target_points, np.float32) / f, cfg.region_blurs, cfg.region_pad)

    def residuals(img: torch.Tensor) -> torch.Tensor:
        return pixel_residuals(F.avg_pool2d(img, f) if f > 1 else img, tgt, region, cfg)

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
        if requested(cancel):
            break
        jac = (residuals_of(cur + cfg.gn_fd_step * dirs) - r0) / cfg.gn_fd_step  # [m, R]
        jtj, jtr = jac @ jac.T, jac @ r0
        before = cost
        # Marquardt's scale-invariant damping (diag JᵀJ) with a floor: along a direction the pixels hardly see
        # (a squashed parameter near its bound, a near-confound) it would allow huge steps, which walk codes
        # far out into saturated, wrong basins
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


def refine_plan(cfg: InversionConfig, steps: int) -> tuple[int, int]:
    """(rounds, polish iterations per round); ``steps=0`` returns the start, so it gets no polish either."""
    polish = max(0, cfg.gn_iters) if steps > 0 else 0
    return (max(1, cfg.refine_rounds) if polish > 0 else 1), polish


def refine(run: Run, ws: torch.Tensor, basis: torch.Tensor | None, steps: int) -> tuple[torch.Tensor, bool]:
    """The refinement rounds after ``steps`` optimisation steps -> (ws, whether they moved it). Progress goes on
    from ``steps`` by the polish iterations."""
    cfg = run.cfg
    rounds, polish = refine_plan(cfg, steps)
    moved = False
    last_loss = run.losses[-1] if run.losses else 0.0
    for rnd in range(rounds):
        if run.halted or run.stop_requested():
            break
        if cfg.region_search > 0 and run.target_points is not None:
            ws, searched = region_search(run.generator, ws, run.target, run.target_points, run.region, basis, cfg,
                                         run.w_avg, run.notes, run.cancel)
            moved = moved or searched
        if polish > 0:

            def tick(i: int, loss: float, done: int = steps + rnd * polish) -> None:
                nonlocal last_loss
                last_loss = loss
                run.report(done + i, loss)

            ws, polished = gauss_newton(run.generator, ws, run.target, run.target_points, run.region, cfg, run.notes,
                                        run.cancel, tick)
            moved = moved or polished
    run.halted = run.halted or run.stop_requested()  # also when set during a search or polish
    if polish > 0 and not run.halted:
        run.report(run.total, last_loss)  # a polish may stop before its last iteration
    return ws, moved
