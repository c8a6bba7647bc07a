"""Whole-network cost of each exact StyleGAN2 formulation, torch eager vs ONNX Runtime CPU (paper256, batch 1).

CPU time of the calling thread with one intra-op thread (best of ``--reps``): comparable across runs on a busy,
shared machine. PSNR against the engine's grouped-modulation synthesis (the reference).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_runtime_variants.py [--reps 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

VARIANTS: dict[str, dict | None] = {
    "engine-activation": None,  # the generator's own activation-modulation path
    "plain": {"winograd_min_res": 0, "up_mode": "transpose"},
    "default": {},
    "winograd-16-64": {"winograd_min_res": 16, "winograd_max_res": 64},
    "winograd-16-128": {"winograd_min_res": 16, "winograd_max_res": 128},
    "phase": {"winograd_min_res": 0, "up_mode": "phase"},
    "phase-winograd": {"up_mode": "phase-winograd"},
}


def main() -> None:
    import onnxruntime as ort

    from engine.evaluation.bench import best_thread_ms, build_stylegan2
    from engine.runtime.export import ExportConfig, SynthesisModule, export_onnx, random_ws
    from engine.runtime.fast_synthesis import FastSynthesis, FastSynthesisConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--generator", default="paper256")
    ap.add_argument("--no-torch", action="store_true", help="ONNX Runtime only")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = build_stylegan2(args.generator)
    ws = random_ws(g, 1)

    def cpu_ms(fn) -> float:
        return best_thread_ms(fn, args.reps)

    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        mse = float(np.mean((a.astype(np.float64) - b) ** 2))
        return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)

    with torch.inference_mode():
        ref = g.synthesis(ws, noise_mode="const").numpy()
        rows = [{"variant": "engine-grouped (reference)", "torch_cpu_ms": None if args.no_torch else
                 round(cpu_ms(lambda: g.synthesis(ws, noise_mode="const")), 1), "ort_cpu_ms": None, "psnr": math.inf}]
    print(f"load before: {os.getloadavg()}")
    print("| variant | torch eager, 1 thread, CPU ms | ONNX Runtime, 1 thread, CPU ms | PSNR dB |")
    print("|---|---|---|---|")
    print(f"| {rows[0]['variant']} | {rows[0]['torch_cpu_ms']} | – | inf |", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, kwargs in VARIANTS.items():
            module = SynthesisModule(g) if kwargs is None else FastSynthesis(g, FastSynthesisConfig(**kwargs))
            t_ms = None
            with torch.inference_mode():
                out = module(ws).numpy()
                if not args.no_torch:
                    t_ms = round(cpu_ms(lambda m=module: m(ws)), 1)
            path = Path(tmp) / f"{name}.onnx"
            export_onnx(module, random_ws(g, 2), path, input_name="ws", output_name="img", config=ExportConfig())
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            x = ws.numpy()
            o_ms = round(cpu_ms(lambda s=sess, x=x: s.run(None, {"ws": x})), 1)
            p = min(psnr(out, ref), psnr(sess.run(None, {"ws": x})[0], ref))
            rows.append({"variant": name, "config": kwargs, "torch_cpu_ms": t_ms, "ort_cpu_ms": o_ms, "psnr": p})
            print(f"| {name} | {t_ms} | {o_ms} | {p:.1f} |", flush=True)
    print(f"load after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"generator": args.generator, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
