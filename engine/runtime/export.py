"""ONNX export of the generator synthesis (ws -> image), the FAN (heatmaps -> dw) and FaceWorld's renderer.

Every export runs in eval mode on a copy of the network, with a dynamic batch axis, and is validated against
torch on random inputs with ONNX Runtime (CPU): max abs error and PSNR are returned and written next to the
model as ``<name>.validation.json``.

StyleGAN2 is exported on its "activation" modulation path (no batch-dependent reshapes, constant convolution
weights; the grouped path bakes the batch into the graph) with constant noise buffers; ``path="fast"`` exports
``FastSynthesis`` instead (polyphase + Winograd rewrite, for the ONNX Runtime CPU backend).
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.generators.protocol import Generator
from engine.generators.stylegan2 import Generator as StyleGAN2

EXPORTERS = ("dynamo", "torchscript")


@dataclass
class ExportConfig:
    """Options of one ONNX export."""

    exporter: str = "torchscript"  # "torchscript" (fast) | "dynamo" (torch.export); if the first fails to export
    #                                or to validate (e.g. a batch baked in), the other is tried, loudly
    opset: int = 18  # ONNX opset
    validate: bool = True  # compare ONNX Runtime with torch on random inputs
    batch_sizes: tuple[int, ...] = (1, 3)  # validation batches, all through the same session (dynamic batch)
    seed: int = 0  # random inputs of the validation


class SynthesisModule(nn.Module):
    """``generator.synthesis(ws, noise_mode="const")`` as a module: ws [N, num_ws, w_dim] -> img [N, 3, H, W].

    Holds a deep copy of the generator in eval mode; StyleGAN2 copies are switched to activation modulation.
    """

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        g = copy.deepcopy(generator).eval()
        if isinstance(g, StyleGAN2):
            g.set_modulation("activation")
        self.generator = g

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.generator.synthesis(ws, noise_mode="const")


def is_stylegan2(generator: nn.Module) -> bool:
    """True for engine StyleGAN2 generators (the ones FastSynthesis can take)."""
    return isinstance(generator, StyleGAN2)


def synthesis_module(generator: nn.Module, path: str = "reference", **fast_kwargs: Any) -> nn.Module:
    """The module exported for ``path``: "reference" = ``generator.synthesis(ws, noise_mode="const")`` on a copy
    (StyleGAN2: switched to activation modulation); "fast" = ``FastSynthesis`` (StyleGAN2 only)."""
    if path == "reference":
        return SynthesisModule(generator).eval()
    if path != "fast":
        raise ValueError(f"path must be 'reference' or 'fast', got {path!r}")
    if not is_stylegan2(generator):
        raise ValueError("path='fast' needs a StyleGAN2 generator")
    from engine.runtime.fast_synthesis import FastSynthesis, FastSynthesisConfig

    return FastSynthesis(generator, FastSynthesisConfig(**fast_kwargs)).eval()


def psnr(a: np.ndarray, b: np.ndarray, peak_to_peak: float = 2.0) -> float:
    """PSNR in dB of a vs b for signals spanning ``peak_to_peak`` (2 for images in [-1, 1]); inf when equal."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak_to_peak**2 / mse)


def export_onnx(
    module: nn.Module,
    example: torch.Tensor,
    out: str | Path,
    *,
    input_name: str,
    output_name: str,
    config: ExportConfig | None = None,
) -> dict[str, Any]:
    """Export ``module(example) -> tensor`` to a single ONNX file with a dynamic batch axis (dim 0).

    Returns {"path", "exporter", "seconds"}. ``example`` should have batch >= 2 (the dynamo exporter
    specialises a batch of 1). Raises RuntimeError with both errors when no exporter works.
    """
    cfg = config or ExportConfig()
    if cfg.exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {cfg.exporter!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    order = [cfg.exporter] + [e for e in EXPORTERS if e != cfg.exporter]
    errors: list[str] = []
    t0 = time.perf_counter()
    for exporter in order:
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                common = {"input_names": [input_name], "output_names": [output_name], "opset_version": cfg.opset}
                if exporter == "dynamo":
                    batch = torch.export.Dim("batch", min=1, max=1024)
                    extra = {"dynamic_shapes": {_arg_name(module): {0: batch}}, "dynamo": True,
                             "external_data": False, "verbose": False}
                else:
                    extra = {"dynamic_axes": {input_name: {0: "batch"}, output_name: {0: "batch"}}, "dynamo": False}
                torch.onnx.export(module, (example,), str(out), **common, **extra)
        except Exception as exc:  # exporter failures are diverse: report them and try the other exporter
            errors.append(f"{exporter}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        if exporter != cfg.exporter:
            warnings.warn(f"ONNX export of {out.name}: {errors[-1]}; used the {exporter} exporter", stacklevel=2)
        return {"path": str(out), "exporter": exporter, "seconds": round(time.perf_counter() - t0, 2),
                "failed_exporters": errors}
    raise RuntimeError(f"ONNX export of {out.name} failed with every exporter: " + " | ".join(errors))


def _arg_name(module: nn.Module) -> str:
    import inspect

    params = list(inspect.signature(module.forward).parameters)
    return params[0]


def make_session(path: str | Path, threads: int = 0) -> Any:
    """A CPU ONNX Runtime session with full graph optimisation."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def validate_onnx(
    reference: Any, onnx_path: str | Path, inputs: list[torch.Tensor], *, peak_to_peak: float = 2.0
) -> dict[str, Any]:
    """Run every input through ``reference`` (torch, fp32) and one ONNX Runtime CPU session; max abs error and
    PSNR per batch size. ``peak_to_peak``: signal range of the PSNR (2 for images in [-1, 1]; 0 = the range of
    the reference output)."""
    sess = make_session(onnx_path)
    name = sess.get_inputs()[0].name
    rows = []
    for x in inputs:
        with torch.no_grad():
            ref = reference(x).float().numpy()
        got = sess.run(None, {name: x.numpy()})[0]
        if got.shape != ref.shape:
            raise RuntimeError(f"{Path(onnx_path).name}: ONNX output {got.shape} != torch {ref.shape}")
        ptp = peak_to_peak or float(ref.max() - ref.min()) or 1.0
        rows.append({"batch": int(x.shape[0]), "max_abs": float(np.abs(got - ref).max()), "psnr": psnr(got, ref, ptp)})
    return {
        "onnx": Path(onnx_path).name,
        "providers": sess.get_providers(),
        "runs": rows,
        "max_abs": max(r["max_abs"] for r in rows),
        "psnr": min(r["psnr"] for r in rows),
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, default=lambda o: None if o != o else str(o)) + "\n")


def random_ws(generator: Generator, n: int, seed: int = 0, psi: float = 0.7) -> torch.Tensor:
    """Random W+ codes [n, num_ws, w_dim] with per-layer mixing (different w per layer catches indexing bugs)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n * generator.num_ws, generator.z_dim, generator=gen)
    with torch.no_grad():
        try:
            w = generator.mapping(z, None, truncation_psi=psi)[:, 0]
        except (ValueError, RuntimeError):  # conditional generators: no label -> plain Gaussian ws
            w = torch.randn(n * generator.num_ws, generator.w_dim, generator=gen)
    return w.reshape(n, generator.num_ws, generator.w_dim).float().contiguous()


def export_synthesis(
    generator: nn.Module,
    out: str | Path,
    *,
    path: str = "reference",
    config: ExportConfig | None = None,
    fast: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export the synthesis (ws [N, num_ws, w_dim] -> img [N, 3, H, W]) and validate it. Returns the report.

    ``fast``: FastSynthesisConfig fields for ``path="fast"`` (e.g. ``{"winograd_min_res": 0}`` for the plain
    graph that int8 quantisation takes)."""
    cfg = config or ExportConfig()
    out = Path(out)
    module = synthesis_module(generator, path, **(fast or {}))
    example = random_ws(generator, 2, seed=cfg.seed + 1)
    inputs = [random_ws(generator, b, seed=cfg.seed + 10 + b) for b in cfg.batch_sizes]

    def ref(ws: torch.Tensor) -> torch.Tensor:  # the generator's own synthesis, as configured (fp32)
        return generator.eval().synthesis(ws, noise_mode="const")

    report = _export_validated(module, example, out, "ws", "img", cfg, ref, inputs, 2.0)
    report.update(kind="synthesis", path_variant=path, num_ws=int(generator.num_ws), w_dim=int(generator.w_dim),
                  img_resolution=int(generator.img_resolution))
    if cfg.validate:
        report["validation"]["reference"] = "generator.synthesis(ws, noise_mode='const') in torch fp32"
        _write_json(out.with_suffix(".validation.json"), report)
    return report


def _export_validated(
    module: nn.Module,
    example: torch.Tensor,
    out: Path,
    input_name: str,
    output_name: str,
    cfg: ExportConfig,
    reference: Any,
    inputs: list[torch.Tensor],
    peak_to_peak: float,
) -> dict[str, Any]:
    """Export with ``cfg.exporter``; when its model does not run every validation batch (a baked-in batch size),
    warn and export again with the other exporter."""
    report = export_onnx(module, example, out, input_name=input_name, output_name=output_name, config=cfg)
    if not cfg.validate:
        return report
    try:
        report["validation"] = validate_onnx(reference, out, inputs, peak_to_peak=peak_to_peak)
        return report
    except Exception as exc:  # onnxruntime's errors are untyped (InvalidArgument, Fail, ...)
        first = report["exporter"]
        other = next(e for e in EXPORTERS if e != first)
        warnings.warn(f"{out.name}: the {first} export fails validation ({exc}); trying {other}", stacklevel=3)
    cfg2 = ExportConfig(exporter=other, opset=cfg.opset, validate=True, batch_sizes=cfg.batch_sizes, seed=cfg.seed)
    report = export_onnx(module, example, out, input_name=input_name, output_name=output_name, config=cfg2)
    report["failed_exporters"] = [*report.get("failed_exporters", []), f"{first}: failed validation"]
    report["validation"] = validate_onnx(reference, out, inputs, peak_to_peak=peak_to_peak)
    return report


class _FanModule(nn.Module):
    def __init__(self, fan: nn.Module) -> None:
        super().__init__()
        self.fan = copy.deepcopy(fan).eval()

    def forward(self, heatmaps: torch.Tensor) -> torch.Tensor:
        return self.fan(heatmaps)


def export_fan(fan: nn.Module, out: str | Path, *, config: ExportConfig | None = None) -> dict[str, Any]:
    """Export the FAN (heatmaps [N, 2K, S, S] -> dw [N, num_ws, w_dim]) and validate it. Returns the report."""
    cfg = config or ExportConfig()
    out = Path(out)
    c = fan.config
    shape = (2 * len(c.points), int(c.heatmap_size), int(c.heatmap_size))
    module = _FanModule(fan)
    gen = torch.Generator().manual_seed(cfg.seed)
    example = torch.rand(2, *shape, generator=gen)
    inputs = [torch.rand(b, *shape, generator=gen) for b in cfg.batch_sizes]
    report = _export_validated(module, example, out, "heatmaps", "dw", cfg, module, inputs, 0)
    report.update(kind="fan", input_shape=list(shape))
    if cfg.validate:
        _write_json(out.with_suffix(".validation.json"), report)
    return report
