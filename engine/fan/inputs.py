"""The FAN's input preparation, shared by training and inference so the two can never drift apart.

``fan_inputs(src_points, tgt_points, config)`` -> [N, 2K, S, S]: the source and target heatmaps, both mapped with
ONE similarity transform computed from the source only (centroid, RMS radius, no rotation), so that the target's
yaw, roll, scale and translation relative to the source survive in its heatmaps.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.fan.config import FANConfig, default_points
from engine.landmarks.heatmaps import pixel_heatmaps


def _select(points: np.ndarray | torch.Tensor, idx: list[int]) -> torch.Tensor:
    p = torch.as_tensor(np.asarray(points) if not isinstance(points, torch.Tensor) else points).float()
    if p.ndim == 2:
        p = p[None]
    if p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"expected landmarks [N, P, 2], got {tuple(p.shape)}")
    if p.shape[1] == len(idx):
        return p
    from engine.landmarks import schema

    if p.shape[1] == schema.NUM_FACE_POINTS:  # the 78-point face set (iBUG-68 + irises): map mesh indices into it
        pos = {int(m): i for i, m in enumerate(schema.FACE)}
        if all(i in pos for i in idx):
            return p[:, [pos[i] for i in idx]]
    if p.shape[1] <= max(idx):
        raise ValueError(
            f"landmarks have {p.shape[1]} points; expected 478 (full mesh), 78 (face set) or {len(idx)} (selected)"
        )
    return p[:, idx]


def source_transform(src: torch.Tensor, config: FANConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The canonical similarity transform of the source points.

    Args: src [N, K, 2] pixels. Returns (center [N, 1, 2], scale [N, 1, 1], rot [N, 2, 2]) such that
    canonical = (p - center) @ rot / scale * (face_extent * S) + S / 2.
    """
    center = src.mean(dim=1, keepdim=True)
    radius = ((src - center).pow(2).sum(-1).mean(-1)).sqrt().clamp_min(1e-6)[:, None, None]
    n = src.shape[0]
    if config.align_rotation:
        # Eye line from the first and last thirds of the iBUG eye points would need the schema; use the principal
        # axis of the points instead (robust, schema-free).
        c = src - center
        cov = c.transpose(1, 2) @ c
        evals, evecs = torch.linalg.eigh(cov)
        axis = evecs[:, :, -1]
        axis = torch.where(axis[:, :1] < 0, -axis, axis)
        cos, sin = axis[:, 0], axis[:, 1]
        rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], 1)
    else:
        rot = torch.eye(2).expand(n, 2, 2)
    return center, radius, rot


def canonical_points(
    src_points: np.ndarray | torch.Tensor, tgt_points: np.ndarray | torch.Tensor, config: FANConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source and target landmarks mapped into the heatmap frame with the SOURCE's transform.

    Args: src_points, tgt_points: [N, 478, 2] or [N, K, 2] pixels (K = len(config.points)).
    Returns: ([N, K, 2], [N, K, 2]) in heatmap pixel coordinates (0..S).
    """
    idx = config.points or default_points()
    src = _select(src_points, idx)
    tgt = _select(tgt_points, idx)
    if src.shape != tgt.shape:
        raise ValueError(f"source {tuple(src.shape)} and target {tuple(tgt.shape)} landmarks differ in shape")
    center, radius, rot = source_transform(src, config)
    s = config.heatmap_size
    k = config.face_extent * s
    cs = (src - center) @ rot / radius * k + s / 2.0
    ct = (tgt - center) @ rot / radius * k + s / 2.0
    return cs, ct


def fan_inputs(
    src_points: np.ndarray | torch.Tensor, tgt_points: np.ndarray | torch.Tensor, config: FANConfig
) -> torch.Tensor:
    """Landmarks (pixels) -> FAN input: concatenated source and target heatmaps [N, 2K, S, S].

    Args:
        src_points: detected source landmarks, pixels, [N, 478, 2] (or the already-selected [N, K, 2]).
        tgt_points: detected target landmarks, same layout.
        config: the FAN's config (points, heatmap size/sigma, alignment).
    """
    cs, ct = canonical_points(src_points, tgt_points, config)
    hs = pixel_heatmaps(cs, config.heatmap_size, config.sigma)
    ht = pixel_heatmaps(ct, config.heatmap_size, config.sigma)
    return torch.cat([hs, ht], dim=1)
