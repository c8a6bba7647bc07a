"""StyleGAN2 engine: fidelity against the official reference fixtures, and CPU synthesis speed per modulation path.

Usage::

    .venv/bin/python benchmarks/bench_stylegan2.py fidelity        # table of max errors, all fixtures, both paths
    .venv/bin/python benchmarks/bench_stylegan2.py speed --threads 2 --res 256 1024

CPU ms (process time) is also printed: on a machine shared with other jobs, wall time is unreliable while the
single-thread CPU time still measures the work.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "stylegan2"


def fidelity() -> None:
    from safetensors.torch import load_file

    from engine.generators.checkpoints import load_checkpoint
    from engine.generators.stylegan2 import Generator

    print("| fixture | path | max ws rel. error | max image abs. error |")
    print("|---|---|---|---|")
    for js in sorted(FIXTURES.glob("*.json")):
        meta = json.loads(js.read_text())
        ref = np.load(FIXTURES / meta["npz"])
        if meta["format"] == "rosinality-pt":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = load_checkpoint(FIXTURES / meta["checkpoint"])
        else:
            kw = dict(meta["G_ema_init_kwargs"])
            kw.update(kw.pop("synthesis_kwargs", {}))
            g = Generator(**kw).eval()
            g.load_state_dict(load_file(str(FIXTURES / meta["tensors"])), strict=True)
        z = torch.from_numpy(ref["z"])
        c = torch.from_numpy(ref["c"]) if g.c_dim else None
        for mode in ("grouped", "activation"):
            g.set_modulation(mode)
            ws_err = img_err = 0.0
            with torch.no_grad():
                for psi, key in ((1.0, "psi1"), (0.7, "psi07")):
                    if f"ws_{key}" not in ref.files:
                        continue
                    ws = g.mapping(z, c, truncation_psi=psi)
                    r = torch.from_numpy(ref[f"ws_{key}"])
                    ws_err = max(ws_err, float((ws - r).abs().max() / r.abs().max()))
                    img = g.synthesis(ws)
                    img_err = max(img_err, float((img - torch.from_numpy(ref[f"img_{key}"])).abs().max()))
                img = g.synthesis(torch.from_numpy(ref["ws_mix"]))
                img_err = max(img_err, float((img - torch.from_numpy(ref["img_mix"])).abs().max()))
            print(f"| {meta['name']} | {mode} | {ws_err:.1e} | {img_err:.1e} |")


def speed(resolutions: list[int], batches: list[int], repeats: int) -> None:
    from engine.generators.stylegan2 import Generator

    print(f"threads={torch.get_num_threads()}")
    print("| layout | batch | path | wall ms / image | CPU ms / image |")
    print("|---|---|---|---|---|")
    for res in resolutions:
        torch.manual_seed(0)
        g = Generator(
            z_dim=512, c_dim=0, w_dim=512, img_resolution=res, mapping_kwargs={"num_layers": 8},
            channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256,
        ).eval()
        for n in batches:
            ws = g.mapping(torch.randn(n, 512)).detach()
            for mode in ("grouped", "activation"):
                g.set_modulation(mode)
                with torch.no_grad():
                    g.synthesis(ws)  # warm-up
                    t, cpu = time.perf_counter(), time.process_time()
                    for _ in range(repeats):
                        g.synthesis(ws)
                    ms = (time.perf_counter() - t) / repeats / n * 1000
                    cpu_ms = (time.process_time() - cpu) / repeats / n * 1000
                print(f"| config-f {res}² | {n} | {mode} | {ms:.0f} | {cpu_ms:.0f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["fidelity", "speed"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--res", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.what == "fidelity":
        fidelity()
    else:
        speed(a.res, a.batch, a.repeats)


if __name__ == "__main__":
    main()
