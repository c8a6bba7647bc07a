"""Per-layer cost of each exact formulation in ``FastSynthesis`` (paper256 layout, batch 1), to choose defaults.

For every synthesis layer: 3x3 convs as a direct convolution vs Winograd F(4,3); 2x up-convs as transposed conv +
FIR vs four polyphase convs (+ pixel shuffle) vs polyphase through Winograd. Times are the *CPU time* of the
calling thread with one intra-op thread (best of ``--reps``), which stays meaningful on a shared, busy machine;
wall time on an idle machine is close to it.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_runtime_layers.py [--reps 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os

import torch


def main() -> None:
    from engine.evaluation.bench import best_thread_ms, build_stylegan2, synthesis_conv_layers
    from engine.runtime.fast_synthesis import FastSynthesisConfig, _FastConv, winograd_transforms

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--generator", default="paper256")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = build_stylegan2(args.generator)
    bb, aa = winograd_transforms()
    syn = g.synthesis
    w = torch.randn(1, g.w_dim)

    def cpu_ms(fn) -> float:
        return best_thread_ms(fn, args.reps)

    rows = []
    print(f"load before: {os.getloadavg()}")
    print("| layer | in -> out ch | " + " | ".join(["option", "ms"] * 3) + " |")
    with torch.inference_mode():
        for res, name, layer in synthesis_conv_layers(syn):
            x = torch.randn(1, layer.in_channels, res // layer.up, res // layer.up)
            if layer.up == 1:
                cfgs = [FastSynthesisConfig(winograd_min_res=0),
                        FastSynthesisConfig(winograd_min_res=4, winograd_max_res=4096)]
            else:
                cfgs = [FastSynthesisConfig(up_mode=m, up_winograd_min_res=4, up_winograd_max_res=4096)
                        for m in ("transpose", "phase", "phase-winograd")]
            times = {}
            for cfg in cfgs:
                mod = _FastConv(layer, cfg, bb, aa)
                times[mod.mode] = round(cpu_ms(lambda m=mod, x=x: m(x, w)), 2)
            rows.append({"layer": f"b{res}.{name}", "in": layer.in_channels, "out": layer.out_channels,
                         "cpu_ms": times})
            cells = " | ".join(f"{k} | {v:.1f}" for k, v in times.items())
            print(f"| b{res}.{name} | {layer.in_channels} -> {layer.out_channels} | {cells} |", flush=True)
    print(f"load after: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"generator": args.generator, "rows": rows, "load_after": os.getloadavg()}, f, indent=1)


if __name__ == "__main__":
    main()
