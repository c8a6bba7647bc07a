"""Fine-tuning a bundle's FAN on one source portrait (the paper's per-identity fine-tuning).

    b2 = finetune(bundle, source, steps=300, progress=cb, cancel=event)

``source`` is a uint8 RGB portrait [H, W, 3] (inverted with ``engine.inversion.invert``) or source latents
ws [1, num_ws, w_dim]. Training then continues with w_s fixed near ŵ_s (small jitter) and returns a new Bundle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from engine.bundle import Bundle

ProgressFn = Callable[[int, int, dict[str, Any]], None]


def finetune(
    bundle: Bundle,
    source: np.ndarray | torch.Tensor,
    steps: int = 300,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    **kwargs: Any,
) -> Bundle:
    """Fine-tune ``bundle``'s FAN for one source; returns a NEW Bundle (the input is left untouched).

    Args:
        bundle: a bundle with a trained FAN.
        source: uint8 RGB image [H, W, 3] (inverted first) or latents ws [1, num_ws, w_dim].
        steps: optimisation steps of the FAN.
        progress: called as ``progress(step, total, metrics)`` (metrics: loss, stage, ...).
        cancel: when set, stops early and returns the bundle trained so far.
    """
    from engine.distill.train import finetune_bundle

    return finetune_bundle(bundle, source, steps=steps, progress=progress, cancel=cancel, **kwargs)
