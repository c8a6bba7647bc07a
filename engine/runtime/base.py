"""The inference-backend interface and its configuration (no heavy imports here).

A backend renders W+ codes: ``backend(ws [N, num_ws, w_dim] float32) -> img [N, 3, H, W] float32 ~[-1, 1]``
(a torch tensor on the CPU). The Animator takes any backend through ``Animator(..., backend=...)``.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

BACKENDS = ("torch", "onnxruntime")
TORCH_PATHS = ("reference", "fast")
PRECISIONS = ("fp32", "bf16", "fp16")
ORT_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
PROVIDER_ALIASES = {
    "tensorrt": ORT_PROVIDERS[0],
    "trt": ORT_PROVIDERS[0],
    "cuda": ORT_PROVIDERS[1],
    "cpu": ORT_PROVIDERS[2],
}


class BackendError(RuntimeError):
    """A backend cannot be created as configured (missing provider with ``on_unavailable="error"``, bad model)."""


class ProviderFallbackWarning(RuntimeWarning):
    """A requested execution provider is not in use; the session runs on a later one in the list."""


@dataclass
class RuntimeConfig:
    """How the generator is run (the runtime subsystem's one config)."""

    backend: str = "torch"  # "torch" | "onnxruntime"
    path: str = "reference"  # "reference" (the generator's own synthesis) | "fast" (FastSynthesis, StyleGAN2 only)
    precision: str = "fp32"  # "fp32" | "bf16" (torch CPU autocast) | "fp16" (ORT TensorRT/CUDA only)
    compile: bool = False  # torch only: wrap the module with torch.compile
    providers: tuple[str, ...] = ("CPUExecutionProvider",)  # ORT: in order of preference (aliases: trt/cuda/cpu)
    on_unavailable: str = "warn"  # a requested provider missing: "warn" (ProviderFallbackWarning) | "error"
    threads: int = 0  # intra-op threads (torch and ORT); 0 = all cores of this machine
    onnx_path: str | None = None  # ORT: an exported model; None = export the generator into the user cache
    cache_dir: str | None = None  # ORT/TensorRT engine + timing caches; None = user_cache_dir()/tensorrt
    warmup_runs: int = 2  # calls on load (first-call allocations, TensorRT engine build)
    io_binding: bool = True  # ORT on CUDA: bind input/output buffers (no per-call allocation)
    spin: bool = False  # ORT: let idle pool threads spin (lower latency alone, but starves the other live stages)
    device_id: int = 0  # CUDA device
    extra: dict[str, Any] = field(default_factory=dict)  # FastSynthesisConfig fields for path="fast"

    def validate(self) -> None:
        """Raise ValueError on an invalid setting."""
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.path not in TORCH_PATHS:
            raise ValueError(f"path must be one of {TORCH_PATHS}, got {self.path!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.on_unavailable not in ("warn", "error"):
            raise ValueError(f"on_unavailable must be 'warn' or 'error', got {self.on_unavailable!r}")
        if self.backend == "torch" and self.precision == "fp16":
            raise ValueError("fp16 is for ONNX Runtime on TensorRT/CUDA; use bf16 for torch on the CPU")
        if self.threads < 0 or self.warmup_runs < 0:
            raise ValueError("threads and warmup_runs must be >= 0")
        for p in self.providers:
            resolve_provider(p)

    def describe(self) -> str:
        """Short human-readable name, e.g. ``torch-fast-fp32`` or ``onnxruntime-reference-CPU``."""
        if self.backend == "torch":
            return f"torch-{self.path}-{self.precision}" + ("-compile" if self.compile else "")
        first = resolve_provider(self.providers[0]).replace("ExecutionProvider", "") if self.providers else "CPU"
        return f"onnxruntime-{self.path}-{first}" + ("-fp16" if self.precision == "fp16" else "")


def resolve_provider(name: str) -> str:
    """'cuda' -> 'CUDAExecutionProvider' etc.; full names pass through. Unknown names raise ValueError."""
    full = PROVIDER_ALIASES.get(name.lower(), name)
    if full not in ORT_PROVIDERS:
        raise ValueError(f"unknown execution provider {name!r}; known: {', '.join(ORT_PROVIDERS)} (or trt/cuda/cpu)")
    return full


def default_threads() -> int:
    """Cores usable by this process (the affinity mask where available)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class Backend(ABC):
    """One way of running the synthesis network. ``backend(ws) -> img``; see the module docstring for shapes.

    Attributes: ``name`` (e.g. ``onnxruntime-fast-CPU``), ``providers`` (what actually runs: ``["torch-cpu"]`` or
    ``session.get_providers()``), ``fallback`` (None, or the message of a provider fallback), ``config``.
    """

    name: str = "backend"
    providers: list[str]
    fallback: str | None = None

    def __init__(self, config: RuntimeConfig, num_ws: int, w_dim: int) -> None:
        self.config = config
        self.num_ws = int(num_ws)
        self.w_dim = int(w_dim)
        self.providers = []

    def check_ws(self, ws: Any) -> None:
        """Raise ValueError unless ws is [N, num_ws, w_dim]."""
        shape = tuple(int(s) for s in ws.shape)
        if len(shape) != 3 or shape[1:] != (self.num_ws, self.w_dim) or shape[0] < 1:
            raise ValueError(f"{self.name}: expected ws [N, {self.num_ws}, {self.w_dim}], got {shape}")

    @abstractmethod
    def __call__(self, ws: torch.Tensor) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> img [N, 3, H, W] float32 (CPU tensor)."""

    def warmup(self) -> None:
        """Run ``config.warmup_runs`` calls on a neutral input (allocations, JIT/engine builds)."""
        import torch

        ws = torch.zeros(1, self.num_ws, self.w_dim)
        for _ in range(self.config.warmup_runs):
            self(ws)

    def _fall_back(self, message: str) -> None:
        """Record and announce a provider fallback, or raise when configured to."""
        if self.config.on_unavailable == "error":
            raise BackendError(message)
        self.fallback = message
        warnings.warn(message, ProviderFallbackWarning, stacklevel=3)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary: name, providers actually in use, fallback message."""
        return {"name": self.name, "providers": list(self.providers), "fallback": self.fallback}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} providers={self.providers}>"
