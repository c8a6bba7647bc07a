"""Runtime: FastSynthesis equals the generator, backends report their providers, fallbacks are loud."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from engine.evaluation.bench import build_stylegan2, synthesis_flops
from engine.runtime import BackendError, ProviderFallbackWarning, RuntimeConfig, create_backend
from engine.runtime.export import psnr, random_ws
from engine.runtime.fast_synthesis import FastSynthesis, FastSynthesisConfig

ALL_WINOGRAD = dict(winograd_min_res=8, winograd_max_res=4096, up_mode="phase-winograd", up_winograd_min_res=8,
                    up_winograd_max_res=4096)
CONFIGS = {
    "plain": dict(winograd_min_res=0, up_mode="transpose"),
    "phase": dict(winograd_min_res=0, up_mode="phase"),
    "default": {},
    "all-winograd": ALL_WINOGRAD,
}


def test_fast_synthesis_matches_generator(tiny) -> None:
    ws = random_ws(tiny, 2, seed=3)
    with torch.no_grad():
        ref = tiny.synthesis(ws, noise_mode="const")
        assert ref.shape == (2, 3, 64, 64)
        assert float(ref.std()) > 0.05  # a real image, not a constant
        for name, kwargs in CONFIGS.items():
            fast = FastSynthesis(tiny, FastSynthesisConfig(**kwargs))
            out = fast(ws)
            assert out.shape == ref.shape
            assert (out - ref).abs().max().item() < 1e-4, name
            assert psnr(out.numpy(), ref.numpy()) > 80, name
            if name == "all-winograd":
                assert "winograd" in fast.layer_modes() and "up-phase-winograd" in fast.layer_modes()


def test_fast_synthesis_official_fixture(shared_dir) -> None:
    """The fast path reproduces an official StyleGAN2-ADA network's own output (mixed ws, const noise)."""
    from safetensors.torch import load_file

    from engine.generators.stylegan2 import Generator

    name = "sg2ada_r64_w128_map8"
    d = shared_dir / "fixtures" / "stylegan2"
    kw = dict(json.loads((d / f"{name}.json").read_text())["G_ema_init_kwargs"])
    syn_kw = kw.pop("synthesis_kwargs", {})
    g = Generator(**kw, **syn_kw).eval()
    g.load_state_dict(load_file(str(d / f"{name}.G_ema.safetensors")))
    data = np.load(d / f"{name}.npz")
    ws, img = torch.from_numpy(data["ws_mix"]), data["img_mix"]
    for cfg in (FastSynthesisConfig(), FastSynthesisConfig(**ALL_WINOGRAD)):
        with torch.no_grad():
            out = FastSynthesis(g, cfg)(ws).numpy()
        assert np.abs(out - img).max() < 1e-4


def test_fast_synthesis_rejects_other_generators() -> None:
    with pytest.raises(ValueError, match="StyleGAN2"):
        FastSynthesis(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="up_mode"):
        FastSynthesisConfig(up_mode="nearest").validate()


def test_flops_paper256_layout() -> None:
    """Analytic count: the 3x3 and transposed 3x3 convs of paper256 are 14.87 GMAC = 29.7 GFLOP; the rest
    (affines, FIR, ToRGB, epilogues) adds a little."""
    f = synthesis_flops(build_stylegan2("paper256"))
    assert f is not None and 29.7e9 < f < 30.6e9
    assert synthesis_flops(torch.nn.Linear(2, 2)) is None


def test_torch_backends(tiny) -> None:
    ws = random_ws(tiny, 1, seed=5)
    with torch.no_grad():
        ref = tiny.synthesis(ws, noise_mode="const").numpy()
    cases = ((RuntimeConfig(), 200), (RuntimeConfig(path="fast"), 80), (RuntimeConfig(precision="bf16"), 20))
    for cfg, min_psnr in cases:
        b = create_backend(cfg, tiny)
        assert b.providers == ["torch-cpu"]
        assert b.name == cfg.describe()
        out = b(ws).numpy()
        assert out.dtype == np.float32 and out.shape == ref.shape
        assert psnr(out, ref) > min_psnr, b.name
    with pytest.raises(ValueError, match="expected ws"):
        b(torch.zeros(1, 3, 512))


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="backend"):
        RuntimeConfig(backend="tensorflow").validate()
    with pytest.raises(ValueError, match="provider"):
        RuntimeConfig(backend="onnxruntime", providers=("rocm",)).validate()
    with pytest.raises(ValueError, match="bf16"):
        RuntimeConfig(precision="fp16").validate()
    with pytest.raises(ValueError, match="needs the generator"):
        create_backend(RuntimeConfig())


def test_ort_backend_providers_and_fallback(tiny) -> None:
    """The CPU session reports what runs; CUDA (absent here) falls back loudly, or errors when asked to."""
    import onnxruntime as ort

    ws = random_ws(tiny, 3, seed=7)
    with torch.no_grad():
        ref = tiny.synthesis(ws, noise_mode="const").numpy()
    cpu = create_backend(RuntimeConfig(backend="onnxruntime", path="fast", providers=("cpu",)), tiny)
    assert cpu.providers == ["CPUExecutionProvider"] and cpu.fallback is None
    assert cpu.name == "onnxruntime-fast-CPU"
    assert psnr(cpu(ws).numpy(), ref) > 80  # batch 3 through the same session as the warm-up's batch 1
    if "CUDAExecutionProvider" in ort.get_available_providers():  # pragma: no cover - not on this machine
        pytest.skip("CUDA is available: the fallback cannot be provoked")
    cfg = RuntimeConfig(backend="onnxruntime", path="fast", providers=("cuda", "cpu"), onnx_path=str(cpu.model_path))
    with pytest.warns(ProviderFallbackWarning, match="CUDAExecutionProvider"):
        fb = create_backend(cfg, None)
    assert fb.providers == ["CPUExecutionProvider"]
    assert fb.fallback and "CUDA" in fb.fallback
    assert fb.describe()["fallback"] == fb.fallback
    cfg.on_unavailable = "error"
    with pytest.raises(BackendError, match="CUDAExecutionProvider"), warnings.catch_warnings():
        warnings.simplefilter("error")
        create_backend(cfg, None)
    with pytest.raises(BackendError, match="not found"):
        create_backend(RuntimeConfig(backend="onnxruntime", onnx_path="/nonexistent/model.onnx"))
