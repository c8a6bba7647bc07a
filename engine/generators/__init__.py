"""Generators with the StyleGAN2 interface.

Contract shared by every generator (StyleGAN2 checkpoints and the built-in FaceWorld)::

    g = load_generator(path_or_name, device="cpu")
    g.z_dim, g.w_dim, g.num_ws, g.c_dim, g.img_resolution, g.w_avg      # w_avg: Tensor [w_dim]
    ws  = g.mapping(z, c=None, truncation_psi=1.0)                       # [N, num_ws, w_dim]
    img = g.synthesis(ws, noise_mode="const")                            # [N, 3, H, W], raw float ~[-1, 1]
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

FACEWORLD = "faceworld"


def load_generator(path_or_name: str | Path, device: str = "cpu", **kwargs: Any) -> torch.nn.Module:
    """Load a generator by reserved name (``"faceworld"``) or from a checkpoint file.

    Supported files: NVlabs network pickles (``.pkl``), rosinality ``.pt``, and our own safetensors format.
    Options (e.g. ``resolution=`` for FaceWorld) are passed as keyword arguments.
    """
    if str(path_or_name).lower() == FACEWORLD:
        from engine.generators.faceworld import FaceWorld

        return FaceWorld(**kwargs).to(device).eval()
    from engine.generators.checkpoints import load_checkpoint

    return load_checkpoint(path_or_name, device=device, **kwargs)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """Generator output [N, 3, H, W] in about [-1, 1] -> uint8 RGB images [N, H, W, 3] (numpy)."""
    import torch

    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"expected images [N, 3, H, W], got {tuple(img.shape)}")
    x = ((img.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()
