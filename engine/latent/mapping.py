"""z -> w: seeded and batched mapping of a generator, and the device a generator lives on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from engine.generators.protocol import Generator


def generator_device(g: torch.nn.Module) -> torch.device:
    for t in list(g.parameters()) + list(g.buffers()):
        return t.device
    return torch.device("cpu")


@torch.no_grad()
def map_z(generator: torch.nn.Module, z: torch.Tensor, psi: float, batch: int = 1024) -> torch.Tensor:
    """z [N, z_dim] -> ws [N, num_ws, w_dim] on the CPU (float32), in batches."""
    dev = generator_device(generator)
    out = [
        generator.mapping(z[i : i + batch].to(dev), None, truncation_psi=psi).float().cpu()
        for i in range(0, z.shape[0], batch)
    ]
    return torch.cat(out) if out else torch.zeros(0, generator.num_ws, generator.w_dim)


def shard_z(generator: Generator, seed: int, index: int, n: int) -> torch.Tensor:
    """The z of shard ``index``: a deterministic function of (seed, index), so resume never changes the data."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(index))
    return torch.randn(n, generator.z_dim, generator=g)


def seed_z(generator: Generator, seeds: list[int]) -> torch.Tensor:
    """z [len(seeds), z_dim]: row i drawn from ``torch.Generator().manual_seed(seeds[i])``, so one seed gives the same
    face whatever batch it is rendered in (``d2a render``, ``seed:N`` sources, ``ws_from_seed``)."""
    return torch.cat([torch.randn(1, generator.z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


def ws_from_seed(
    generator: Generator, seed: int, *, device: str | torch.device = "cpu", psi: float = 0.7
) -> torch.Tensor:
    """W+ code [1, num_ws, w_dim] of a seed: z ~ N(0, I) from ``torch.Generator().manual_seed(seed)``."""
    z = seed_z(generator, [seed])
    with torch.no_grad():
        return generator.mapping(z.to(device), None, truncation_psi=psi).float()
