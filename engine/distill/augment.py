"""AugDistiller augmentation: random combinations of bank directions with a per-layer re-norm against w̄.

    Δw = Σᵢ rᵢ vᵢ,  rᵢ ~ U(−1, 1)
    w_t = w_s + Δw, then for every layer l:  if ‖w_t,l − w̄‖ > τ_l:  w_t,l ← w̄ + τ_l (w_t,l − w̄) / ‖w_t,l − w̄‖
    (τ_l raised to ‖w_s,l − w̄‖ when the source itself lies further out, so layers without Δw stay untouched)
    Δw ← w_t − w_s   (the training target, after the re-norm)

The thresholds τ_l come from :func:`measure_layer_radii`: a percentile of ‖w_l − w̄‖ over random samples of the
generator (default the 99th percentile, see ``docs/RESULTS.md``, 'Augmentation: re-norm and eye range'), so a
target is never further from w̄ than almost all natural samples of the generator - varied actions without leaving
the region the generator renders well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from engine.landmarks.schema import EYE_REGIONS
from engine.latent.bank import Direction, as_directions


@dataclass
class AugmentConfig:
    """Augmentation settings of the AugDistiller."""

    coeff_range: float = 1.0  # rᵢ ~ U(−coeff_range, coeff_range)
    active_fraction: float = 1.0  # fraction of directions with a nonzero rᵢ per sample (1.0 = the paper)
    renorm_percentile: float = 99.0  # τ_l = this percentile of ‖w_l − w̄‖ over random samples
    truncation_psi: float = 1.0  # of the source samples w_s
    direction_ranges: tuple[float, ...] = ()  # per bank direction, a factor on coeff_range (empty = all 1); see
    #                                         ``eye_ranges``


def eye_ranges(infos: Iterable[Direction | Mapping[str, Any]], eye_range: float) -> tuple[float, ...]:
    """``AugmentConfig.direction_ranges`` giving the eye directions of a bank (infos from ``load_directions``) the
    range ``eye_range`` and every other direction 1. Why: a localised bank's eye directions each close an eye by about
    3σ; with the full range the training pairs are full of half-closed eyes and the FAN read a head turn's narrowing
    far eye as a blink (blink error on the sample clip's turned frames 0.397; 0.021 at 0.5: RESULTS.md,
    'Augmentation: re-norm and eye range')."""
    return tuple(float(eye_range) if str(d.region) in EYE_REGIONS else 1.0 for d in as_directions(infos))


@torch.no_grad()
def measure_layer_radii(
    generator: torch.nn.Module, samples: int = 2000, seed: int = 0, batch: int = 500
) -> torch.Tensor:
    """‖w_l − w̄‖ per sample and layer over random z. Returns [samples, num_ws] (CPU float32)."""
    gen = torch.Generator().manual_seed(seed)
    w_avg = generator.w_avg.detach().float().cpu()
    out = []
    done = 0
    while done < samples:
        n = min(batch, samples - done)
        z = torch.randn(n, generator.z_dim, generator=gen)
        ws = generator.mapping(z.to(_device(generator)), None).float().cpu()
        out.append((ws - w_avg[None, None]).norm(dim=-1))
        done += n
    return torch.cat(out)


def _device(module: torch.nn.Module) -> torch.device:
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return torch.device("cpu")


def renorm_thresholds(radii: torch.Tensor, percentile: float) -> torch.Tensor:
    """Per-layer threshold τ [num_ws] = ``percentile`` of the measured radii [samples, num_ws]."""
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    return torch.quantile(radii.float(), percentile / 100.0, dim=0)


def renorm(
    w_t: torch.Tensor, w_avg: torch.Tensor, tau: torch.Tensor, floor: torch.Tensor | None = None
) -> torch.Tensor:
    """Pull every layer of w_t [N, L, D] back inside the ball ‖w_t,l − w̄‖ ≤ τ_l (w_avg [D], tau [L]).

    ``floor`` [N, L] raises the threshold per sample (the source's own radius), so that a source that is already
    outside the ball is never pulled inwards by the re-norm alone.
    """
    d = w_t - w_avg[None, None]
    norm = d.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    limit = tau[None, :, None].to(d).expand_as(norm)
    if floor is not None:
        limit = torch.maximum(limit, floor[..., None].to(d))
    scale = limit / norm
    return torch.where(scale < 1.0, w_avg[None, None] + d * scale, w_t)  # untouched layers stay bit-exact


def sample_delta(
    bank: torch.Tensor, n: int, config: AugmentConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Δw = Σ rᵢ vᵢ for n samples. bank [K, L, D] -> (Δw [n, L, D], r [n, K])."""
    k = bank.shape[0]
    r = (torch.rand(n, k, generator=generator) * 2.0 - 1.0) * config.coeff_range
    if config.direction_ranges:
        if len(config.direction_ranges) != k:
            raise ValueError(f"direction_ranges has {len(config.direction_ranges)} entries for a bank of {k}")
        r = r * torch.tensor(config.direction_ranges, dtype=r.dtype)
    if config.active_fraction < 1.0:
        keep = torch.rand(n, k, generator=generator) < config.active_fraction
        r = r * keep
    r = r.to(bank)
    return torch.einsum("nk,kld->nld", r, bank), r


def augment(
    w_s: torch.Tensor,
    bank: torch.Tensor,
    w_avg: torch.Tensor,
    tau: torch.Tensor,
    config: AugmentConfig,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Make targets for sources w_s [N, L, D]: returns (w_t [N, L, D], Δw = w_t − w_s [N, L, D], r [N, K])."""
    if w_s.ndim != 3 or bank.ndim != 3 or w_s.shape[1:] != bank.shape[1:]:
        raise ValueError(f"w_s {tuple(w_s.shape)} and bank {tuple(bank.shape)} must be [N, L, D] and [K, L, D]")
    dw, r = sample_delta(bank, w_s.shape[0], config, generator)
    w_avg = w_avg.to(w_s)
    floor = (w_s - w_avg[None, None]).norm(dim=-1)
    w_t = renorm(w_s + dw, w_avg, tau.to(w_s), floor=floor)
    return w_t, w_t - w_s, r
