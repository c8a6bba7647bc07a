"""Batched, differentiable Gaussian heatmaps of landmark sets given in canonical ``[0, 1]²`` coordinates.

Pixel ``(i, j)`` of an ``S x S`` heatmap has its centre at ``((j + 0.5) / S, (i + 0.5) / S)`` in canonical
coordinates, so a point at ``(u, v)`` peaks at column ``floor(u S)``, row ``floor(v S)``. ``sigma`` is in heatmap
pixels. The Gaussian is separable, so a per-point map costs one outer product of two 1-D profiles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.landmarks.schema import region_groups


@dataclass
class HeatmapConfig:
    """Heatmap rendering options."""

    size: int = 64  # S: heatmap side in pixels
    sigma: float = 1.5  # Gaussian standard deviation, in heatmap pixels
    groups: bool = False  # True: one map per region group (max over its points) instead of one per point


def _profiles(points, size: int, sigma: float):
    import torch

    if points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f"heatmaps expects points [N, K, 2], got {tuple(points.shape)}")
    if size < 1 or sigma <= 0:
        raise ValueError(f"heatmaps needs size >= 1 and sigma > 0 (got {size}, {sigma})")
    grid = (torch.arange(size, device=points.device, dtype=points.dtype) + 0.5) / size  # [S]
    scale = float(size) / float(sigma)
    # exponent clamped at -40 (e^-40 ~ 4e-18): keeps exp fast and gradients finite far from the point
    dx = (grid.view(1, 1, -1) - points[..., 0:1]) * scale  # [N, K, S]
    dy = (grid.view(1, 1, -1) - points[..., 1:2]) * scale
    gx = torch.exp((-0.5 * dx * dx).clamp(min=-40.0))
    gy = torch.exp((-0.5 * dy * dy).clamp(min=-40.0))
    return gx, gy


def heatmaps(points, size: int = 64, sigma: float = 1.5, groups: Sequence[np.ndarray] | Mapping | bool | None = None):
    """Gaussian heatmaps, peak value 1.

    points: ``[N, K, 2]`` torch tensor, canonical (x, y) in [0, 1] (see ``align.align_points``).
    size:   S, heatmap side.  sigma: standard deviation in heatmap pixels.
    groups: None/False -> one map per point, ``[N, K, S, S]``.
            True -> the region groups of ``schema.region_groups(K)`` (K = 478, 78 or 68), ``[N, G, S, S]``.
            A sequence (or mapping) of index arrays -> one map per group, the max over its points, ``[N, G, S, S]``.
    Differentiable w.r.t. ``points``.
    """
    import torch

    if not isinstance(points, torch.Tensor):
        points = torch.as_tensor(np.asarray(points), dtype=torch.float32)
    if not points.is_floating_point():
        points = points.float()
    gx, gy = _profiles(points, size, sigma)
    if groups is None or groups is False:
        return gy.unsqueeze(-1) * gx.unsqueeze(-2)  # [N, K, S, S]
    if groups is True:
        groups = region_groups(points.shape[1])
    if isinstance(groups, Mapping):
        groups = list(groups.values())
    n, s = points.shape[0], gx.shape[-1]
    maps = []
    for idx in groups:
        it = torch.as_tensor(np.asarray(idx), dtype=torch.long, device=points.device)
        k = int(it.numel())
        # outer products as a batched matmul (cheap backward), then max with indices (backward scatters only
        # into the winning point of each pixel instead of building an equality mask like amax)
        m = torch.bmm(gy[:, it].reshape(n * k, s, 1), gx[:, it].reshape(n * k, 1, s)).view(n, k, s, s)
        maps.append(m.max(dim=1).values)
    return torch.stack(maps, dim=1)


def argmax_points(maps):
    """Canonical (x, y) of the maximum of each map: ``[N, C, S, S] -> [N, C, 2]`` (pixel-centre precision)."""
    import torch

    n, c, s, _ = maps.shape
    flat = maps.reshape(n, c, s * s).argmax(-1)
    rows, cols = flat // s, flat % s
    return (torch.stack([cols, rows], dim=-1).to(maps.dtype) + 0.5) / s
