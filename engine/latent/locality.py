"""Localisation of expression directions: keep what a direction does inside its region, remove what it does outside.

A cluster-mean direction of, say, the eyes region also carries whatever else differs between the clusters' faces:
the identity's face width or nose length, a little head pitch. Those change pixels *outside* the eyes, an eyelid
or an iris does not. For every expression region this module estimates, over a few rendered sources, the
out-of-region Gram matrix of the generator's Jacobian with respect to a shared offset of the action layers::

    H_out = E_sources[ J_out^T J_out ]        J_out = d(pixels outside the region's box) / d(offset)   [D, D]

(random-probe estimate: ``E_u[(J^T u)(J^T u)^T]`` with Gaussian pixel probes u, one backward pass each), and
replaces each direction v of that region by the ridge solution::

    v' = argmin_x ||J_out x||^2 + tau ||x - v||^2 = tau (H_out + tau I)^{-1} v

Components that change the outside a lot (identity shape, pose, other regions' actions) are removed; components
that change it little (the region's own action) stay. A jaw opening also lengthens the face a little, so the
removal is soft (ridge), not a hard null-space projection: with the exact null space of H_out the jaw directions
vanished on FaceWorld (RESULTS.md, "Localised expression directions"). ``tau`` is relative to the largest
eigenvalue of H_out, so it does not depend on resolution or probe count. The same [D, D] filter is applied to each
action layer of a direction (exact for directions repeated over the action layers, as cluster means of W samples
are). Regions of the "pose" group are left alone: a head turn changes every pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.landmarks import schema

_R = schema.Region


def _ints(*index_arrays: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for a in index_arrays for i in a)


# Each expression region's mask is the union of padded boxes around these groups of points (78-point face set);
# separate boxes per eye and per brow, so that what lies between them (the nose bridge) counts as outside. The
# mouth box includes the jaw contour below the ears (iBUG 2-14) and reaches further down (``mouth_down``): opening
# the jaw moves the chin.
_EYE = {side: _ints(schema.FACE_EYE_LIDS[side], schema.FACE_EYE_IRISES[side]) for side in (_R.EYE_RIGHT, _R.EYE_LEFT)}
_RE, _LE = _EYE[_R.EYE_RIGHT], _EYE[_R.EYE_LEFT]
REGION_PARTS: dict[str, tuple[tuple[int, ...], ...]] = {
    _R.MOUTH: (_ints(schema.FACE_REGIONS[_R.MOUTH], schema.FACE_REGIONS[_R.JAW][2:15]),),
    _R.EYES: (_RE, _LE),
    _R.IRISES: (_RE, _LE),
    _R.EYE_RIGHT: (_RE,),
    _R.EYE_LEFT: (_LE,),
    _R.BROWS: (_ints(schema.IBUG_RIGHT_BROW), _ints(schema.IBUG_LEFT_BROW)),
    _R.JAW: (_ints(schema.FACE_REGIONS[_R.JAW]),),
}


@dataclass
class LocalityConfig:
    """Settings of ``localise_directions`` (defaults measured on FaceWorld: RESULTS.md)."""

    sources: int = 8  # rendered sources the Jacobian Gram matrix is averaged over
    probes: int = 16  # random pixel probes (backward passes) per source and region
    tau: float = 2e-6  # ridge strength relative to the largest eigenvalue of H_out (smaller = stronger removal)
    pad: float = 0.15  # box padding in inter-ocular distances (+ 1 px)
    mouth_down: float = 0.4  # extra extent of the mouth box below the chin, in inter-ocular distances
    rescale_cap: float = 2.0  # at most this gain when giving a localised direction back its region's effect
    regions: tuple[str, ...] = tuple(REGION_PARTS)  # expression regions whose directions are localised
    seed: int = 0


def region_mask(points: np.ndarray, region: str, size: int, pad: float = 0.15, mouth_down: float = 0.4) -> torch.Tensor:
    """Mask [size, size] (1 inside) of ``region`` for one face: the union of its parts' bounding boxes (points
    [78, 2] in pixels), each padded by ``pad`` inter-ocular distances; the mouth's also ``mouth_down`` further down."""
    if region not in REGION_PARTS:
        raise ValueError(f"no mask for region {region!r}; choose from {', '.join(REGION_PARTS)}")
    p = np.asarray(points, np.float64)
    iod = float(np.linalg.norm(p[schema.IBUG_RIGHT_EYE].mean(0) - p[schema.IBUG_LEFT_EYE].mean(0)))
    margin = pad * iod + 1.0
    c = torch.arange(size, dtype=torch.float64) + 0.5
    mask = torch.zeros(size, size, dtype=torch.bool)
    down = mouth_down * iod if region == _R.MOUTH else 0.0
    for part in REGION_PARTS[region]:
        lo, hi = p[list(part)].min(0), p[list(part)].max(0)
        inside_x = (c >= lo[0] - margin) & (c <= hi[0] + margin)
        inside_y = (c >= lo[1] - margin) & (c <= hi[1] + margin + down)
        mask |= inside_y[:, None] & inside_x[None, :]
    return mask.float()


def outside_gram(
    generator: torch.nn.Module, ws: torch.Tensor, masks: torch.Tensor, probes: int, action_layers: int,
    seed: int = 0,
) -> torch.Tensor:
    """E[J_out^T J_out] [D, D] (float64) over sources ws [M, L, D] with in-region masks [M, H, W] (1 = inside).

    J_out is the Jacobian of the out-of-region pixels with respect to one offset added to ws[:, :action_layers].
    """
    from engine.latent.mapping import generator_device

    dev = generator_device(generator)
    g = torch.Generator(device="cpu").manual_seed(seed)
    d = ws.shape[-1]
    gram = torch.zeros(d, d, dtype=torch.float64)
    for i in range(len(ws)):
        offset = torch.zeros(d, device=dev, requires_grad=True)
        w = ws[i : i + 1].to(dev).clone()
        w = torch.cat([w[:, :action_layers] + offset, w[:, action_layers:]], 1)
        img = generator.synthesis(w, noise_mode="const")[0].float()  # [C, H, W]
        if img.shape[-1] != masks.shape[-1]:
            raise ValueError(f"mask size {masks.shape[-1]} != image size {img.shape[-1]}")
        outside = (1.0 - masks[i]).to(dev, img.dtype)
        for _ in range(probes):
            u = torch.randn(img.shape, generator=g).to(dev, img.dtype) * outside
            (grad,) = torch.autograd.grad(img, offset, u, retain_graph=True)
            grad = grad.detach().double().cpu()
            gram += torch.outer(grad, grad)
    return gram / max(len(ws) * probes, 1)


def ridge_filter(gram: torch.Tensor, tau: float) -> torch.Tensor:
    """tau' (H + tau' I)^{-1} with tau' = tau * lambda_max(H): the [D, D] localising filter (float64)."""
    lam, vec = torch.linalg.eigh(gram.double())
    lam = lam.clamp_min(0.0)
    t = max(float(tau) * float(lam.max()), 1e-30)
    return (vec * (t / (lam + t))) @ vec.T


def source_filter(
    generator: torch.nn.Module, ws: torch.Tensor, points_478: np.ndarray, region: str, probes: int,
    action_layers: int, tau: float = LocalityConfig.tau, seed: int = 0,
) -> torch.Tensor:
    """The localising filter [D, D] (float64) of ``region`` around ONE code ws [1, L, D], its box placed by that
    face's mediapipe landmarks [478, 2] (pixels of the generator's image). Used by the inversion's region search
    and the Animator's sliders; ``localise_directions`` averages over several rendered sources instead."""
    size = int(generator.img_resolution)
    mask = region_mask(schema.to_face(np.asarray(points_478, np.float32)), region, size)[None]
    return ridge_filter(outside_gram(generator, ws, mask, probes, action_layers, seed), tau)


def localise_directions(
    directions: torch.Tensor,
    infos: list[dict[str, Any]],
    generator: torch.nn.Module,
    renderer: Any,
    config: LocalityConfig,
    action_layers: int,
    progress: bool = True,
) -> torch.Tensor:
    """Localise every expression direction whose region has a mask. directions [n, L, D] -> [n, L, D].

    ``renderer`` is a ``LandmarkRenderer`` (its landmarks place the masks). ``infos`` entries get ``localised``:
    the direction's norm ratio after/before.
    """
    from tqdm import tqdm

    from engine.latent.mapping import map_z

    regions = sorted({str(i.get("region")) for i in infos if i.get("group") == "expression"} & set(config.regions))
    out = directions.clone()
    if not regions:
        return out
    z = torch.randn(config.sources, generator.z_dim, generator=torch.Generator().manual_seed(config.seed + 104729))
    ws = map_z(generator, z, 1.0)
    points, found = renderer.landmarks(ws)
    if not found.any():
        raise RuntimeError("localisation: no face detected in any of its source renders")
    ws, points = ws[torch.from_numpy(found)], points[found]
    size = int(generator.img_resolution)
    det = renderer.detect_size or size
    points = points * (size / det)
    for region in tqdm(regions, desc="localising", unit="region", disable=not progress):
        masks = torch.stack([region_mask(p, region, size, config.pad, config.mouth_down) for p in points])
        gram = outside_gram(generator, ws, masks, config.probes, action_layers, config.seed)
        filt = ridge_filter(gram, config.tau).float()
        for i, info in enumerate(infos):
            if info.get("group") == "expression" and info.get("region") == region:
                before = float(out[i].norm())
                out[i, :action_layers] = out[i, :action_layers] @ filt  # filt is symmetric
                info["localised"] = round(float(out[i].norm()) / max(before, 1e-12), 4)
    return out


# Landmark-effect keys (``cludistiller.region_effects``) that show a region's own action: after localisation a
# direction is rescaled so that these move as much as before (the ridge also shrinks the action a little).
REGION_EFFECT_KEYS: dict[str, tuple[str, ...]] = {
    _R.MOUTH: (_R.MOUTH,),
    _R.EYES: (_R.EYES, _R.IRISES),
    _R.IRISES: (_R.IRISES,),
    _R.EYE_RIGHT: (_R.EYES, _R.IRISES),
    _R.EYE_LEFT: (_R.EYES, _R.IRISES),
    _R.BROWS: (_R.BROWS,),
    _R.JAW: (_R.JAW,),
}


def amplitude_factor(region: str, before: dict[str, float], after: dict[str, float], cap: float) -> float:
    """Scale (1..cap) that gives a localised direction back its region's landmark effect measured before."""
    keys = REGION_EFFECT_KEYS.get(region, ())
    b = max((before.get(k, 0.0) for k in keys), default=0.0)
    a = max((after.get(k, 0.0) for k in keys), default=0.0)
    if a <= 1e-9 or b <= 0.0:
        return 1.0
    return float(min(max(b / a, 1.0), cap))
