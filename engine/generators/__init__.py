"""Generators with the StyleGAN2 interface.

Contract shared by every generator (StyleGAN2 checkpoints and the built-in FaceWorld)::

    g = load_generator(path_or_name, device="cpu")
    g.z_dim, g.w_dim, g.num_ws, g.c_dim, g.img_resolution, g.w_avg      # w_avg: Tensor [w_dim]
    ws  = g.mapping(z, c=None, truncation_psi=1.0)                       # [N, num_ws, w_dim]
    img = g.synthesis(ws, noise_mode="const")                            # [N, 3, H, W], raw float ~[-1, 1]

This contract is the ``Generator`` protocol (``engine.generators.protocol``). FaceWorld also satisfies
``GroundTruth`` (``decode``, parameter names), which the ground-truth measures ask for with
``require_ground_truth(g, "what")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.generators.protocol import Generator, GroundTruth, require_ground_truth

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["FACEWORLD", "Generator", "GroundTruth", "load_generator", "require_ground_truth"]

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
