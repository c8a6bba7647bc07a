"""Torch backends: the generator's own synthesis (reference) or ``FastSynthesis``, fp32 or bf16 autocast."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from engine.runtime.base import Backend, RuntimeConfig
from engine.runtime.export import is_stylegan2


class TorchBackend(Backend):
    """Torch eager (optionally ``torch.compile``): ``path="reference"`` calls ``generator.synthesis(ws, "const")``,
    ``path="fast"`` runs ``FastSynthesis`` (StyleGAN2 only). ``precision="bf16"`` runs under CPU autocast."""

    def __init__(self, generator: nn.Module, config: RuntimeConfig) -> None:
        config.validate()
        super().__init__(config, generator.num_ws, generator.w_dim)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.generator = generator.eval()
        if config.path == "fast":
            if not is_stylegan2(generator):
                raise ValueError("path='fast' needs a StyleGAN2 generator; FaceWorld and others run path='reference'")
            from engine.runtime.fast_synthesis import FastSynthesis, FastSynthesisConfig

            self.module: Any = FastSynthesis(generator, FastSynthesisConfig(**config.extra))
        else:
            self.module = _Synthesis(generator)
        self.fn: Any = torch.compile(self.module, dynamic=True) if config.compile else self.module
        self.name = config.describe()
        self.providers = [f"torch-{next(generator.parameters(), torch.empty(0)).device.type}"]
        if config.warmup_runs:
            self.warmup()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.config.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def __call__(self, ws: torch.Tensor) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> img [N, 3, H, W] float32."""
        self.check_ws(ws)
        # torch.compile guards trip over inference-mode tensors (dispatch-key mismatch): plain no_grad there
        grad_off = torch.no_grad() if self.config.compile else torch.inference_mode()
        with grad_off, self._autocast():
            return self.fn(ws.float()).float()


class _Synthesis(nn.Module):
    """``generator.synthesis(ws, noise_mode="const")`` as a module (for torch.compile and export)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.generator.synthesis(ws, noise_mode="const")
