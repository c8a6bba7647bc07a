"""The start: candidate codes, the choice among them, and style mixing of the appearance layers.

* **Choice**: w̄ and ``init_candidates`` random codes are scored by landmark NME to the target plus the coarse
  pixel loss; the best is the start (the ``k`` best with restarts).
* **Style mixing** (after the landmark fit): the fitted action layers are combined with the appearance layers of
  every candidate and the lowest pixel loss is kept. A colour whose right value lies beyond worse ones (a cyclic
  hue of FaceWorld's background and shirt) is a basin gradient steps never leave; a jump between candidates does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from engine.inversion.targets import pyramid_loss
from engine.media import to_uint8

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from engine.inversion.config import InversionConfig
    from engine.inversion.context import Run


def candidate_codes(generator: torch.nn.Module, cfg: InversionConfig, w_avg: torch.Tensor) -> torch.Tensor:
    """w̄ and ``cfg.init_candidates`` random codes (seed ``cfg.seed``, truncation ``cfg.init_psi``): [1 + n, L, D]."""
    import torch

    gen = torch.Generator().manual_seed(cfg.seed)
    z = torch.randn(cfg.init_candidates, generator.z_dim, generator=gen).to(w_avg.device)
    with torch.no_grad():
        return torch.cat([w_avg[None, None].expand(1, generator.num_ws, generator.w_dim),
                          generator.mapping(z, None, truncation_psi=cfg.init_psi).float()])


def choose_start(
    generator: torch.nn.Module,
    target: torch.Tensor,
    target_points: np.ndarray | None,
    detector: Any,
    cfg: InversionConfig,
    cands: torch.Tensor,
    notes: list[str],
    k: int = 1,
) -> torch.Tensor:
    """The best of the candidate codes ``cands``: landmark NME to the target (when detected) plus the coarse pixel
    loss. Returns ws [1, num_ws, w_dim] (the ``k`` best: [k, num_ws, w_dim], best first)."""
    import torch

    from engine.landmarks.geometry import nme

    with torch.no_grad():
        scores = []
        coarse = tuple(s for s in cfg.scales if s >= 4) or cfg.scales[-1:]
        for i in range(0, len(cands), cfg.init_batch):
            imgs = generator.synthesis(cands[i : i + cfg.init_batch], noise_mode="const")
            for j in range(imgs.shape[0]):
                pix = float(pyramid_loss(imgs[j : j + 1], target, coarse, (1.0,) * len(coarse)))
                lm = 0.0
                if target_points is not None:
                    d = detector.detect(to_uint8(imgs[j : j + 1])[0])
                    lm = nme(np.asarray(d.points, np.float32), target_points) if d.found else 1.0
                scores.append(lm + pix)
    order = [int(i) for i in np.argsort(scores, kind="stable")[: max(1, k)]]
    best = order[0]
    notes.append(f"start: candidate {best} of {len(cands)} (0 = w_avg), score {scores[best]:.4f}")
    return cands[order].clone()


def start_code(run: Run, init_ws: torch.Tensor | None, cands: torch.Tensor | None) -> torch.Tensor:
    """The start [1, num_ws, w_dim]: the caller's ``init_ws``, else the best candidate, else w̄."""
    g = run.generator
    if init_ws is not None:
        return init_ws.detach().to(run.target.device).float().reshape(1, g.num_ws, g.w_dim)
    if cands is not None:
        return choose_start(g, run.target, run.target_points, run.detector, run.cfg, cands, run.notes)
    return run.w_avg[None, None].expand(1, g.num_ws, g.w_dim)


def mix_appearance(generator: torch.nn.Module, ws: torch.Tensor, target: torch.Tensor, cands: torch.Tensor,
                   cfg: InversionConfig, notes: list[str]) -> torch.Tensor:
    """The fitted action layers (< ``lm_action_layers``) of ``ws`` with the appearance layers of each candidate
    code, scored by the pixel pyramid; returns the best mixture (or ``ws`` itself) [1, num_ws, w_dim]."""
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
