"""ONNX Runtime backend: TensorRT -> CUDA -> CPU execution providers chosen by configuration.

The providers actually in use are read back with ``session.get_providers()`` (onnxruntime-gpu silently falls
back to the CPU when CUDA/TensorRT cannot start): a requested provider that is not in use is reported with a
``ProviderFallbackWarning`` and ``backend.fallback``, or raises ``BackendError`` with ``on_unavailable="error"``.

Only the CPU path runs on the development machine; the CUDA/TensorRT branches (provider options, engine and
timing caches, IO binding) are written to the ONNX Runtime documentation and are untested here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.runtime.base import Backend, BackendError, RuntimeConfig, default_threads, resolve_provider

_TRT, _CUDA, _CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


def _provider_options(name: str, config: RuntimeConfig, cache: Path) -> dict[str, Any]:
    if name == _TRT:
        cache.mkdir(parents=True, exist_ok=True)
        return {
            "device_id": config.device_id,
            "trt_fp16_enable": config.precision == "fp16",
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
            "trt_builder_optimization_level": 3,
        }
    if name == _CUDA:
        return {"device_id": config.device_id, "cudnn_conv_algo_search": "EXHAUSTIVE"}
    return {}


def cached_export(generator: nn.Module, path: str) -> Path:
    """Export ``generator``'s synthesis (``path`` variant) once into the user cache; keyed by a weight hash."""
    from engine.resources import user_cache_dir
    from engine.runtime.export import ExportConfig, export_synthesis

    h = hashlib.sha1()
    for name, t in sorted(generator.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    out = user_cache_dir() / "onnx" / f"synthesis-{path}-{h.hexdigest()[:16]}.onnx"
    if not out.exists():
        export_synthesis(generator, out, path=path, config=ExportConfig(validate=False))
    return out


class OrtBackend(Backend):
    """ws [N, num_ws, w_dim] -> img [N, 3, H, W] float32 through an ONNX Runtime session."""

    def __init__(self, config: RuntimeConfig, generator: nn.Module | None = None) -> None:
        import onnxruntime as ort

        from engine.resources import user_cache_dir

        config.validate()
        if config.onnx_path is not None:
            model = Path(config.onnx_path)
            if not model.is_file():
                raise BackendError(f"ONNX model not found: {model}")
        elif generator is not None:
            model = cached_export(generator, config.path)
        else:
            raise ValueError("the onnxruntime backend needs onnx_path or the generator to export")
        requested = [resolve_provider(p) for p in config.providers] or [_CPU]
        if _CPU not in requested:
            requested.append(_CPU)  # the CPU provider is always last: ORT needs it for unsupported nodes
        available = ort.get_available_providers()
        missing = [p for p in requested if p not in available]
        use = [p for p in requested if p in available]
        cache = Path(config.cache_dir) if config.cache_dir else user_cache_dir() / "tensorrt"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = config.threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not config.spin:  # spinning pool threads would steal the cores from landmarks and the FAN in between
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(model), sess_options=opts, providers=[(p, _provider_options(p, config, cache)) for p in use]
            )
        except Exception as exc:  # ORT raises its own untyped errors (Fail, InvalidGraph, ...)
            raise BackendError(f"cannot create an ONNX Runtime session for {model}: {exc}") from exc
        inp = self.session.get_inputs()[0]
        out = self.session.get_outputs()[0]
        num_ws, w_dim = (int(d) for d in inp.shape[1:3])
        super().__init__(config, num_ws, w_dim)
        self.model_path = model
        self.input_name, self.output_name = inp.name, out.name
        self.providers = list(self.session.get_providers())
        running = self.providers[0].replace("ExecutionProvider", "") if self.providers else "none"
        self.name = f"onnxruntime-{config.path}-{running}" + ("-fp16" if config.precision == "fp16" else "")
        not_used = [p for p in requested if p not in self.providers]
        if not_used and not_used != [_CPU]:
            why = "not available in this onnxruntime build" if missing else "failed to start (silent fallback)"
            self._fall_back(
                f"{self.name}: requested {', '.join(not_used)} but running on {', '.join(self.providers)} ({why})"
            )
        self.io_binding = None
        if config.io_binding and self.providers and self.providers[0] in (_TRT, _CUDA):
            self.io_binding = self.session.io_binding()  # untested here (no GPU)
        if config.warmup_runs:
            self.warmup()

    def __call__(self, ws: torch.Tensor) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> img [N, 3, H, W] float32 (CPU tensor)."""
        self.check_ws(ws)
        x = np.ascontiguousarray(ws.detach().float().cpu().numpy())
        if self.io_binding is not None:
            b = self.io_binding
            b.bind_cpu_input(self.input_name, x)
            b.bind_output(self.output_name, "cuda", self.config.device_id)
            self.session.run_with_iobinding(b)
            return torch.from_numpy(b.copy_outputs_to_cpu()[0])
        return torch.from_numpy(self.session.run([self.output_name], {self.input_name: x})[0])
