"""The facial action network (FAN) of the AugDistiller and its shared input preprocessing.

The FAN turns a landmark change into a latent change::

    x  = fan_inputs(src_points, tgt_points, config)     # [N, 2K, S, S]  Gaussian heatmaps, source then target
    dw = fan(x)                                        # [N, num_ws, w_dim]  zeros beyond the action layers

``fan_inputs`` is the ONLY preprocessing path: training (``engine.distill.train``) and inference (the Animator)
both call it, so the two can never drift apart.

Design (chosen by measurement, see ``docs/RESULTS.md`` and :class:`FANConfig`):

* **Points.** The 68 iBUG points of the 478-point mesh plus the 10 iris points (78 points, one heatmap channel per
  point): the iBUG subset carries jaw, brows, eyelids and lips; the irises carry gaze, which the iBUG set lacks.
* **Alignment.** One similarity transform is computed from the SOURCE only (translation = centroid of its points,
  scale = RMS radius of its points, no rotation) and applied to BOTH point sets. Aligning each set separately
  would normalise yaw/roll/scale/translation differences away; with a common source transform they survive in
  the target heatmaps. Rotation is not removed so that the absolute head roll of the source stays visible too.
* **Output.** ``output="coeffs"``: the network predicts one coefficient per bank direction and returns
  ``coeffs @ bank`` (a few dozen outputs instead of ``action_layers * w_dim``); ``output="full"`` predicts the full
  Δw of the action layers directly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn


def default_points() -> list[int]:
    """Indices (into the 478-point mesh) of the points the FAN sees: iBUG-68 + the 10 iris points."""
    from engine.landmarks import schema

    idx = [int(i) for i in np.asarray(schema.IBUG68).tolist()]
    irises = [int(i) for i in np.asarray(schema.REGIONS["irises"]).tolist()]
    return idx + [i for i in irises if i not in idx]


@dataclass
class FANConfig:
    """Everything needed to rebuild a FAN and its preprocessing (saved in ``bundle.json``)."""

    num_ws: int = 14  # latent layers of the generator
    w_dim: int = 512  # width of one latent
    action_layers: int = 8  # Δw is predicted on ws[:, :action_layers]; zeros beyond
    points: list[int] = field(default_factory=list)  # indices into the 478 mesh; [] -> default_points()
    heatmap_size: int = 32  # S: side of the heatmaps in pixels
    sigma: float = 1.0  # Gaussian std in heatmap pixels
    face_extent: float = 0.30  # RMS radius of the source points maps to face_extent * S
    align_rotation: bool = False  # also remove the source's in-plane rotation (default: keep it)
    output: str = "coeffs"  # "coeffs" (over the bank) | "full" (Δw of the action layers)
    num_directions: int = 0  # bank size (for output="coeffs")
    width: int = 32  # channels of the first conv block (doubles per block)
    hidden: int = 256  # width of the fully connected layer

    def __post_init__(self) -> None:
        if self.output not in ("coeffs", "full"):
            raise ValueError(f"FANConfig.output must be 'coeffs' or 'full', got {self.output!r}")
        if not 0 < self.action_layers <= self.num_ws:
            raise ValueError(f"action_layers must be in 1..num_ws={self.num_ws}, got {self.action_layers}")
        if self.heatmap_size < 16:
            raise ValueError(f"heatmap_size must be >= 16, got {self.heatmap_size}")

    def resolved(self) -> FANConfig:
        """A copy with ``points`` filled in (default points when empty)."""
        d = asdict(self)
        if not d["points"]:
            d["points"] = default_points()
        return FANConfig(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FANConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# ---------------------------------------------------------------------------------------------------------------
# Preprocessing shared by training and inference
# ---------------------------------------------------------------------------------------------------------------


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


def render_heatmaps(points: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Gaussian heatmaps, one channel per point. points [N, K, 2] (heatmap pixels) -> [N, K, S, S] in [0, 1]."""
    grid = torch.arange(size, dtype=points.dtype, device=points.device) + 0.5
    dx = grid[None, None, :] - points[..., 0:1]  # [N, K, S]
    dy = grid[None, None, :] - points[..., 1:2]
    gx = torch.exp(-0.5 * (dx / sigma) ** 2)
    gy = torch.exp(-0.5 * (dy / sigma) ** 2)
    return gy[..., :, None] * gx[..., None, :]


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
    hs = render_heatmaps(cs, config.heatmap_size, config.sigma)
    ht = render_heatmaps(ct, config.heatmap_size, config.sigma)
    return torch.cat([hs, ht], dim=1)


# ---------------------------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------------------------


class _Block(nn.Module):
    """conv3x3 stride 2 -> GroupNorm -> LeakyReLU -> conv3x3 -> GroupNorm -> LeakyReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=2, padding=1),
            nn.GroupNorm(8, cout),
            nn.LeakyReLU(0.2),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.GroupNorm(8, cout),
            nn.LeakyReLU(0.2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FAN(nn.Module):
    """Heatmaps [N, 2K, S, S] -> Δw [N, num_ws, w_dim] (zeros beyond ``config.action_layers``).

    ``bank`` ([n, num_ws, w_dim], the CluDistiller directions) is required for ``output="coeffs"``; it is stored
    as a buffer (its action layers only) so that a saved FAN is self-contained.
    """

    def __init__(self, config: FANConfig, bank: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config.resolved()
        c = self.config
        k = len(c.points)
        w = c.width
        blocks = [_Block(2 * k, w), _Block(w, 2 * w), _Block(2 * w, 4 * w)]
        if c.heatmap_size >= 48:
            blocks.append(_Block(4 * w, 4 * w))
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(3)
        if c.output == "coeffs":
            if bank is None:
                if c.num_directions <= 0:
                    raise ValueError("output='coeffs' needs the bank (or num_directions to load one)")
                bank = torch.zeros(c.num_directions, c.num_ws, c.w_dim)
            if bank.ndim != 3 or bank.shape[1:] != (c.num_ws, c.w_dim):
                raise ValueError(f"bank must be [n, {c.num_ws}, {c.w_dim}], got {tuple(bank.shape)}")
            self.config.num_directions = int(bank.shape[0])
            n_out = int(bank.shape[0])
            self.register_buffer("bank", bank[:, : c.action_layers].detach().float().clone())
        else:
            n_out = c.action_layers * c.w_dim
            self.register_buffer("bank", torch.zeros(0, c.action_layers, c.w_dim))
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(4 * w * 9, c.hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(c.hidden, n_out),
        )
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward_coeffs(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """Raw head output: [N, n] coefficients (coeffs mode) or [N, action_layers * w_dim] (full mode)."""
        c = self.config
        if heatmaps.ndim != 4 or heatmaps.shape[1] != 2 * len(c.points):
            raise ValueError(f"expected heatmaps [N, {2 * len(c.points)}, S, S], got {tuple(heatmaps.shape)}")
        return self.head(self.pool(self.features(heatmaps)))

    def forward(self, heatmaps: torch.Tensor) -> torch.Tensor:
        c = self.config
        out = self.forward_coeffs(heatmaps)
        n = out.shape[0]
        if c.output == "coeffs":
            act = torch.einsum("nk,kld->nld", out, self.bank)
        else:
            act = out.view(n, c.action_layers, c.w_dim)
        rest = act.new_zeros(n, c.num_ws - c.action_layers, c.w_dim)
        return torch.cat([act, rest], dim=1)


# ---------------------------------------------------------------------------------------------------------------
# The loss
# ---------------------------------------------------------------------------------------------------------------


def log_cosh(x: torch.Tensor) -> torch.Tensor:
    """Elementwise log(cosh(x)), stable for large |x|: |x| + log1p(exp(-2|x|)) - log 2."""
    a = x.abs()
    return a + torch.nn.functional.softplus(-2.0 * a) - float(np.log(2.0))


def fan_loss(
    pred: torch.Tensor, target: torch.Tensor, lam: float = 0.1, action_layers: int | None = None
) -> torch.Tensor:
    """The AugDistiller loss  L = log cosh(Δw̃ − Δw) + λ ‖Δw̃ − Δw‖₂, averaged over the batch.

    For one sample the log cosh of the residual vector is the sum of the elementwise log cosh over the action
    layers, and ‖·‖₂ its Euclidean norm. pred, target: [N, num_ws, w_dim] (only ``[:, :action_layers]`` counts).
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    d = pred - target
    if action_layers is not None:
        d = d[:, :action_layers]
    d = d.flatten(1)
    return (log_cosh(d).sum(1) + lam * d.norm(dim=1)).mean()
