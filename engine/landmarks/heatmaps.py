"""THE Gaussian heatmaps of landmark sets: batched, differentiable, torch.

Pixel ``(i, j)`` of an ``S x S`` heatmap has its centre at ``(j + 0.5, i + 0.5)`` in heatmap pixels, so a point at
``(x, y)`` px peaks at column ``floor(x)``, row ``floor(y)``; ``sigma`` is in heatmap pixels. ``pixel_heatmaps``
takes points in heatmap pixels (the FAN's inputs, ``engine.fan.inputs``: its numbers are what the embedded FAN was
trained on, so ``gaussian`` and ``pixel_profiles`` must not change arithmetic); ``heatmaps`` takes canonical
``[0, 1]²`` coordinates (``u S`` px). The Gaussian is separable, so a per-point map costs one outer product of two
1-D profiles; per-group maps (the max over a group's points) are rendered sparsely around each point.
"""

from __future__ import annotations

import math
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


def _check(points, size: int, sigma: float) -> None:
    if points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f"heatmaps expects points [N, K, 2], got {tuple(points.shape)}")
    if size < 1 or sigma <= 0:
        raise ValueError(f"heatmaps needs size >= 1 and sigma > 0 (got {size}, {sigma})")


# exponent floor of the canonical maps (e^-40 ~ 4e-18): keeps exp fast and gradients finite far from the point
_FLOOR = -40.0


def gaussian(d, sigma: float, floor: float | None = None):
    """``exp(-0.5 (d / sigma)²)`` of offsets ``d`` (tensor, heatmap pixels); the exponent clamped at ``floor``."""
    import torch

    e = -0.5 * (d / sigma) ** 2
    return torch.exp(e if floor is None else e.clamp(min=floor))


def pixel_profiles(points, size: int, sigma: float, floor: float | None = None):
    """The separable 1-D profiles ``(gx, gy)`` [N, K, S] of points [N, K, 2] given in heatmap pixels."""
    import torch

    grid = torch.arange(size, dtype=points.dtype, device=points.device) + 0.5  # pixel centres
    gx = gaussian(grid[None, None, :] - points[..., 0:1], sigma, floor)
    gy = gaussian(grid[None, None, :] - points[..., 1:2], sigma, floor)
    return gx, gy


def pixel_heatmaps(points, size: int, sigma: float):
    """One Gaussian map per point, peak 1: points [N, K, 2] in heatmap pixels -> [N, K, S, S] (the FAN's input)."""
    gx, gy = pixel_profiles(points, size, sigma)
    return gy[..., :, None] * gx[..., None, :]


def _profiles(points, size: int, sigma: float):
    _check(points, size, sigma)
    return pixel_profiles(points * size, size, sigma, _FLOOR)


def heatmaps(points, size: int = 64, sigma: float = 1.5, groups: Sequence[np.ndarray] | Mapping | bool | None = None):
    """Gaussian heatmaps, peak value 1.

    points: ``[N, K, 2]`` torch tensor, canonical (x, y) in [0, 1] (see ``align.align_points``).
    size:   S, heatmap side.  sigma: standard deviation in heatmap pixels.
    groups: None/False -> one map per point, ``[N, K, S, S]``.
            True -> the region groups of ``schema.region_groups(K)`` (K = 478, 78 or 68), ``[N, G, S, S]``.
            A sequence (or mapping) of index arrays -> one map per group, the max over its points, ``[N, G, S, S]``.
    Differentiable w.r.t. ``points``. Group maps are rendered sparsely (values below 4e-6, beyond 5 sigma, are 0).
    """
    import torch

    if not isinstance(points, torch.Tensor):
        points = torch.as_tensor(np.asarray(points), dtype=torch.float32)
    if not points.is_floating_point():
        points = points.float()
    _check(points, size, sigma)
    if groups is None or groups is False:
        gx, gy = _profiles(points, size, sigma)
        n, k, s = gx.shape
        # outer products as a batched matmul: same forward as broadcasting, but a 2x cheaper backward (matvecs)
        return torch.bmm(gy.reshape(n * k, s, 1), gx.reshape(n * k, 1, s)).view(n, k, s, s)  # [N, K, S, S]
    if groups is True:
        groups = region_groups(points.shape[1])
    if isinstance(groups, Mapping):
        groups = list(groups.values())
    groups = [np.asarray(g, dtype=np.int64).reshape(-1) for g in groups]
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("heatmaps: every group needs at least one point index")
    if points.shape[0] == 0:
        return points.new_zeros(0, len(groups), size, size)
    return _group_maps(points, size, sigma, groups)


def _group_maps(points, size: int, sigma: float, groups: list[np.ndarray]):
    """Per-group max of the point Gaussians, rendered sparsely: each point only touches the
    ``(2r+1)²`` pixels around it (``r = ceil(5 sigma)``; the Gaussian is below 4e-6 beyond), merged with a
    scatter-max. ~10x less work than building every per-point map, and a backward of the same size."""
    import torch

    n, s, dev = points.shape[0], int(size), points.device
    member = torch.as_tensor(np.concatenate(groups), device=dev)  # a point may belong to several groups
    gid = torch.as_tensor(np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)]), device=dev)
    p = points[:, member]  # [N, M, 2]
    m = p.shape[1]
    r = min(int(math.ceil(5.0 * sigma)), s)
    off = torch.arange(-r, r + 1, device=dev)
    px = p * s  # heatmap pixels
    centre = torch.floor(px.detach()).long()  # [N, M, 2] pixel holding each point
    cols = centre[..., 0:1] + off  # [N, M, P]
    rows = centre[..., 1:2] + off
    gx = gaussian(cols.to(p.dtype) + 0.5 - px[..., 0:1], sigma, _FLOOR)
    gy = gaussian(rows.to(p.dtype) + 0.5 - px[..., 1:2], sigma, _FLOOR)
    vals = gy.unsqueeze(-1) * gx.unsqueeze(-2)  # [N, M, P, P]
    inside = ((rows >= 0) & (rows < s)).unsqueeze(-1) & ((cols >= 0) & (cols < s)).unsqueeze(-2)
    flat = gid.view(1, m, 1, 1) * (s * s) + rows.clamp(0, s - 1).unsqueeze(-1) * s + cols.clamp(0, s - 1).unsqueeze(-2)
    dump = len(groups) * s * s  # one extra slot collects the pixels that fall outside the map
    flat = torch.where(inside, flat, torch.full_like(flat, dump))
    out = torch.zeros(n, dump + 1, dtype=p.dtype, device=dev)
    out = out.scatter_reduce(1, flat.reshape(n, -1), vals.reshape(n, -1), reduce="amax", include_self=True)
    return out[:, :dump].view(n, len(groups), s, s)


def argmax_points(maps):
    """Canonical (x, y) of the maximum of each map: ``[N, C, S, S] -> [N, C, 2]`` (pixel-centre precision)."""
    import torch

    n, c, s, _ = maps.shape
    flat = maps.reshape(n, c, s * s).argmax(-1)
    rows, cols = flat // s, flat % s
    return (torch.stack([cols, rows], dim=-1).to(maps.dtype) + 0.5) / s
