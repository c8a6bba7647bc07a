"""Identity gallery thumbnails: the generator's faces for a few seeds (rendered off the GUI thread)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def render_thumbnails(
    bundle: Any,
    seeds: Sequence[int],
    size: int = 96,
    progress: Callable[..., None] | None = None,
    cancel: Any = None,
) -> list[tuple[int, np.ndarray]]:
    """[(seed, uint8 RGB [size, size, 3])] for ``seeds``, as ``Animator.set_source(seed)`` would render them."""
    import cv2
    import torch

    from engine.latent.mapping import ws_from_seed
    from engine.media import to_uint8

    g = bundle.generator("cpu")
    out = []
    for i, seed in enumerate(seeds):
        if cancel is not None and cancel.is_set():
            break
        with torch.inference_mode():
            img = to_uint8(g.synthesis(ws_from_seed(g, int(seed)), noise_mode="const"))[0]
        out.append((int(seed), cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)))
        if progress is not None:
            progress(i + 1, len(seeds))
    return out
