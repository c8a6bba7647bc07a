"""Pivotal tuning (PTI): fine-tune a copy of the generator with the inverted code fixed, so that G'(ŵ) reproduces
the portrait more closely than any code of G does. A generator without trainable synthesis weights (FaceWorld)
is left alone, and a note says so."""

from __future__ import annotations

import copy
import threading
from typing import TYPE_CHECKING

from engine.inversion.context import Progress, requested
from engine.inversion.targets import pyramid_loss

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from engine.inversion.config import InversionConfig


def pivotal_tuning(
    generator: torch.nn.Module,
    ws: torch.Tensor,
    target: torch.Tensor,
    cfg: InversionConfig,
    notes: list[str],
    progress: Progress | None,
    cancel: threading.Event | None,
) -> torch.nn.Module | None:
    """``cfg.pti_steps`` Adam steps on a copy's synthesis weights with ws fixed -> the tuned copy (eval mode,
    frozen); None when nothing is trainable."""
    import torch

    tuned = copy.deepcopy(generator)
    params = list(tuned.synthesis.parameters()) if isinstance(tuned.synthesis, torch.nn.Module) else []
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
        if requested(cancel):
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
