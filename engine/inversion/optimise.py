"""The gradient phases on the full objective (data terms + the linearised landmark term): Adam, then L-BFGS.

* **Adam** with a 5 % warm-up and cosine decay; its first ``appearance_first`` share of steps moves only the
  appearance layers, keeping the landmark fit of the action layers.
* **L-BFGS** (the last ``lbfgs_fraction`` of the steps): Adam's per-coordinate steps move the parameters with weak
  gradients (gaze, brows) slowly and keep jittering; on this smooth, noise-free objective L-BFGS with a strong
  Wolfe line search converges much further in the same number of renders. It runs in segments of
  ``lbfgs_segment`` evaluations with the landmark term re-linearised between them; a segment that makes the
  landmarks clearly worse is undone and ends the phase.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.inversion.targets import data_loss, pyramid_loss

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from engine.inversion.context import Run
    from engine.inversion.landmarks import LandmarkProxy

Objective = Callable[["torch.Tensor"], tuple["torch.Tensor", "torch.Tensor"]]


def lr_at(step: int, total: int, base: float) -> float:
    """5 % linear warm-up, then cosine decay to 5 % of ``base``."""
    warm = max(1, int(0.05 * total))
    if step <= warm:
        return base * step / warm
    t = (step - warm) / max(1, total - warm)
    return base * (0.05 + 0.95 * 0.5 * (1.0 + np.cos(np.pi * t)))


def optimise(run: Run, ws0: torch.Tensor, steps: int, proxy: LandmarkProxy | None) -> tuple[torch.Tensor, int]:
    """``steps`` gradient steps from ws0 [1, num_ws, w_dim] -> (the last code, the last step run)."""
    cfg = run.cfg
    n_lbfgs = int(round(cfg.lbfgs_fraction * steps))
    n_adam = steps - n_lbfgs
    ws = ws0.clone().requires_grad_(True)

    def objective(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(total loss, pixel-pyramid data term) of the code x [1, num_ws, w_dim]."""
        img = run.generator.synthesis(x, noise_mode="const")
        loss, pix = data_loss(img, x, run.target, run.region, cfg, run.w_avg)
        if proxy is not None and proxy.ready:
            loss = loss + cfg.lm_weight * proxy.loss(x)
        return loss, pix

    if run.target_points is not None and proxy is not None:
        # the landmark fit's own result is a checkpoint too: the first pixel steps can undo part of it
        img0, d0 = run.detect(ws0)
        if d0.found:
            e0 = run.nme(d0)
            run.nme_history.append((0, e0))
            run.best = (e0, float(pyramid_loss(img0, run.target, cfg.scales, cfg.scale_weights)), ws0.detach().clone())
    step, early_stop = _adam(run, ws, objective, n_adam, steps, proxy)
    if n_lbfgs > 0:
        if not (run.halted or early_stop):
            step = _lbfgs(run, ws, objective, step, steps, proxy)
        run.notes.append(f"L-BFGS polish: {step - n_adam} evaluations in segments of {max(1, cfg.lbfgs_segment)}")
        if step < steps and not run.halted and run.losses:
            run.report(steps, run.losses[-1])  # converged before spending the budget
    return ws.detach().clone(), step


def _adam(run: Run, ws: torch.Tensor, objective: Objective, n_adam: int, steps: int,
          proxy: LandmarkProxy | None) -> tuple[int, bool]:
    """Adam steps 1..n_adam on ws in place -> (last step, stopped early on the NME)."""
    import torch

    cfg = run.cfg
    opt = torch.optim.Adam([ws], lr=cfg.lr, betas=(0.9, 0.999))
    n_app = int(cfg.appearance_first * n_adam) if proxy is not None else 0
    below = 0
    step = 0
    for step in range(1, n_adam + 1):
        if run.stop_requested():
            run.halted = True
            return step - 1, False
        lr = lr_at(step, n_adam, cfg.lr)
        for group in opt.param_groups:
            group["lr"] = lr
        loss, pix = objective(ws)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if step <= n_app:
            ws.grad[:, : cfg.lm_action_layers] = 0
        opt.step()
        lv = float(pix.detach())  # the data term (the landmark term's anchor moves, so it is left out)
        run.losses.append(lv)
        run.report(step, lv)
        if run.target_points is not None and (step % cfg.landmark_every == 0 or step == steps):
            _, d = run.detect(ws)
            if d.found:
                if proxy is not None:
                    proxy.anchor(ws.detach(), np.asarray(d.points, np.float32))
                e = run.nme(d)
                run.nme_history.append((step, e))
                if run.best is None or (e, lv) < (run.best[0], run.best[1]):
                    run.best = (e, lv, ws.detach().clone())
                below = below + 1 if e < cfg.early_stop_nme else 0
                if below >= 2:
                    run.notes.append(f"early stop at step {step}: NME {e:.4f} < {cfg.early_stop_nme}")
                    return step, True
    return step, False


def _lbfgs(run: Run, ws: torch.Tensor, objective: Objective, step: int, steps: int,
           proxy: LandmarkProxy | None) -> int:
    """L-BFGS in segments from ``step`` up to ``steps`` on ws in place; between segments the landmarks are
    re-detected, the landmark term re-linearised, and a segment that clearly worsened them is undone.
    Returns the last step."""
    import torch

    seg = max(1, run.cfg.lbfgs_segment)
    while step < steps and not run.halted:
        end = min(steps, step + seg)
        ws_before = ws.detach().clone()
        nme_before = run.nme_history[-1][1] if run.nme_history else None
        step, run.halted = _lbfgs_segment(run, ws, objective, step, end)
        if run.target_points is not None and not run.halted:
            _, d = run.detect(ws)
            e = run.nme(d) if d.found else float("inf")
            if nme_before is not None and e > max(1.5 * nme_before, nme_before + 0.02):
                # a quasi-Newton step ran off (e.g. along a direction where the linearised landmark term is
                # wrong): keep the code from before the segment and stop
                with torch.no_grad():
                    ws.copy_(ws_before)
                run.notes.append(f"L-BFGS segment rejected at step {step}: NME {nme_before:.4f} -> {e:.4f}")
                run.nme_history.append((step, nme_before))
                break
            if d.found:
                if proxy is not None:
                    proxy.anchor(ws.detach(), np.asarray(d.points, np.float32))
                run.nme_history.append((step, e))
        if step < end:  # converged inside the segment
            break
    return step


class _StopLBFGS(Exception):
    """Raised inside the L-BFGS closure to end the segment (budget spent or cancelled)."""


def _lbfgs_segment(run: Run, ws: torch.Tensor, objective: Objective, step: int, end: int) -> tuple[int, bool]:
    """L-BFGS (strong Wolfe line search) on ws in place for the evaluations ``step + 1 .. end``; leaves the
    lowest-loss code evaluated. Returns (last step, cancelled)."""
    import torch

    count = [step]
    best: list[Any] = [float("inf"), ws.detach().clone()]
    was_cancelled = [False]
    budget = end - step
    opt = torch.optim.LBFGS([ws], lr=1.0, max_iter=budget, max_eval=budget, history_size=20,
                            tolerance_grad=1e-12, tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        if run.stop_requested():
            was_cancelled[0] = True
            raise _StopLBFGS
        if count[0] >= end:
            raise _StopLBFGS
        opt.zero_grad(set_to_none=True)
        loss, pix = objective(ws)
        loss.backward()
        count[0] += 1
        lv = float(pix.detach())
        run.losses.append(lv)
        if float(loss.detach()) < best[0]:
            best[0], best[1] = float(loss.detach()), ws.detach().clone()
        run.report(count[0], lv)
        return loss

    try:
        opt.step(closure)
    except _StopLBFGS:
        pass
    with torch.no_grad():
        ws.copy_(best[1])
    return count[0], was_cancelled[0]
