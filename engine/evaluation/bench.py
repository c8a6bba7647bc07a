"""``d2a bench``: the live pipeline and the generator alone, per backend side by side in one run.

Pipeline (per frame, sequential on the calling thread): decode (PyAV) -> landmarks (mediapipe, video mode) ->
align + heatmaps -> FAN -> generator -> colour conversion (the last four timed by ``Animator.step_timed``).
Generator alone: ws -> image per backend, median/p95 latency, PSNR against torch eager fp32, analytic FLOPs per
frame and the share of this machine's measured fp32 matmul peak.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

PIPELINE_STAGES = ("decode", "landmarks", "align+heatmaps", "fan", "generator", "convert")
# name -> RuntimeConfig keyword arguments
BACKEND_SPECS: dict[str, dict[str, Any]] = {
    "torch": {"backend": "torch", "path": "reference"},
    "torch-bf16": {"backend": "torch", "path": "reference", "precision": "bf16"},
    "torch-fast": {"backend": "torch", "path": "fast"},
    "torch-compile": {"backend": "torch", "path": "reference", "compile": True},
    "ort": {"backend": "onnxruntime", "path": "reference"},
    "ort-fast": {"backend": "onnxruntime", "path": "fast"},
    # lossy: static int8 (engine.runtime.quantize), all dense convs, quantised once into the user cache
    "ort-int8": {"backend": "onnxruntime", "path": "fast"},
}
STYLEGAN2_ONLY = ("torch-fast", "ort-fast", "ort-int8")


@dataclass
class BenchConfig:
    """What ``d2a bench`` measures."""

    bundle: str | None = None  # bundle folder; None = the embedded default
    generator: str | None = None  # None = the bundle's; "paper256" / "tiny" (random weights) or a checkpoint
    video: str | None = None  # driving clip; None = resources/samples/*.mp4, else a rendered FaceWorld clip
    frames: int = 60  # pipeline frames per backend
    generator_runs: int = 10  # timed generator calls per backend
    backends: tuple[str, ...] = ("torch", "torch-bf16", "torch-fast", "ort", "ort-fast")
    threads: int = 0  # 0 = all cores
    pipeline: bool = True  # run the pipeline section
    seed: int = 0  # source portrait seed and random ws
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ generators


def build_stylegan2(name: str, seed: int = 0) -> nn.Module:
    """Random-weight StyleGAN2 generators for benchmarks and tests.

    "paper256": the official 'paper256' config (256², cbase 16384, cmax 512, 8 mapping layers, conv_clamp 256,
    14 ws of 512). "tiny": the same 256² layout (14 ws of 512, so it fits FaceWorld bundles) with at most 32
    channels (fast). "tiny64": 64², 10 ws of 64, at most 32 channels (unit tests). Noise strengths and biases
    are made non-zero so that every term of the computation is exercised.
    """
    from engine.generators.stylegan2 import Generator

    specs = {
        "paper256": dict(img_resolution=256, channel_base=16384, channel_max=512, mapping_kwargs={"num_layers": 8}),
        "tiny": dict(img_resolution=256, channel_base=512, channel_max=32, mapping_kwargs={"num_layers": 2}),
        "tiny64": dict(img_resolution=64, channel_base=512, channel_max=32, mapping_kwargs={"num_layers": 2}),
    }
    if name not in specs:
        raise ValueError(f"unknown built-in generator {name!r}; known: {', '.join(specs)}")
    spec = specs[name]
    w_dim = 64 if name == "tiny64" else 512
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = Generator(z_dim=w_dim, c_dim=0, w_dim=w_dim, conv_clamp=256, num_fp16_res=4, **spec).eval()
        with torch.no_grad():
            for m in g.modules():
                if hasattr(m, "noise_strength"):
                    m.noise_strength.fill_(0.05)
                if hasattr(m, "bias") and isinstance(m.bias, torch.Tensor) and m.bias.ndim == 1:
                    m.bias.add_(0.05 * torch.randn_like(m.bias))
    return g


def load_bench_generator(spec: str, device: str = "cpu") -> nn.Module:
    """``paper256``/``tiny`` (built in code), ``faceworld`` or a checkpoint path."""
    if spec in ("paper256", "tiny", "tiny64"):
        return build_stylegan2(spec)
    from engine.generators import load_generator

    return load_generator(spec, device=device)


def synthesis_conv_layers(syn: nn.Module) -> Iterator[tuple[int, str, nn.Module]]:
    """(block resolution, "conv0"|"conv1", layer) of every modulated conv of a StyleGAN2 synthesis, in order."""
    for res in syn.block_resolutions:
        block = getattr(syn, f"b{res}")
        for name in ("conv0", "conv1"):
            layer = getattr(block, name, None)
            if layer is not None:
                yield res, name, layer


def synthesis_flops(generator: nn.Module) -> float | None:
    """Analytic FLOPs (2 x multiply-adds) of one ``synthesis`` call of a StyleGAN2 (batch 1, the reference
    formulation: 3x3 convs, transposed 3x3 convs for the 2x layers, 1x1 ToRGB, FIR filters, affines,
    demodulation). None for generators without that structure (FaceWorld)."""
    from engine.runtime.export import is_stylegan2

    if not is_stylegan2(generator):
        return None
    syn = generator.synthesis
    macs = 0.0
    for res, _, layer in synthesis_conv_layers(syn):
        o, i, k, _ = layer.weight.shape
        in_res = res // layer.up
        macs += o * i * k * k * in_res * in_res  # direct or transposed conv: every input pixel meets k*k taps
        macs += i * layer.affine.weight.shape[1] + o * i  # affine + demodulation coefficients
        if layer.up == 2:  # FIR [4x4] on the (2r+1)^2 transposed-conv output, per channel
            fk = layer.resample_filter.shape[-1]
            macs += o * fk * fk * res * res
        macs += 3 * o * res * res  # style scale, demod scale, noise/bias/act (as multiply-add equivalents)
    for res in syn.block_resolutions:
        block = getattr(syn, f"b{res}")
        rgb = block.torgb
        c = rgb.weight.shape[1]
        macs += rgb.weight.shape[0] * c * res * res + c * rgb.affine.weight.shape[1] + c * res * res
        if res > syn.block_resolutions[0]:
            macs += 3 * 16 * res * res  # skip-image upsampling FIR
    return 2.0 * macs


def make_timing_bundle(path: str | Path, resolution: int = 256, num_directions: int = 16, seed: int = 0) -> Path:
    """A FaceWorld bundle with a random direction bank and an untrained (random) FAN, for timing only.

    Every stage of the live pipeline costs the same as with a trained bundle (same shapes and layers); the
    animation is meaningless. Used by tests and when the embedded default bundle is not built yet.
    """
    from engine.bundle import Bundle
    from engine.fan import FAN, FANConfig

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        dirs = torch.randn(num_directions, 14, 512) * 0.02
        dirs[:, 8:] = 0
        cfg = FANConfig(num_ws=14, w_dim=512, output="coeffs", num_directions=num_directions)
        fan = FAN(cfg, bank=dirs)
        for p in fan.parameters():
            torch.nn.init.normal_(p, std=0.01)
    info = [{"region": "mouth" if i % 2 else "eyes", "group": "pose" if i < 3 else "expression", "k": 2,
             "origin": [0, i], "norm": 1.0} for i in range(num_directions)]
    bundle = Bundle("faceworld", {"resolution": int(resolution)}, dirs, info, fan=fan,
                    fan_config=fan.config.to_dict(), landmark_points=np.asarray(fan.config.points),
                    meta={"note": "timing bundle: random bank and untrained FAN (engine.evaluation.bench)"})
    return bundle.save(path)


# ------------------------------------------------------------------------------------------------ machine


def measure_peak_gflops(threads: int, size: int = 2048, dtype: torch.dtype = torch.float32, reps: int = 8) -> float:
    """Best-of fp32 (or bf16) matmul throughput of this machine in GFLOP/s (a large square matmul)."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(size, size, dtype=dtype)
        b = torch.randn(size, size, dtype=dtype)
        a @ b
        best = math.inf
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
        return 2.0 * size**3 / best / 1e9
    finally:
        torch.set_num_threads(old)


def machine_info(threads: int) -> dict[str, Any]:
    """CPU model, cores, load, library versions, ORT providers and the measured matmul peaks."""
    import onnxruntime as ort

    model = platform.processor() or "?"
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    except OSError:
        pass
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f" {f}" in flags]
    return {
        "cpu": model,
        "isa": isa,
        "threads": threads,
        "loadavg_before": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "ort_available_providers": ort.get_available_providers(),
        "peak_fp32_gflops": round(measure_peak_gflops(threads), 1),
        "peak_bf16_gflops": round(measure_peak_gflops(threads, size=512, dtype=torch.bfloat16, reps=2), 1),
    }


# ------------------------------------------------------------------------------------------------ helpers


def best_thread_ms(fn: Callable[[], Any], reps: int = 3) -> float:
    """CPU time of the calling thread for one call of ``fn`` in ms: best of ``reps`` after one warm-up call.

    Thread CPU time stays meaningful on a loaded machine (wall time does not); use it with one compute thread."""
    import time

    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t)
    return best * 1e3


def _stats(values: list[float]) -> tuple[float, float]:
    """(median, p95) of a list of milliseconds."""
    if not values:
        return float("nan"), float("nan")
    v = sorted(values)
    p95 = v[min(len(v) - 1, max(0, math.ceil(0.95 * len(v)) - 1))]
    return float(statistics.median(v)), float(p95)


def _psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def make_backends(
    generator: nn.Module, names: tuple[str, ...], threads: int, log: Callable[[str], None]
) -> list[tuple[str, Any]]:
    """Create the requested backends (skipping, with a message, those that do not apply to this generator)."""
    from engine.runtime import RuntimeConfig, create_backend
    from engine.runtime.export import is_stylegan2

    out = []
    for name in names:
        if name not in BACKEND_SPECS:
            raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKEND_SPECS)}")
        if name in STYLEGAN2_ONLY and not is_stylegan2(generator):
            log(f"skip {name}: needs a StyleGAN2 generator")
            continue
        t = time.perf_counter()
        cfg = RuntimeConfig(threads=threads, warmup_runs=1, **BACKEND_SPECS[name])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if name == "ort-int8":
                from engine.runtime.quantize import cached_int8_model

                cfg.onnx_path = str(cached_int8_model(generator))
            backend = create_backend(cfg, generator)
            if name == "ort-int8":
                backend.name = backend.name.replace("-fast-", "-int8-")
        log(f"{name}: {backend.name} on {backend.providers} ready in {time.perf_counter() - t:.1f} s")
        out.append((name, backend))
    return out


# ------------------------------------------------------------------------------------------------ sections


def bench_generator(
    generator: nn.Module, backends: list[tuple[str, Any]], runs: int, seed: int, peak: float
) -> list[dict[str, Any]]:
    """ws -> image per backend: median/p95 ms, PSNR vs torch fp32 eager (the generator's own synthesis)."""
    from engine.runtime.export import random_ws

    ws = random_ws(generator, 1, seed=seed)
    with torch.inference_mode():
        ref = generator.synthesis(ws, noise_mode="const").float().numpy()
    flops = synthesis_flops(generator)
    rows = []
    for name, backend in backends:
        t_first = time.perf_counter()
        out = backend(ws).float().numpy()
        slow = time.perf_counter() - t_first > 5.0  # e.g. bf16 without native support: time a single call
        times, cpu = [], []
        for _ in range(1 if slow else runs):
            c = time.process_time()
            t = time.perf_counter()
            backend(ws)
            times.append((time.perf_counter() - t) * 1e3)
            cpu.append((time.process_time() - c) * 1e3)
        med, p95 = _stats(times)
        row = {
            "backend": name,
            "name": backend.name,
            "providers": list(backend.providers),
            "ms": round(med, 2),
            "ms_p95": round(p95, 2),
            "cpu_ms": round(_stats(cpu)[0], 2),  # process CPU time per call (all threads): robust to a busy machine
            "psnr": round(_psnr(out, ref, 2.0), 2),
            "max_abs": float(np.abs(out - ref).max()),
        }
        if flops:
            row["gflops_per_frame"] = round(flops / 1e9, 3)
            row["effective_gflops"] = round(flops / (med / 1e3) / 1e9, 1)
            row["share_of_fp32_peak"] = round(flops / (med / 1e3) / 1e9 / peak, 3)
        rows.append(row)
    return rows


def default_video(out_dir: Path, frames: int, seed: int = 0) -> Path:
    """The bundled sample clip if there is one, else a FaceWorld driving clip rendered into ``out_dir``."""
    from engine.resources import samples_dir

    samples = sorted(samples_dir().glob("*.mp4")) if samples_dir().is_dir() else []
    if samples:
        return samples[0]
    from engine.generators import load_generator
    from engine.media import VideoWriter, to_uint8

    fw = load_generator("faceworld", resolution=256)
    gen = torch.Generator().manual_seed(seed + 1000)
    z = torch.randn(3, fw.z_dim, generator=gen)
    with torch.no_grad():
        keys = fw.mapping(z, None, truncation_psi=0.7)
        path = out_dir / "driving_faceworld.mp4"
        res = int(fw.img_resolution)
        with VideoWriter(path, 25, (res, res)) as w:
            for i in range(max(frames, 2)):
                t = 2.0 * i / max(frames - 1, 1)
                k = min(int(t), 1)
                ws = torch.lerp(keys[k : k + 1], keys[k + 1 : k + 2], t - k)
                w.write(to_uint8(fw.synthesis(ws))[0])
    return path


def bench_pipeline(
    bundle: Any,
    backends: list[tuple[str, Any]],
    video: Path,
    frames: int,
    seed: int,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """The live pipeline on ``video`` per backend; PSNR of every output frame vs the first backend's frames."""
    from engine.animate import Animator
    from engine.landmarks import create_detector
    from engine.media import VideoReader

    anim = Animator(bundle)  # torch reference of the bundle's generator: source render + landmarks
    anim.set_source(int(seed))
    rows = []
    ref_frames: list[np.ndarray] | None = None
    for name, backend in backends:
        anim.backend = backend
        anim.reference_points = None
        anim.last_frame = None
        det = create_detector("mediapipe", video_mode=True)
        stages: dict[str, list[float]] = {s: [] for s in PIPELINE_STAGES}
        totals: list[float] = []
        outs: list[np.ndarray] = []
        n_face = 0
        t_start = time.perf_counter()
        with VideoReader(video) as reader:
            it = iter(reader)
            for _ in range(frames):
                t0 = time.perf_counter()
                frame = next(it, None)
                if frame is None:
                    break
                t1 = time.perf_counter()
                d = det.detect(frame)
                t2 = time.perf_counter()
                out, tim = anim.step_timed(d.points if d.found else None)
                t3 = time.perf_counter()
                n_face += int(d.found)
                stages["decode"].append((t1 - t0) * 1e3)
                stages["landmarks"].append((t2 - t1) * 1e3)
                for s in ("align+heatmaps", "fan", "generator", "convert"):
                    if s in tim:
                        stages[s].append(float(tim[s]))
                totals.append((t3 - t0) * 1e3)
                outs.append(out)
        wall = time.perf_counter() - t_start
        det.close()
        if not outs:
            raise ValueError(f"{video}: no frames decoded")
        if ref_frames is None:
            ref_frames = outs
        n = min(len(outs), len(ref_frames))
        psnr = _psnr(np.stack(outs[:n]), np.stack(ref_frames[:n]), 255.0)
        med = {s: round(_stats(v)[0], 2) for s, v in stages.items() if v}
        p95 = {s: round(_stats(v)[1], 2) for s, v in stages.items() if v}
        tm, tp = _stats(totals)
        row = {
            "backend": name,
            "name": backend.name,
            "providers": list(backend.providers),
            "frames": len(outs),
            "frames_with_face": n_face,
            "fps": round(len(outs) / wall, 2),
            "fps_from_median": round(1e3 / tm, 2),
            "total_ms": round(tm, 2),
            "total_ms_p95": round(tp, 2),
            "stages_ms": med,
            "stages_p95_ms": p95,
            "psnr": round(psnr, 2),
            "psnr_reference": rows[0]["name"] if rows else backend.name,
        }
        log(f"pipeline {name}: {row['fps']} fps, stages {med}")
        rows.append(row)
    anim.close()
    return rows


def run_bench(config: BenchConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run both sections; returns the JSON-ready result (``pipeline``, ``generator``, ``machine``, ...)."""
    from engine.bundle import load_bundle
    from engine.runtime.base import default_threads

    threads = config.threads or default_threads()
    torch.set_num_threads(threads)
    result: dict[str, Any] = {"config": {k: v for k, v in vars(config).items() if k != "extra"}}
    result["machine"] = machine_info(threads)
    peak = result["machine"]["peak_fp32_gflops"]
    log(f"machine: {result['machine']['cpu']}, {threads} threads, fp32 peak {peak} GFLOP/s")
    bundle = load_bundle(config.bundle) if (config.generator is None or config.pipeline) else None
    generator = bundle.generator() if config.generator is None else load_bench_generator(config.generator)
    generator.eval()
    result["generator_name"] = config.generator or (bundle.generator_ref if bundle else "?")
    result["generator_info"] = {
        "num_ws": int(generator.num_ws),
        "w_dim": int(generator.w_dim),
        "img_resolution": int(generator.img_resolution),
        "gflops_per_frame": (lambda f: None if f is None else round(f / 1e9, 3))(synthesis_flops(generator)),
    }
    names = ("torch",) + tuple(b for b in config.backends if b != "torch")  # the fp32 eager reference comes first
    backends = make_backends(generator, names, threads, log)
    result["backends"] = [dict(key=n, **b.describe()) for n, b in backends]
    result["generator"] = bench_generator(generator, backends, config.generator_runs, config.seed, peak)
    for row in result["generator"]:
        log(f"generator {row['backend']}: {row['ms']} ms (p95 {row['ms_p95']}), PSNR {row['psnr']} dB")
    result["pipeline"] = []
    if config.pipeline and bundle is not None:
        if (generator.num_ws, generator.w_dim) != (bundle.directions.shape[1], bundle.directions.shape[2]):
            log("pipeline skipped: the generator's W+ shape differs from the bundle's")
        else:
            with tempfile.TemporaryDirectory(prefix="d2a-bench-") as tmp:
                video = Path(config.video) if config.video else default_video(Path(tmp), config.frames, config.seed)
                result["video"] = str(video)
                slow = {r["backend"]: r["ms"] for r in result["generator"] if r["ms"] > 2000}
                for name, ms in slow.items():
                    log(f"pipeline: skip {name} (generator {ms:.0f} ms/frame, too slow for a live run)")
                live = [(n, b) for n, b in backends if n not in slow or n == "torch"]
                result["pipeline"] = bench_pipeline(bundle, live, video, config.frames, config.seed, log)
    result["machine"]["loadavg_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return result
