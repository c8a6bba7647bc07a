"""The facial action network (FAN) of the AugDistiller and its loss.

``output="coeffs"``: the network predicts one coefficient per bank direction and returns ``coeffs @ bank`` (a few
dozen outputs instead of ``action_layers * w_dim``); ``output="full"`` predicts the full Δw of the action layers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engine.fan.config import FANConfig


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
