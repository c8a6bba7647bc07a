"""int8 static quantisation of the StyleGAN2 synthesis (ONNX Runtime CPU): speed and PSNR per variant.

paper256 (random weights, 14 ws) exported on the activation-modulation path ("ref") and as FastSynthesis without
Winograd ("plain"), quantised with ``engine.runtime.quantize`` (calibration codes from the mapping network,
held-out validation codes). Per variant: CPU time of the calling thread with one intra-op thread (best of
``--reps``, comparable on a busy machine), speed-up vs torch eager fp32 (the generator's own grouped synthesis,
also one thread, CPU time), PSNR vs torch fp32 (worst and mean over ``--validate`` codes, images in [-1, 1]).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_int8.py [--variants all] [--reps 3] [--json out.json]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_int8.py --variants ref-int8-sp,plain-int8-sp --wall2
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_int8.py --sensitivity   # PSNR with one layer int8 at a time
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_int8.py --kernels       # one 3x3 conv: fp32 vs u8s8 vs u8u8
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_int8.py --weights-only  # torch: rounded weights only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

# name -> (source graph, QuantizeConfig kwargs; None = the fp32 graph itself)
VARIANTS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "ref-fp32": ("ref", None),
    "plain-fp32": ("plain", None),
    "ref-int8": ("ref", {"subpixel": False}),  # ConvTranspose left to ORT (no int8 kernel: runs fp32 between Q/DQ)
    "ref-int8-sp": ("ref", {}),
    "plain-int8-sp": ("plain", {}),
    "plain-int8-sp-u8u8": ("plain", {"types": "u8u8"}),
    "plain-int8-sp-rr": ("plain", {"reduce_range": True}),
    "plain-int8-sp-pt": ("plain", {"per_channel": False}),
    "plain-int8-sp-entropy": ("plain", {"calibration": "entropy"}),
    "plain-int8-sp-p99.99": ("plain", {"calibration": "percentile", "percentile": 99.99}),
    "plain-int8-sp-qop": ("plain", {"format": "qoperator"}),
    "plain-int8-sp-dynamic": ("plain", {"mode": "dynamic", "types": "u8u8"}),  # ConvInteger, per-call input scales
    # diagnostic: conv outputs not requantised (ORT then cannot fuse QLinearConv: fp32 convs, no speed-up)
    "plain-int8-sp-no-output-q": ("plain", {"extra": {"OpTypesToExcludeOutputQuantization": ["Conv"]}}),
    "plain-int8-sp-fp32first4": ("plain", {"keep_fp32_first": 4}),
    "plain-int8-sp-fp32first8": ("plain", {"keep_fp32_first": 8}),
    "plain-int8-sp-fp32last4": ("plain", {"keep_fp32_last": 4}),
    # the four layers that, quantised alone, keep >= 40 dB (b64/b128/b256 up-convs, b256 conv1)
    "plain-int8-sp-tolerant4": ("plain", {"only": ("/layers.7/", "/layers.9/", "/layers.11/", "/layers.12/")}),
    "plain-int8-sp-b256up": ("plain", {"only": ("/layers.11/",)}),
}


def main() -> None:
    import onnxruntime as ort

    from engine.evaluation.bench import best_thread_ms, build_stylegan2
    from engine.runtime.export import ExportConfig, export_onnx, random_ws, synthesis_module
    from engine.runtime.quantize import QuantizeConfig, mapping_ws, quantize_synthesis, validate_int8

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generator", default="paper256")
    ap.add_argument("--variants", default="all", help=f"comma list or 'all': {', '.join(VARIANTS)}")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--calibration-samples", type=int, default=16)
    ap.add_argument("--validate", type=int, default=4, help="held-out codes for the PSNR")
    ap.add_argument("--no-torch", action="store_true", help="skip the torch eager timing")
    ap.add_argument("--wall2", action="store_true", help="also 2-thread wall clock (median of 5) of each variant")
    ap.add_argument("--sensitivity", action="store_true",
                    help="instead of the variants: quantise one dense layer of the plain graph at a time (PSNR only)")
    ap.add_argument("--kernels", action="store_true",
                    help="instead of the variants: GMAC/s of single 3x3 convs (paper256 shapes) in fp32, u8s8, u8u8")
    ap.add_argument("--weights-only", action="store_true",
                    help="instead of the variants: PSNR in torch with only the conv weights rounded to 7-12 bits")
    ap.add_argument("--keep", default=None, help="folder to keep the models in (default: a temporary folder)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    names = list(VARIANTS) if args.variants == "all" else [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    torch.set_num_threads(1)
    g = build_stylegan2(args.generator)
    x = mapping_ws(g, 1, seed=99, psi=0.7)

    def cpu_ms(fn) -> float:
        return best_thread_ms(fn, args.reps)

    def session(path: Path, threads: int) -> Any:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    if args.sensitivity:
        sensitivity(g, args)
        return
    if args.kernels:
        kernels(args.reps)
        return
    if args.weights_only:
        weights_only(g, args.validate)
        return
    result: dict[str, Any] = {"generator": args.generator, "load_before": list(os.getloadavg()), "rows": []}
    print(f"load before: {os.getloadavg()}", flush=True)
    torch_ms = None
    if not args.no_torch:
        xt = torch.from_numpy(x)
        with torch.inference_mode():
            torch_ms = cpu_ms(lambda: g.synthesis(xt, noise_mode="const"))
        print(f"torch eager fp32 (grouped reference), 1 thread CPU: {torch_ms:.1f} ms", flush=True)
    result["torch_cpu_ms"] = torch_ms
    print("| variant | quantised convs | 1-thread CPU ms | vs torch eager | PSNR min / mean dB | 2-thread wall ms |")
    print("|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix="d2a-int8-") as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        sources: dict[str, Path] = {}
        for name in names:
            src, kwargs = VARIANTS[name]
            if src not in sources:
                path_variant, fast = ("reference", {}) if src == "ref" else ("fast", {"winograd_min_res": 0})
                module = synthesis_module(g, path_variant, **fast)
                sources[src] = root / f"{src}.onnx"
                export_onnx(module, random_ws(g, 2, seed=1), sources[src], input_name="ws", output_name="img",
                            config=ExportConfig())
            row: dict[str, Any] = {"variant": name, "source": src, "config": kwargs}
            if kwargs is None:
                model = sources[src]
                val = validate_int8(g, model, mapping_ws(g, args.validate, 1235, 0.7))
                row["quantized"] = 0
            else:
                cfg = QuantizeConfig(calibration_samples=args.calibration_samples, **kwargs)
                model = root / f"{name}.onnx"
                rep = quantize_synthesis(g, sources[src], model, cfg, validate=args.validate)
                val = rep["validation"]
                row.update(quantized=len(rep["quantized_nodes"]), fp32_convs=len(rep["fp32_nodes"]),
                           quantize_s=rep["seconds"], mb=rep["mb_int8"], describe=cfg.describe())
            sess = session(model, 1)
            row["cpu_ms"] = round(cpu_ms(lambda s=sess: s.run(None, {"ws": x})), 1)
            row["psnr"], row["psnr_mean"] = round(val["psnr"], 2), round(val["psnr_mean"], 2)
            row["speedup_vs_torch"] = round(torch_ms / row["cpu_ms"], 2) if torch_ms else None
            if args.wall2:
                s2 = session(model, 2)
                s2.run(None, {"ws": x})
                walls = []
                for _ in range(5):
                    t = time.perf_counter()
                    s2.run(None, {"ws": x})
                    walls.append((time.perf_counter() - t) * 1e3)
                row["wall2_ms"] = round(statistics.median(walls), 1)
                row["load_wall2"] = list(os.getloadavg())
            result["rows"].append(row)
            sp = "–" if row["speedup_vs_torch"] is None else f"{row['speedup_vs_torch']:.2f}×"
            print(f"| {name} | {row['quantized']} | {row['cpu_ms']} | {sp} | {row['psnr']:.1f} / "
                  f"{row['psnr_mean']:.1f} | {row.get('wall2_ms', '–')} |", flush=True)
            del sess
    result["load_after"] = list(os.getloadavg())
    print(f"load after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")


def sensitivity(g: torch.nn.Module, args: argparse.Namespace) -> None:
    """PSNR vs torch fp32 with a single dense layer of the plain graph quantised (the others fp32)."""
    import onnx

    from engine.runtime.export import ExportConfig, export_synthesis
    from engine.runtime.quantize import GRAPHS, QuantizeConfig, conv_nodes, quantize_synthesis, subpixel_conv_transpose

    rows = []
    print(f"load before: {os.getloadavg()}", flush=True)
    print("| layer | weight | PSNR min / mean dB |")
    print("|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix="d2a-int8-sens-") as tmp:
        src = Path(tmp) / "plain.onnx"
        path, fast = GRAPHS["plain"]
        export_synthesis(g, src, path=path, config=ExportConfig(validate=False), fast=fast)
        model = onnx.load(str(src))
        subpixel_conv_transpose(model)
        layers: dict[str, list[int]] = {}
        for r in conv_nodes(model):
            if r["kind"] == "dense":
                layers.setdefault(r["layer"], r["weight"])
        del model
        for layer, weight in layers.items():
            cfg = QuantizeConfig(only=(layer,), calibration_samples=args.calibration_samples)
            rep = quantize_synthesis(g, src, Path(tmp) / "one.onnx", cfg, validate=args.validate)
            v = rep["validation"]
            rows.append({"layer": layer, "weight": weight, "nodes": rep["quantized_nodes"], "psnr": v["psnr"],
                         "psnr_mean": v["psnr_mean"]})
            print(f"| {layer} | {weight} | {v['psnr']:.1f} / {v['psnr_mean']:.1f} |", flush=True)
    print(f"load after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"generator": args.generator, "sensitivity": rows}, indent=1) + "\n")


def _conv_model(c: int, o: int, res: int, types: str | None) -> bytes:
    """One 3x3 conv (pad 1) on [1, c, res, res]: fp32, or QDQ-wrapped (fused to QLinearConv by ONNX Runtime)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((o, c, 3, 3)) * 0.05).astype(np.float32)
    if types is None:
        nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
        inits = [numpy_helper.from_array(w, "w")]
    else:
        wscale = 0.001
        if types == "u8s8":
            wq, wz = np.clip(np.round(w / wscale), -127, 127).astype(np.int8), np.zeros(o, np.int8)
        else:
            wq, wz = np.clip(np.round(w / wscale) + 128, 0, 255).astype(np.uint8), np.full(o, 128, np.uint8)
        inits = [numpy_helper.from_array(np.array(0.02, np.float32), "s"),
                 numpy_helper.from_array(np.array(128, np.uint8), "z"), numpy_helper.from_array(wq, "wq"),
                 numpy_helper.from_array(np.full(o, wscale, np.float32), "ws"), numpy_helper.from_array(wz, "wz")]
        nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                 helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
                 helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
                 helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1]),
                 helper.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"]),
                 helper.make_node("DequantizeLinear", ["cq", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, res, res])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]).SerializeToString()


def kernels(reps: int) -> None:
    """GMAC/s of ONNX Runtime's fp32 and int8 3x3 convolutions on this CPU (1 thread, CPU time, best of reps)."""
    import onnxruntime as ort

    from engine.evaluation.bench import best_thread_ms

    print(f"load before: {os.getloadavg()}")
    print("| conv | fp32 GMAC/s | u8s8 GMAC/s | u8u8 GMAC/s |")
    print("|---|---|---|---|")
    for c, o, res in ((512, 512, 32), (256, 256, 64), (128, 128, 128), (64, 64, 256)):
        gmac = c * o * 9 * res * res / 1e9
        x = np.random.default_rng(1).standard_normal((1, c, res, res)).astype(np.float32)
        cells = []
        for types in (None, "u8s8", "u8u8"):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            sess = ort.InferenceSession(_conv_model(c, o, res, types), opts, providers=["CPUExecutionProvider"])
            best = best_thread_ms(lambda s=sess, x=x: s.run(None, {"x": x}), max(reps, 3)) / 1e3  # s
            cells.append(f"{gmac / best:.1f}")
        print(f"| {c}→{o} @ {res}² ({gmac:.2f} GMAC) | " + " | ".join(cells) + " |", flush=True)
    print(f"load after: {os.getloadavg()}")


def weights_only(g: torch.nn.Module, n: int) -> None:
    """PSNR vs fp32 when only the dense conv weights of the synthesis are rounded (symmetric, per output channel)
    to b bits and everything else (activations, outputs) stays fp32: the accuracy ceiling of b-bit weights."""
    import copy

    from engine.runtime.quantize import mapping_ws, psnr

    ws = torch.from_numpy(mapping_ws(g, n, 1235, 0.7))
    with torch.inference_mode():
        ref = g.synthesis(ws, noise_mode="const").numpy()
    print("| weight bits | PSNR per code dB |")
    print("|---|---|")
    for bits in (7, 8, 10, 12):
        q = copy.deepcopy(g)
        qmax = 2 ** (bits - 1) - 1
        with torch.no_grad():
            for m in q.synthesis.modules():
                w = getattr(m, "weight", None)
                if isinstance(w, torch.Tensor) and w.ndim == 4 and min(w.shape[0], w.shape[1]) > 4:
                    scale = w.abs().amax(dim=(1, 2, 3), keepdim=True) / qmax
                    w.copy_(torch.round(w / scale).clamp(-qmax, qmax) * scale)
            out = q.synthesis(ws, noise_mode="const").numpy()
        print(f"| {bits} | " + ", ".join(f"{psnr(out[i], ref[i]):.1f}" for i in range(n)) + " |", flush=True)


if __name__ == "__main__":
    main()
