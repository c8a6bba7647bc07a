"""Principal axes of a set of latent directions, and projection off them (the pose axes of a bank)."""

from __future__ import annotations

import torch


def principal_axes(vectors: torch.Tensor, rank: int) -> torch.Tensor:
    """Top ``rank`` principal axes (right singular vectors, not centred) of vectors [m, ...] -> [min(rank, m), F]."""
    _, _, vh = torch.linalg.svd(vectors.flatten(1), full_matrices=False)
    return vh[: min(rank, len(vectors))]


def project_out(flat: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """flat [m, F] without its components along the orthonormal rows of axes [r, F]."""
    return flat - (flat @ axes.T) @ axes
