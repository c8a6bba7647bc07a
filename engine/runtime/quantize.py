"""int8 quantisation of an exported synthesis model with ONNX Runtime (lossy; CPU).

``quantize_synthesis(generator, fp32_onnx, out)`` calibrates the activation ranges on W+ codes drawn from the
generator's own mapping network, writes an int8 model (per-channel weights, static activation scales) and
measures its PSNR against the torch fp32 synthesis on held-out codes (``<out>.validation.json``)::

    from engine.runtime.quantize import QuantizeConfig, quantize_synthesis
    report = quantize_synthesis(g, "synthesis.onnx", "synthesis.int8.onnx", QuantizeConfig(calibration="minmax"))
    report["validation"]["psnr"]   # dB vs torch fp32, images in [-1, 1]

What is quantised is chosen per node, explicitly (``QuantizeConfig``): by default only the dense 3x3 (and
transposed 3x3) convolutions, which hold almost all of the multiply-adds; the FIR filters, ToRGB, the affines and
the demodulation arithmetic stay fp32. ``keep_fp32_first``/``keep_fp32_last`` keep the first/last dense
convolutions in fp32 (mixed precision).

ONNX Runtime has no int8 ConvTranspose kernel on the CPU, so the up-convolutions are first rewritten exactly as
four phase convolutions (``subpixel_conv_transpose``). ``mode="dynamic"`` uses ConvInteger instead (per-call input
scales, int32 outputs, no calibration).

On AVX2 without VNNI, ONNX Runtime's u8s8 kernels sum pairs of u8*s8 products in int16 (``vpmaddubsw``), which
can saturate; ``reduce_range=True`` (7-bit weights) avoids that, ``types="u8u8"`` uses the exact widening path.

Measured on paper256 with random weights (``benchmarks/bench_int8.py``): every dense conv int8 is ~1.6x faster
than the fp32 graph in ONNX Runtime at ~26.5 dB; a single int8 layer alone already costs 35-42 dB, so no
variant that saves time stays above 40 dB.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

MODES = ("static", "dynamic")
FORMATS = ("qdq", "qoperator")
CALIBRATIONS = ("minmax", "entropy", "percentile")
TYPES = ("u8s8", "u8u8", "s8s8")  # activations, weights
INCLUDES = ("dense", "conv")  # dense convolutions only | every Conv/ConvTranspose with a constant weight


@dataclass(frozen=True)
class QuantizeConfig:
    """How a synthesis model is quantised (int8, ONNX Runtime CPU)."""

    mode: str = "static"  # "static" (calibrated scales, int8 conv outputs) | "dynamic" (ConvInteger: per-call input
    #                       scale, int32 outputs, no calibration; use types="u8u8": ORT's u8s8 ConvInteger is slow)
    format: str = "qdq"  # "qdq" (QuantizeLinear/DequantizeLinear pairs, fused by ORT) | "qoperator" (QLinearConv)
    calibration: str = "minmax"  # activation ranges: "minmax" | "entropy" | "percentile"
    percentile: float = 99.999  # "percentile" calibration only
    types: str = "u8s8"  # activation/weight int types: "u8s8" | "u8u8" | "s8s8"
    per_channel: bool = True  # per-output-channel weight scales
    reduce_range: bool = False  # 7-bit weights (avoids u8s8 int16 saturation on AVX2 without VNNI)
    include: str = "dense"  # "dense" (group 1, > 4 outputs: 3x3, up- and phase convs) | "conv" (+ FIR, ToRGB)
    transposed: bool = True  # also quantise ConvTranspose (the reference up-convs); False keeps them fp32
    keep_fp32_first: int = 0  # the first N selected layers (lowest resolutions) stay fp32
    keep_fp32_last: int = 0  # the last N selected layers (highest resolutions) stay fp32
    exclude: tuple[str, ...] = ()  # node-name substrings that stay fp32
    only: tuple[str, ...] = ()  # when given: quantise only the nodes whose name contains one of these substrings
    subpixel: bool = True  # rewrite stride-2 ConvTranspose as 4 phase Convs first (int8-runnable, same MACs)
    calibration_samples: int = 16  # W+ codes (batch 1 each) from the mapping network
    psi: float = 0.7  # truncation of the calibration / validation codes
    seed: int = 1234  # calibration codes; validation uses seed + 1 (held out)
    extra: dict[str, Any] = field(default_factory=dict)  # extra_options of quantize_static / quantize_dynamic

    def validate(self) -> None:
        """Raise ValueError on an invalid setting."""
        for name, value, allowed in (("mode", self.mode, MODES), ("format", self.format, FORMATS),
                                     ("calibration", self.calibration, CALIBRATIONS),
                                     ("types", self.types, TYPES), ("include", self.include, INCLUDES)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {self.percentile}")
        if self.calibration_samples < 1 or self.keep_fp32_first < 0 or self.keep_fp32_last < 0:
            raise ValueError("calibration_samples must be >= 1 and keep_fp32_first/last >= 0")

    def key(self) -> str:
        """Short stable hash of the settings (cache file names)."""
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True, default=str).encode()).hexdigest()[:12]

    def describe(self) -> str:
        """E.g. ``qdq-minmax-u8s8-pc`` (+ ``-rr``, ``-fp32first2`` ...)."""
        s = "dynamic" if self.mode == "dynamic" else f"{self.format}-{self.calibration}"
        s += f"-{self.types}" + ("-pc" if self.per_channel else "-pt")
        s += "-rr" if self.reduce_range else ""
        s += "" if self.include == "dense" else f"-{self.include}"
        s += "" if self.transposed else "-notransp"
        s += "-sp" if self.subpixel else ""
        s += f"-fp32first{self.keep_fp32_first}" if self.keep_fp32_first else ""
        s += f"-fp32last{self.keep_fp32_last}" if self.keep_fp32_last else ""
        s += f"-only{len(self.only)}" if self.only else ""
        s += f"-excl{len(self.exclude)}" if self.exclude else ""
        return s


class WsReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over W+ codes: ws [S, num_ws, w_dim] -> S batch-1 feeds."""

    def __init__(self, ws: np.ndarray, input_name: str = "ws") -> None:
        ws = np.asarray(ws, dtype=np.float32)
        if ws.ndim != 3 or ws.shape[0] < 1:
            raise ValueError(f"calibration ws must be [S, num_ws, w_dim] with S >= 1, got {ws.shape}")
        self.ws = ws
        self.input_name = input_name
        self._it: Iterator[np.ndarray] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next feed ``{input_name: ws[i:i+1]}``, None at the end (then the reader rewinds)."""
        if self._it is None:
            self._it = iter(self.ws)
        item = next(self._it, None)
        if item is None:
            self._it = None
            return None
        return {self.input_name: np.ascontiguousarray(item[None])}

    def rewind(self) -> None:
        """Start again from the first code."""
        self._it = None

    def __len__(self) -> int:
        return int(self.ws.shape[0])


def conv_nodes(model: Any) -> list[dict[str, Any]]:
    """Every Conv/ConvTranspose of an ONNX model (ModelProto) in graph order: name, layer (the name without a
    ``/phaseXY`` suffix of ``subpixel_conv_transpose``), op, weight shape (None when not an initializer), group
    and kind: "dense" (group 1, more than 4 outputs), "rgb" (group 1, at most 4 outputs: ToRGB, image FIR),
    "depthwise"/"grouped", or "dynamic" (the weight is computed in the graph)."""
    inits = {t.name: [int(d) for d in t.dims] for t in model.graph.initializer}
    rows = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        shape = inits.get(node.input[1])
        group = next((int(a.i) for a in node.attribute if a.name == "group"), 1)
        if shape is None:
            kind = "dynamic"
        elif group > 1:
            kind = "depthwise" if shape[1] == 1 else "grouped"
        else:
            outputs = shape[0] if node.op_type == "Conv" else shape[1]
            kind = "dense" if outputs > 4 else "rgb"
        rows.append({"name": node.name, "layer": node.name.split("/phase")[0], "op": node.op_type,
                     "weight": shape, "group": group, "kind": kind})
    return rows


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def subpixel_conv_transpose(model: Any) -> int:
    """Rewrite, in place, every stride-2 3x3 ConvTranspose (group 1, no padding, constant weight) of an ONNX
    ModelProto as four ordinary convolutions at the input resolution, one per output phase, followed by a
    channel concat, DepthToSpace and a crop (folded into the padding of a following Conv when possible). Exact
    (the same products and sums), the same multiply-adds (9 taps per input pixel: 2x2 + 2x1 + 1x2 + 1x1), and
    every part is an ordinary Conv that ONNX Runtime runs as a QLinearConv once quantised (it has no int8
    ConvTranspose kernel on the CPU). Returns the count rewritten.

    Phase algebra for one axis (input length H, transposed output length 2H + 1): even outputs 2m take taps 0
    and 2 (``x[m] W[0] + x[m-1] W[2]``, a 2-tap correlation with kernel [W[2], W[0]] and one zero of padding on
    each side, length H + 1); odd outputs 2m + 1 take tap 1 (``x[m] W[1]``, padded at the end to H + 1, the extra
    sample being cropped).
    """
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in model.graph.output}
    refolded: dict[str, list[int]] = {}  # FIR conv name -> pads with the trailing crop folded in
    new_nodes, new_inits, count = [], [], 0
    for node in model.graph.node:
        a = _attrs(node) if node.op_type == "ConvTranspose" else {}
        w = inits.get(node.input[1]) if node.op_type == "ConvTranspose" else None
        ok = (
            w is not None
            and list(w.dims)[2:] == [3, 3]
            and a.get("group", 1) == 1
            and list(a.get("strides", [1, 1])) == [2, 2]
            and not any(a.get("pads", [0, 0, 0, 0]))
            and list(a.get("dilations", [1, 1])) == [1, 1]
            and not any(a.get("output_padding", [0, 0]))
            and "output_shape" not in a
            and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
        )
        if not ok:
            new_nodes.append(node)
            continue
        count += 1
        weight = numpy_helper.to_array(w).transpose(1, 0, 2, 3)  # [I, O, 3, 3] -> conv layout [O, I, 3, 3]
        taps = {0: [2, 0], 1: [1]}  # phase -> kernel taps, in correlation order
        pads = {0: (1, 1), 1: (0, 1)}
        outs = []
        for ph_r in (0, 1):
            for ph_c in (0, 1):
                k = np.ascontiguousarray(weight[:, :, taps[ph_r]][:, :, :, taps[ph_c]])
                wname = f"{node.name}/phase{ph_r}{ph_c}.weight"
                new_inits.append(numpy_helper.from_array(k.astype(np.float32), wname))
                out = f"{node.output[0]}/phase{ph_r}{ph_c}"
                inputs = [node.input[0], wname] + list(node.input[2:3])
                new_nodes.append(helper.make_node(
                    "Conv", inputs, [out], name=f"{node.name}/phase{ph_r}{ph_c}", kernel_shape=list(k.shape[2:]),
                    pads=[pads[ph_r][0], pads[ph_c][0], pads[ph_r][1], pads[ph_c][1]], strides=[1, 1]))
                outs.append(out)
        cat, d2s = f"{node.output[0]}/phases", f"{node.output[0]}/d2s"
        new_nodes.append(helper.make_node("Concat", outs, [cat], name=f"{node.name}/concat", axis=1))
        # without a bias, the extra last row and column of the [2H + 2] interleave are exactly zero (the odd
        # phases read only padding there): a following zero-padded Conv (the FIR) can take the uncropped tensor
        # with one less trailing pad; otherwise crop [2H + 2] -> [2H + 1] (the input's H read at run time)
        consumer = consumers.get(node.output[0], [])
        fir = consumer[0] if len(consumer) == 1 and consumer[0].op_type == "Conv" and consumer[0].name else None
        fir_pads = list(_attrs(fir).get("pads", [0, 0, 0, 0])) if fir is not None else []
        if len(node.input) < 3 and fir is not None and fir_pads[2] >= 1 and fir_pads[3] >= 1 \
                and node.output[0] not in graph_outputs:
            new_nodes.append(helper.make_node("DepthToSpace", [cat], [node.output[0]], name=f"{node.name}/d2s",
                                              blocksize=2, mode="DCR"))
            refolded[fir.name] = [fir_pads[0], fir_pads[1], fir_pads[2] - 1, fir_pads[3] - 1]
            continue
        new_nodes.append(helper.make_node("DepthToSpace", [cat], [d2s], name=f"{node.name}/d2s", blocksize=2,
                                          mode="DCR"))
        sn = f"{node.name}/crop"
        new_inits += [numpy_helper.from_array(np.array([0, 0], np.int64), f"{sn}.starts"),
                      numpy_helper.from_array(np.array([-1, -1], np.int64), f"{sn}.ends"),
                      numpy_helper.from_array(np.array([2, 3], np.int64), f"{sn}.axes")]
        new_nodes.append(helper.make_node("Slice", [d2s, f"{sn}.starts", f"{sn}.ends", f"{sn}.axes"],
                                          [node.output[0]], name=sn))
    for n in new_nodes:
        if n.name in refolded:
            for a in n.attribute:
                if a.name == "pads":
                    del a.ints[:]
                    a.ints.extend(refolded[n.name])
    if count:
        del model.graph.node[:]
        model.graph.node.extend(new_nodes)
        model.graph.initializer.extend(new_inits)
        used = {i for n in model.graph.node for i in n.input}
        keep = [t for t in model.graph.initializer if t.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
    return count


def select_nodes(model: Any, config: QuantizeConfig) -> tuple[list[str], list[str]]:
    """(names to quantise, names of candidate nodes kept fp32) for ``config``; ``keep_fp32_first/last`` count
    layers (the four phase convs of a rewritten up-convolution are one layer)."""
    rows = [r for r in conv_nodes(model) if r["kind"] != "dynamic"]
    if config.include == "dense":
        rows = [r for r in rows if r["kind"] == "dense"]
    if not config.transposed:
        rows = [r for r in rows if r["op"] != "ConvTranspose" and "/phase" not in r["name"]]
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    keep_layers = set(layers[: config.keep_fp32_first])
    if config.keep_fp32_last:
        keep_layers |= set(layers[-config.keep_fp32_last :])
    keep = {r["name"] for r in rows if r["layer"] in keep_layers or any(p in r["name"] for p in config.exclude)}
    if config.only:
        keep |= {r["name"] for r in rows if not any(p in r["name"] for p in config.only)}
    return [r["name"] for r in rows if r["name"] not in keep], [r["name"] for r in rows if r["name"] in keep]


def quantize_onnx(
    fp32_path: str | Path, out: str | Path, calibration_ws: np.ndarray, config: QuantizeConfig | None = None
) -> dict[str, Any]:
    """Statically quantise ``fp32_path`` (a ws -> img model) into ``out`` with ``config``.

    calibration_ws: [S, num_ws, w_dim] float32 codes run one by one for the activation ranges. Returns a report
    (nodes quantised / kept, seconds, sizes). Raises ValueError when the config selects no node.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    cfg = config or QuantizeConfig()
    cfg.validate()
    fp32_path, out = Path(fp32_path), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pre, sp = out.with_name(out.stem + ".pre.onnx"), out.with_name(out.stem + ".subpixel.onnx")
    rewritten = 0
    try:
        src = fp32_path
        if cfg.subpixel:
            model = onnx.load(str(fp32_path))
            rewritten = subpixel_conv_transpose(model)
            if rewritten:
                src = sp
                onnx.save(model, str(src))
            del model
        # shape inference + constant folding: the quantiser needs the activation types and constant conv weights
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        model = onnx.load(str(pre))
        nodes, kept = select_nodes(model, cfg)
        if not nodes:
            raise ValueError(f"{fp32_path.name}: the quantisation config {cfg.describe()} selects no node")
        input_name = model.graph.input[0].name
        del model
        act, wt = {"u8s8": ("QUInt8", "QInt8"), "u8u8": ("QUInt8", "QUInt8"), "s8s8": ("QInt8", "QInt8")}[cfg.types]
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[cfg.calibration]
        extra: dict[str, Any] = {"CalibPercentile": cfg.percentile} if cfg.calibration == "percentile" else {}
        extra.update(cfg.extra)
        if cfg.mode == "dynamic":
            quantize_dynamic(str(pre), str(out), op_types_to_quantize=["Conv"], nodes_to_quantize=nodes,
                             per_channel=cfg.per_channel, reduce_range=cfg.reduce_range,
                             weight_type=getattr(QuantType, wt), extra_options=dict(cfg.extra))
        else:
            quantize_static(
                str(pre),
                str(out),
                WsReader(calibration_ws, input_name),
                quant_format=QuantFormat.QDQ if cfg.format == "qdq" else QuantFormat.QOperator,
                op_types_to_quantize=["Conv", "ConvTranspose"],
                nodes_to_quantize=nodes,
                per_channel=cfg.per_channel,
                reduce_range=cfg.reduce_range,
                activation_type=getattr(QuantType, act),
                weight_type=getattr(QuantType, wt),
                calibrate_method=method,
                extra_options=extra,
            )
    finally:
        pre.unlink(missing_ok=True)
        sp.unlink(missing_ok=True)
    return {
        "path": str(out),
        "config": asdict(cfg),
        "variant": cfg.describe(),
        "subpixel_rewrites": rewritten,
        "quantized_nodes": nodes,
        "fp32_nodes": kept,
        "calibration_samples": 0 if cfg.mode == "dynamic" else int(calibration_ws.shape[0]),
        "seconds": round(time.perf_counter() - t0, 1),
        "mb_fp32": round(fp32_path.stat().st_size / 2**20, 1),
        "mb_int8": round(out.stat().st_size / 2**20, 1),
    }


def psnr(a: np.ndarray, b: np.ndarray, peak_to_peak: float = 2.0) -> float:
    """PSNR in dB of a vs b for signals spanning ``peak_to_peak``; inf when equal."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak_to_peak**2 / mse)


def validate_int8(generator: nn.Module, onnx_path: str | Path, ws: np.ndarray, threads: int = 1) -> dict[str, Any]:
    """PSNR (dB, images in [-1, 1]) and max abs error of the ONNX model vs ``generator.synthesis`` in torch fp32
    on ws [S, num_ws, w_dim] (each code separately); ``psnr`` is the worst, ``psnr_mean`` the mean."""
    import torch

    from engine.runtime.export import make_session

    sess = make_session(onnx_path, threads=threads)
    name = sess.get_inputs()[0].name
    rows = []
    for i in range(ws.shape[0]):
        x = np.ascontiguousarray(ws[i : i + 1], dtype=np.float32)
        with torch.inference_mode():
            ref = generator.eval().synthesis(torch.from_numpy(x), noise_mode="const").float().numpy()
        got = sess.run(None, {name: x})[0]
        if got.shape != ref.shape:
            raise RuntimeError(f"{Path(onnx_path).name}: output {got.shape} != torch {ref.shape}")
        rows.append((psnr(got, ref), float(np.abs(got - ref).max())))
    return {"psnr": min(r[0] for r in rows), "psnr_mean": float(np.mean([r[0] for r in rows])),
            "max_abs": max(r[1] for r in rows), "samples": len(rows),
            "reference": "generator.synthesis(ws, noise_mode='const') in torch fp32"}


def mapping_ws(generator: nn.Module, n: int, seed: int, psi: float) -> np.ndarray:
    """[n, num_ws, w_dim] float32 codes from the mapping network: half with one w per code (what inversion and
    the animator produce), half mixed per layer."""
    from engine.runtime.export import random_ws

    mixed = random_ws(generator, n - n // 2, seed=seed, psi=psi).numpy() if n - n // 2 else None
    parts = [] if mixed is None else [mixed]
    if n // 2:
        plain = random_ws(generator, n // 2, seed=seed + 7919, psi=psi).numpy()
        parts.append(np.repeat(plain[:, :1], plain.shape[1], axis=1))
    return np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)


def quantize_synthesis(
    generator: nn.Module,
    fp32_path: str | Path,
    out: str | Path,
    config: QuantizeConfig | None = None,
    *,
    validate: int = 4,
    threads: int = 1,
) -> dict[str, Any]:
    """Quantise an exported synthesis model of ``generator`` (calibration codes from its mapping network) and,
    when ``validate`` > 0, measure PSNR vs torch fp32 on that many held-out codes; the report is also written to
    ``<out>.validation.json``."""
    cfg = config or QuantizeConfig()
    cfg.validate()
    calib = mapping_ws(generator, cfg.calibration_samples, cfg.seed, cfg.psi)
    report = quantize_onnx(fp32_path, out, calib, cfg)
    report["kind"] = "synthesis-int8"
    if validate:
        report["validation"] = validate_int8(generator, out, mapping_ws(generator, validate, cfg.seed + 1, cfg.psi),
                                             threads=threads)
        Path(out).with_suffix(".validation.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    return report


GRAPHS: dict[str, tuple[str, dict[str, Any]]] = {
    # name -> (export path, FastSynthesisConfig fields): Winograd tiles are MatMuls, not convs, so they would stay
    # fp32; the plain fast graph (fused epilogues, transposed up-convs) is the one to quantise
    "plain": ("fast", {"winograd_min_res": 0, "up_mode": "transpose"}),
    "reference": ("reference", {}),
}


def export_int8(
    generator: nn.Module,
    out: str | Path,
    config: QuantizeConfig | None = None,
    *,
    graph: str = "plain",
    validate: int = 4,
    threads: int = 1,
) -> dict[str, Any]:
    """Export ``generator``'s synthesis (``graph``: "plain" FastSynthesis without Winograd, or "reference") to a
    temporary fp32 model beside ``out``, quantise it into ``out`` and validate (see ``quantize_synthesis``)."""
    from engine.runtime.export import ExportConfig, export_synthesis

    if graph not in GRAPHS:
        raise ValueError(f"graph must be one of {tuple(GRAPHS)}, got {graph!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fp32 = out.with_name(out.stem + ".fp32.onnx")
    path, fast = GRAPHS[graph]
    try:
        export_synthesis(generator, fp32, path=path, config=ExportConfig(validate=False), fast=fast)
        report = quantize_synthesis(generator, fp32, out, config, validate=validate, threads=threads)
    finally:
        fp32.unlink(missing_ok=True)
    report["graph"] = graph
    return report


def _weights_hash(generator: nn.Module) -> str:
    h = hashlib.sha1()
    for name, t in sorted(generator.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def cached_int8_model(generator: nn.Module, config: QuantizeConfig | None = None, graph: str = "plain") -> Path:
    """The int8 synthesis model of ``generator`` in the user cache (``<cache>/onnx``), exported and quantised on
    first use; keyed by the weights, the graph and the quantisation settings."""
    from engine.resources import user_cache_dir

    cfg = config or QuantizeConfig()
    out = user_cache_dir() / "onnx" / f"synthesis-int8-{graph}-{_weights_hash(generator)}-{cfg.key()}.onnx"
    if not out.exists():
        tmp = out.with_name(out.stem + ".partial.onnx")
        export_int8(generator, tmp, cfg, graph=graph, validate=0)
        tmp.replace(out)
    return out
