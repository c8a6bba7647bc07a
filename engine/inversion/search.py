"""The region search: a line search along basis directions localised to each small region.

An eyelid is bistable for a gradient method: once the optimiser has closed an open eye, opening it raises the loss
before it lowers it. Here every basis direction is first localised to one region (each eye, the brows, the mouth)
around *this* face (``engine.latent.locality``: the ridge against the Jacobian of the pixels outside that region's
boxes, estimated at the current code), so that moving along it opens or closes that eye, moves its iris, the brows
or the lips without changing the rest of the face; then, direction by direction, the best of
``region_search_grid`` steps is taken when it lowers the data loss. The same escapes a saturated frown or pucker
(a squashed "on" that gradient steps cannot turn off). Generic: needs only the generator's gradients and the
target's landmarks.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.inversion.context import requested
from engine.inversion.targets import RegionLoss, data_loss

if TYPE_CHECKING:  # pragma: no cover
    from engine.generators.protocol import Generator
    from engine.inversion.config import InversionConfig


def region_search(
    generator: Generator, ws: Any, target: Any, target_points: np.ndarray, region: RegionLoss | None, basis: Any,
    cfg: InversionConfig, w_avg: Any, notes: list[str], cancel: threading.Event | None,
) -> tuple[Any, bool]:
    """``cfg.region_search`` sweeps over the localised directions (ws [1, num_ws, w_dim] -> (ws, moved)); a sweep
    that finds nothing ends the search."""
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
    def loss_of(x: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, len(x), 8):
            img = generator.synthesis(x[i : i + 8], noise_mode="const")
            out += [data_loss(img[j : j + 1], x[i + j : i + j + 1], target, region, cfg, w_avg)[0]
                    for j in range(len(img))]
        return torch.stack(out)

    cur = float(loss_of(ws)[0])
    start, moves = cur, 0
    for _ in range(cfg.region_search):
        moves_before = moves
        for v in dirs_t:
            if requested(cancel):
                break
            cand = ws + grid[:, None, None] * v[None]
            losses = loss_of(cand)
            j = int(losses.argmin())
            if float(losses[j]) < cur:
                ws, cur, moves = cand[j : j + 1].clone(), float(losses[j]), moves + 1
        if moves == moves_before:
            break
    notes.append(f"region search: {moves} moves along {len(dirs_t)} localised directions "
                 f"({', '.join(cfg.region_search_regions)}), loss {start:.5f} -> {cur:.5f}")
    return ws, moves > 0
