"""StyleGAN2 generator: exact reproduction of official outputs, both modulation paths, ONNX export, options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.generators.stylegan2 import Generator, setup_filter, upsample2d

NVLABS = [
    "sg2ada_r32_w64_cond10",
    "sg2ada_r64_w128_map8",
    "sg3repo_sg2_r64_w128_map2",
    "sg2ada_r256_w512_map2_clamp256",
]


def official(shared_dir: Path, name: str, **override: Any) -> tuple[Generator, dict[str, np.ndarray], dict]:
    """Our Generator built from a fixture's official kwargs, with the official state_dict loaded strictly."""
    from safetensors.torch import load_file

    d = shared_dir / "fixtures" / "stylegan2"
    if not d.is_dir():
        pytest.skip("../shared/fixtures/stylegan2 is absent")
    meta = json.loads((d / f"{name}.json").read_text())
    kw = dict(meta["G_ema_init_kwargs"])
    kw.update(kw.pop("synthesis_kwargs", {}))  # stylegan2-ada nests them; our Generator is flat like stylegan3's
    kw.update(override)
    g = Generator(**kw).eval()
    g.load_state_dict(load_file(str(d / f"{name}.G_ema.safetensors")), strict=True)
    return g, dict(np.load(d / f"{name}.npz")), meta


@pytest.mark.shared
@pytest.mark.parametrize("modulation", ["grouped", "activation"])
@pytest.mark.parametrize("name", NVLABS)
def test_official_state_dict_reproduces_reference(shared_dir: Path, name: str, modulation: str) -> None:
    g, ref, meta = official(shared_dir, name)
    g.set_modulation(modulation)
    assert (g.num_ws, g.c_dim, g.img_resolution) == (meta["num_ws"], meta["c_dim"], meta["img_resolution"])
    torch.testing.assert_close(g.w_avg, torch.from_numpy(ref["w_avg"]), rtol=0, atol=0)
    n = 2
    z = torch.from_numpy(ref["z"][:n])
    c = torch.from_numpy(ref["c"][:n]) if g.c_dim else None
    with torch.no_grad():
        for psi, key in ((1.0, "psi1"), (0.7, "psi07")):
            ws = g.mapping(z, c, truncation_psi=psi)
            ref_ws = torch.from_numpy(ref[f"ws_{key}"][:n])
            assert float((ws - ref_ws).abs().max() / ref_ws.abs().max()) <= 1e-5
            img = g.synthesis(ws, noise_mode="const")
            assert img.dtype == torch.float32 and img.shape == (n, 3, g.img_resolution, g.img_resolution)
            assert float((img - torch.from_numpy(ref[f"img_{key}"][:n])).abs().max()) <= 1e-4
        img = g.synthesis(torch.from_numpy(ref["ws_mix"][:n]))
        assert float((img - torch.from_numpy(ref["img_mix"][:n])).abs().max()) <= 1e-4
        img = g(z, c)  # forward = mapping (psi 1) + synthesis
        assert float((img - torch.from_numpy(ref["img_psi1"][:n])).abs().max()) <= 1e-4


@pytest.mark.shared
def test_conv_clamp_is_applied(shared_dir: Path) -> None:
    """Ignoring conv_clamp changes this network's image by ~7.3 (README calibration): the clamp must be on."""
    g, ref, meta = official(shared_dir, "sg2ada_r256_w512_map2_clamp256", conv_clamp=None)
    assert meta["conv_clamp"] == 256
    with torch.no_grad():
        img = g.synthesis(torch.from_numpy(ref["ws_mix"][:1]))
    assert float((img - torch.from_numpy(ref["img_mix"][:1])).abs().max()) > 1.0


@pytest.mark.shared
def test_conditional_mapping_needs_labels(shared_dir: Path) -> None:
    g, ref, _ = official(shared_dir, "sg2ada_r32_w64_cond10")
    z = torch.from_numpy(ref["z"][:2])
    with pytest.raises(ValueError, match="conditional"):
        g.mapping(z)
    c = torch.from_numpy(ref["c"][:2])
    with torch.no_grad():
        other = g.mapping(z, c.roll(1, dims=0))
    assert float((other - torch.from_numpy(ref["ws_psi1"][:2])).abs().max()) > 1e-3  # the label matters


@pytest.mark.shared
def test_bf16_autocast_stays_close(shared_dir: Path) -> None:
    """Reduced precision for speed: demodulation/normalisation stay fp32, the image stays close to fp32."""
    g, ref, _ = official(shared_dir, "sg2ada_r64_w128_map8")
    ws = torch.from_numpy(ref["ws_mix"][:2])
    z = torch.from_numpy(ref["z"][:2])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        img = g.synthesis(ws)
        ws_autocast = g.mapping(z, truncation_psi=0.7)
    with torch.no_grad():
        torch.testing.assert_close(ws_autocast, g.mapping(z, truncation_psi=0.7), rtol=0, atol=0)  # mapping: fp32
    assert img.dtype == torch.float32 and torch.isfinite(img).all()
    err = (img - torch.from_numpy(ref["img_mix"][:2])).abs()
    assert float(err.mean()) < 0.05 * float(torch.from_numpy(ref["img_mix"]).abs().mean())


def test_config_f_1024_layout() -> None:
    """The FFHQ 1024 config-f layout (num_fp16_res=4, conv_clamp=256): 18 ws and the official parameter count."""
    g = Generator(
        z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3, mapping_kwargs={"num_layers": 8},
        channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256,
    )
    assert g.num_ws == 18
    assert sum(p.numel() for p in g.parameters()) == 30_370_060
    assert g.synthesis.channels == [512, 512, 512, 512, 512, 256, 128, 64, 32]
    assert [b for b in (f"b{2**i}" for i in range(2, 11)) if getattr(g.synthesis, b).use_fp16] == [
        "b128", "b256", "b512", "b1024",
    ]  # recorded like the official code; computation stays fp32


def tiny(**kw: Any) -> Generator:
    torch.manual_seed(0)
    args: dict[str, Any] = dict(
        z_dim=16, c_dim=0, w_dim=16, img_resolution=16, mapping_kwargs={"num_layers": 2}, channel_base=128,
        channel_max=16, conv_clamp=None, num_fp16_res=0,
    )
    args.update(kw)
    g = Generator(**args).eval()
    with torch.no_grad():  # give noise and w_avg non-zero values so that they are exercised
        for name, p in g.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)
        g.mapping.w_avg.normal_()
    return g


def naive_upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Reference upfirdn2d(up=2, pad=(2, 1), gain=4) by literal zero insertion, padding and convolution."""
    n, c, h, w = x.shape
    z = torch.zeros(n, c, 2 * h, 2 * w)
    z[:, :, ::2, ::2] = x
    z = F.pad(z, [2, 1, 2, 1])
    k = (f * 4).flip([0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(z, k, groups=c)


def test_upsample_matches_zero_insertion_reference() -> None:
    x = torch.randn(2, 3, 5, 7)
    for taps in ([1, 3, 3, 1], [1, 2, 5, 3]):  # also a non-symmetric filter
        f = setup_filter(taps)
        torch.testing.assert_close(upsample2d(x, f), naive_upsample2d(x, f), rtol=0, atol=1e-6)


@pytest.mark.parametrize("architecture", ["skip", "orig", "resnet"])
def test_modulation_paths_agree(architecture: str) -> None:
    g = tiny(architecture=architecture, conv_clamp=0.5)
    ws = torch.randn(3, g.num_ws, g.w_dim)
    with torch.no_grad():
        a = g.set_modulation("grouped").synthesis(ws)
        b = g.set_modulation("activation").synthesis(ws)
    assert a.shape == (3, 3, 16, 16)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    names = set(g.state_dict())
    assert ("synthesis.b8.skip.weight" in names) == (architecture == "resnet")
    assert ("synthesis.b8.torgb.weight" in names) == (architecture == "skip")
    assert g.num_ws == 6  # b4: 1 conv, b8/b16: 2 convs each, plus the last ToRGB


def test_batch_independence_and_noise_modes() -> None:
    g = tiny()
    ws = torch.randn(3, g.num_ws, g.w_dim)
    with torch.no_grad():
        for mode in ("grouped", "activation"):
            g.set_modulation(mode)
            full = g.synthesis(ws)
            one = g.synthesis(ws[1:2])
            torch.testing.assert_close(full[1:2], one, rtol=0, atol=1e-5)
        const = g.synthesis(ws, noise_mode="const")
        torch.manual_seed(1)
        r1 = g.synthesis(ws, noise_mode="random")
        torch.manual_seed(1)
        r2 = g.synthesis(ws, noise_mode="random")
        none = g.synthesis(ws, noise_mode="none")
    torch.testing.assert_close(r1, r2)
    assert float((r1 - const).abs().max()) > 1e-4 and float((none - const).abs().max()) > 1e-4
    with pytest.raises(ValueError, match="noise_mode"):
        g.synthesis(ws, noise_mode="fixed")


def test_truncation_and_cutoff() -> None:
    g = tiny()
    z = torch.randn(4, 16)
    with torch.no_grad():
        ws1 = g.mapping(z)
        ws0 = g.mapping(z, truncation_psi=0.0)
        wsc = g.mapping(z, truncation_psi=0.5, truncation_cutoff=2)
    assert ws1.shape == (4, g.num_ws, 16)
    torch.testing.assert_close(ws0, g.w_avg.expand_as(ws0))
    torch.testing.assert_close(wsc[:, 2:], ws1[:, 2:])
    torch.testing.assert_close(wsc[:, :2], g.w_avg + 0.5 * (ws1[:, :2] - g.w_avg))


def test_shape_and_option_errors() -> None:
    g = tiny()
    with pytest.raises(ValueError, match="ws"):
        g.synthesis(torch.randn(2, g.num_ws + 1, 16))
    with pytest.raises(ValueError, match="z must be"):
        g.mapping(torch.randn(2, 15))
    with pytest.raises(ValueError, match="modulation"):
        g.set_modulation("fused")
    with pytest.raises(ValueError, match="modulation"):
        tiny(modulation="magic")
    with pytest.raises(ValueError, match="architecture"):
        tiny(architecture="unet")
    with pytest.raises(ValueError, match="power of two"):
        tiny(img_resolution=24)


def test_activation_path_exports_to_onnx_with_dynamic_batch(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    g = tiny(conv_clamp=0.5).set_modulation("activation")
    g.requires_grad_(False)

    class Synthesis(torch.nn.Module):
        def __init__(self, g: Generator) -> None:
            super().__init__()
            self.g = g

        def forward(self, ws: torch.Tensor) -> torch.Tensor:
            return self.g.synthesis(ws, noise_mode="const")

    path = tmp_path / "synthesis.onnx"
    torch.onnx.export(
        Synthesis(g), (torch.randn(2, g.num_ws, g.w_dim),), str(path), dynamo=False, input_names=["ws"],
        output_names=["img"], dynamic_axes={"ws": {0: "batch"}, "img": {0: "batch"}},
    )
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["ws"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 3, 5):
        ws = torch.randn(n, g.num_ws, g.w_dim)
        out = session.run(None, {"ws": ws.numpy()})[0]
        with torch.no_grad():
            ref = g.synthesis(ws).numpy()
        assert out.shape == ref.shape
        assert float(np.abs(out - ref).max()) <= 1e-4
