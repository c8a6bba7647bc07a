"""Inference runtime: one backend interface over torch and ONNX Runtime, ONNX export, and a fast StyleGAN2 path.

::

    from engine.runtime import RuntimeConfig, create_backend
    backend = create_backend(RuntimeConfig(backend="onnxruntime", path="fast"), generator)
    img = backend(ws)                  # ws [N, num_ws, w_dim] -> img [N, 3, H, W] float32
    backend.name, backend.providers    # e.g. "onnxruntime-fast-CPU", ["CPUExecutionProvider"]
    Animator(bundle, backend=backend)

Heavy modules (torch, onnxruntime) are imported only when a backend is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.runtime.base import (
    Backend,
    BackendError,
    ProviderFallbackWarning,
    RuntimeConfig,
    resolve_provider,
)

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = [
    "Backend",
    "BackendError",
    "ProviderFallbackWarning",
    "RuntimeConfig",
    "create_backend",
    "resolve_provider",
]


def create_backend(config: RuntimeConfig, generator: nn.Module | None = None) -> Backend:
    """Build (and warm up) the backend described by ``config``.

    ``generator`` is required for torch backends and for ONNX Runtime without ``config.onnx_path`` (the model is
    then exported once into the user cache). Raises ``BackendError``/``ValueError`` with a clear message.
    """
    config.validate()
    if config.backend == "torch":
        if generator is None:
            raise ValueError("the torch backend needs the generator")
        from engine.runtime.torch_backend import TorchBackend

        return TorchBackend(generator, config)
    from engine.runtime.ort_backend import OrtBackend

    return OrtBackend(config, generator)
