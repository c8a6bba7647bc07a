"""Checkpoint loading: NVlabs pickles (built here in the official structure), rosinality .pt, our format, errors."""

from __future__ import annotations

import json
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _nvlabs_pickles import (
    Persistent,
    easy,
    module_state,
    network_from_state_dict,
    nvlabs_snapshot,
    stylegan2_source,
    write_snapshot,
)
from click.testing import CliRunner

from engine.generators import load_generator
from engine.generators.checkpoints import CheckpointError, describe, load_checkpoint, save_generator

NVLABS = [
    "sg2ada_r32_w64_cond10",
    "sg2ada_r64_w128_map8",
    "sg3repo_sg2_r64_w128_map2",
    "sg2ada_r256_w512_map2_clamp256",
]
ROSINALITY = ["ros_r256_w512_ch1024_64", "ros_r64_trainfmt_ch2048_128"]


def fixture_dir(shared_dir: Path) -> Path:
    d = shared_dir / "fixtures" / "stylegan2"
    if not d.is_dir():
        pytest.skip("../shared/fixtures/stylegan2 is absent")
    return d


def load_fixture(shared_dir: Path, name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    d = fixture_dir(shared_dir)
    meta = json.loads((d / f"{name}.json").read_text())
    ref = dict(np.load(d / f"{name}.npz"))
    return meta, ref


def fixture_state_dict(shared_dir: Path, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(fixture_dir(shared_dir) / f"{name}.G_ema.safetensors"))


def check_reproduces(
    g: torch.nn.Module, ref: dict[str, np.ndarray], n: int = 2, modes: tuple[str, ...] = ("grouped", "activation")
) -> None:
    """ws within 1e-5 relative and images within 1e-4 of the official outputs, for every given psi and ws_mix."""
    z = torch.from_numpy(ref["z"][:n])
    c = torch.from_numpy(ref["c"][:n]) if g.c_dim else None
    if "w_avg" in ref:
        torch.testing.assert_close(g.w_avg, torch.from_numpy(ref["w_avg"]), rtol=0, atol=1e-6)
    for mode in modes:
        g.set_modulation(mode)
        with torch.no_grad():
            for psi, key in ((1.0, "psi1"), (0.7, "psi07")):
                if f"ws_{key}" not in ref:
                    continue
                ws = g.mapping(z, c, truncation_psi=psi)
                ref_ws = torch.from_numpy(ref[f"ws_{key}"][:n])
                rel = float((ws - ref_ws).abs().max() / ref_ws.abs().max())
                assert rel <= 1e-5, (mode, key, rel)
                img = g.synthesis(ws, noise_mode="const")
                err = float((img - torch.from_numpy(ref[f"img_{key}"][:n])).abs().max())
                assert err <= 1e-4, (mode, key, err)
            img = g.synthesis(torch.from_numpy(ref["ws_mix"][:n]), noise_mode="const")
            err = float((img - torch.from_numpy(ref["img_mix"][:n])).abs().max())
            assert err <= 1e-4, (mode, "mix", err)


def build_pickle(shared_dir: Path, name: str, path: Path, drop: tuple[str, ...] = (), **src_kw: Any) -> Path:
    """An NVlabs-structured snapshot pickle of fixture ``name`` (G_ema = the fixture, G = perturbed weights)."""
    meta, _ = load_fixture(shared_dir, name)
    kwargs = json.loads(json.dumps(meta["G_ema_init_kwargs"]))
    flat = meta["source_repo"] == "NVlabs/stylegan3"
    sub = kwargs if flat else kwargs["synthesis_kwargs"]
    for key in drop:
        sub.pop(key)
    defaults = dict(block_conv_clamp=256 if flat else None, num_fp16_res=4 if flat else 0, w_avg_beta=0.998)
    defaults.update(src_kw)
    src = stylegan2_source(flat=flat, **defaults)
    snap = nvlabs_snapshot(fixture_state_dict(shared_dir, name), kwargs, src, conv_clamp=meta["conv_clamp"])
    return write_snapshot(path, snap)


@pytest.mark.shared
@pytest.mark.parametrize("name", NVLABS)
def test_nvlabs_pickle_reproduces_official_outputs(shared_dir: Path, tmp_path: Path, name: str) -> None:
    path = build_pickle(shared_dir, name, tmp_path / f"{name}.pkl")
    _, ref = load_fixture(shared_dir, name)
    g = load_generator(path)
    assert g.checkpoint_info["format"] == "nvlabs-pkl"
    assert not any(p.requires_grad for p in g.parameters()) and not g.training
    n = 1 if "r256" in name else 2
    check_reproduces(g, ref, n=n)


@pytest.mark.shared
def test_pickle_defaults_are_read_from_the_embedded_source(shared_dir: Path, tmp_path: Path) -> None:
    """conv_clamp missing from the kwargs: its default comes from the file's own source text (not executed)."""
    name = "sg2ada_r256_w512_map2_clamp256"
    _, ref = load_fixture(shared_dir, name)
    path = build_pickle(shared_dir, name, tmp_path / "a.pkl", drop=("conv_clamp",), block_conv_clamp=256)
    g = load_checkpoint(path)
    assert g.init_kwargs["conv_clamp"] == 256
    check_reproduces(g, {k: v for k, v in ref.items() if "psi" not in k}, n=1, modes=("activation",))
    # If the source said otherwise, the layers' stored conv_clamp contradicts it: a clear error, not a wrong image.
    bad = build_pickle(shared_dir, name, tmp_path / "b.pkl", drop=("conv_clamp",), block_conv_clamp=None)
    with pytest.raises(CheckpointError, match="conv_clamp"):
        load_checkpoint(bad)


@pytest.mark.shared
def test_pickle_with_fully_explicit_legacy_kwargs(shared_dir: Path, tmp_path: Path) -> None:
    """Networks converted from TensorFlow by NVlabs' legacy.py carry every argument explicitly (as EasyDicts)."""
    name = "sg2ada_r64_w128_map8"
    meta, ref = load_fixture(shared_dir, name)
    kwargs = {
        **{k: meta["G_ema_init_kwargs"][k] for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")},
        "mapping_kwargs": dict(
            num_layers=8, embed_features=None, layer_features=None, activation="lrelu", lr_multiplier=0.01,
            w_avg_beta=0.995,
        ),
        "synthesis_kwargs": dict(
            channel_base=2048, channel_max=128, num_fp16_res=0, conv_clamp=None, architecture="skip",
            resample_filter=[1, 3, 3, 1], use_noise=True, activation="lrelu",
        ),
    }
    src = stylegan2_source(flat=False, block_conv_clamp=None, num_fp16_res=0, w_avg_beta=0.995)
    snap = nvlabs_snapshot(fixture_state_dict(shared_dir, name), kwargs, src, conv_clamp=None)
    g = load_checkpoint(write_snapshot(tmp_path / "legacy.pkl", snap))
    assert g.init_kwargs["use_noise"] is True and g.init_kwargs["mapping_kwargs"]["w_avg_beta"] == 0.995
    check_reproduces(g, ref, n=1, modes=("grouped",))


@pytest.mark.shared
def test_pickle_uses_g_ema_not_g(shared_dir: Path, tmp_path: Path) -> None:
    name = "sg2ada_r64_w128_map8"
    meta, ref = load_fixture(shared_dir, name)
    sd = fixture_state_dict(shared_dir, name)
    src = stylegan2_source(flat=False, block_conv_clamp=None, num_fp16_res=0, w_avg_beta=0.995)
    snap = nvlabs_snapshot(sd, meta["G_ema_init_kwargs"], src, conv_clamp=None)
    g_only = write_snapshot(tmp_path / "g_only.pkl", {"G": snap["G"], "D": snap["D"]})
    with pytest.raises(CheckpointError, match="G_ema"):
        load_checkpoint(g_only)
    # A file whose G_ema holds G's (perturbed) weights gives different images: the loader really reads G_ema.
    swapped = write_snapshot(tmp_path / "swapped.pkl", {**snap, "G_ema": snap["G"], "G": snap["G_ema"]})
    g = load_checkpoint(swapped)
    with torch.no_grad():
        img = g.synthesis(torch.from_numpy(ref["ws_mix"][:1]))
    assert float((img - torch.from_numpy(ref["img_mix"][:1])).abs().max()) > 1e-2


@pytest.mark.shared
def test_pickle_protocol2_with_legacy_globals(shared_dir: Path, tmp_path: Path) -> None:
    """Protocol 2 writes bytes via _codecs.encode and sets via __builtin__.set: both are data-only."""
    name = "sg2ada_r32_w64_cond10"
    meta, ref = load_fixture(shared_dir, name)
    src = stylegan2_source(flat=False, block_conv_clamp=None, num_fp16_res=0, w_avg_beta=0.995)
    snap = nvlabs_snapshot(fixture_state_dict(shared_dir, name), meta["G_ema_init_kwargs"], src, conv_clamp=None)
    path = write_snapshot(tmp_path / "p2.pkl", snap, protocol=2)
    check_reproduces(load_checkpoint(path), ref, n=1, modes=("grouped",))


@pytest.fixture(scope="module")
def rosinality_generators(shared_dir: Path) -> dict[str, torch.nn.Module]:
    out = {}
    for name in ROSINALITY:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out[name] = load_checkpoint(fixture_dir(shared_dir) / f"{name}.pt")
        out[name].caught = [str(w.message) for w in caught]
    return out


@pytest.mark.shared
@pytest.mark.parametrize("name", ROSINALITY)
def test_rosinality_reproduces_official_outputs(shared_dir: Path, rosinality_generators: dict, name: str) -> None:
    _, ref = load_fixture(shared_dir, name)
    g = rosinality_generators[name]
    assert g.checkpoint_info["format"] == "rosinality-pt"
    check_reproduces(g, ref, n=1 if "r256" in name else 2)


@pytest.mark.shared
def test_rosinality_in_legacy_torch_format(shared_dir: Path, tmp_path: Path) -> None:
    """Older rosinality files use torch's pre-zip format: recognised by its magic number, still weights_only."""
    name = "ros_r256_w512_ch1024_64"
    ckpt = torch.load(fixture_dir(shared_dir) / f"{name}.pt", map_location="cpu", weights_only=True)
    path = tmp_path / "legacy.pt"
    torch.save(ckpt, path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    _, ref = load_fixture(shared_dir, name)
    check_reproduces(load_checkpoint(path), ref, n=1, modes=("activation",))


@pytest.mark.shared
def test_rosinality_channels_and_w_avg(rosinality_generators: dict) -> None:
    g = rosinality_generators["ros_r256_w512_ch1024_64"]
    assert g.synthesis.channels == [64, 64, 64, 32, 16, 8, 4]  # a reduced table, inferred from the shapes
    assert g.init_kwargs["channel_base"] == 1024 and g.init_kwargs["channel_max"] == 64
    assert "latent_avg" in g.checkpoint_info["w_avg_source"] and not g.caught
    train = rosinality_generators["ros_r64_trainfmt_ch2048_128"]
    assert train.synthesis.channels == [128, 128, 128, 64, 32]
    assert "estimated" in train.checkpoint_info["w_avg_source"]
    assert any("latent_avg" in m for m in train.caught)
    # The estimate is the mean of >= 10,000 mapped z: close to the mean of a fresh independent sample.
    with torch.no_grad():
        fresh = train.mapping(torch.randn(4000, 512, generator=torch.Generator().manual_seed(7)))[:, 0].mean(0)
    spread = float(fresh.abs().mean())
    assert float((train.w_avg - fresh).abs().mean()) < 0.1 * spread + 1e-6


@pytest.mark.shared
def test_convert_pickle_to_ours_round_trip(shared_dir: Path, tmp_path: Path) -> None:
    from engine.commands.convert import command

    name = "sg3repo_sg2_r64_w128_map2"
    src = build_pickle(shared_dir, name, tmp_path / "net.pkl")
    out = tmp_path / "net.d2a.safetensors"
    result = CliRunner().invoke(command, [str(src), str(out)])
    assert result.exit_code == 0, result.output
    assert "nvlabs-pkl" in result.output and "resolution 64" in result.output and "num_ws 10" in result.output
    assert "mapping layers 2" in result.output and "verified" in result.output
    a, b = load_checkpoint(src), load_checkpoint(out)
    assert b.checkpoint_info["format"] == "d2a-stylegan2" and b.init_kwargs == a.init_kwargs
    _, ref = load_fixture(shared_dir, name)
    ws = torch.from_numpy(ref["ws_mix"][:2])
    with torch.no_grad():
        torch.testing.assert_close(a.synthesis(ws), b.synthesis(ws), rtol=0, atol=0)
    check_reproduces(b, ref, n=1, modes=("activation",))


def test_save_and_load_our_format_small(tmp_path: Path) -> None:
    from engine.generators.stylegan2 import Generator

    torch.manual_seed(0)
    g = Generator(z_dim=16, c_dim=3, w_dim=16, img_resolution=16, mapping_kwargs={"num_layers": 2}, channel_base=128,
                  channel_max=16, conv_clamp=64, num_fp16_res=0).eval()
    g.mapping.w_avg.normal_()
    path = save_generator(g, tmp_path / "g.safetensors", info={"note": "test"})
    h = load_generator(path, modulation="activation")
    assert h.modulation == "activation" and h.c_dim == 3 and h.num_ws == g.num_ws
    assert describe(h)["format"] == "d2a-stylegan2" and h.checkpoint_info["note"] == "test"
    z, c = torch.randn(2, 16), torch.eye(3)[:2]
    with torch.no_grad():
        torch.testing.assert_close(h(z, c, truncation_psi=0.5), g(z, c, truncation_psi=0.5), rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------------------------
# Clear errors for everything else.


def _message(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert str(path) in msg
    assert isinstance(info.value, ValueError)
    assert info.value.__cause__ is None  # no chained deep traceback
    return msg


def test_missing_empty_and_random_files(tmp_path: Path) -> None:
    assert "no such file" in _message(tmp_path / "absent.pkl")
    (tmp_path / "empty.pkl").write_bytes(b"")
    assert "empty" in _message(tmp_path / "empty.pkl")
    (tmp_path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    msg = _message(tmp_path / "noise.pt")
    assert "not a recognised checkpoint" in msg and "Supported" in msg
    (tmp_path / "dir.pkl").mkdir()
    assert "not a file" in _message(tmp_path / "dir.pkl")


def test_zip_that_is_not_torch_and_truncated_files(tmp_path: Path) -> None:
    z = tmp_path / "model.pt"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("readme.txt", "hello")
    assert "not a PyTorch checkpoint" in _message(z)
    good = tmp_path / "good.pt"
    torch.save({"g_ema": {"x": torch.zeros(3)}}, good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "damaged" in _message(cut) or "truncated" in _message(cut)
    assert "g_ema" in _message(good)  # a torch file, but not a rosinality generator
    half = tmp_path / "half.pkl"
    src = stylegan2_source(flat=True, block_conv_clamp=256, num_fp16_res=4, w_avg_beta=0.998)
    sd = {"mapping.fc0.weight": torch.zeros(4, 4), "mapping.w_avg": torch.zeros(4)}
    net = network_from_state_dict(sd, src, easy({"z_dim": 4}))
    write_snapshot(half, {"G_ema": net})
    half.write_bytes(half.read_bytes()[:-200])
    assert "truncated or corrupt" in _message(half)


def test_bare_safetensors_state_dict_is_rejected(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"mapping.fc0.weight": torch.zeros(2, 2)}, str(path))
    assert "without D2A StyleGAN2 metadata" in _message(path)


def test_stylegan3_and_tensorflow_pickles_are_rejected(tmp_path: Path) -> None:
    sg3_src = '"""Generator architecture from the paper "Alias-Free Generative Adversarial Networks"."""\n' + (
        "class SynthesisInput:\n    pass\n"
    )
    sg3 = Persistent("Generator", sg3_src, module_state({}, {}, {}))
    path = write_snapshot(tmp_path / "sg3.pkl", {"G_ema": sg3})
    msg = _message(path)
    assert "StyleGAN3" in msg and "only StyleGAN2" in msg

    def tf_reconstruct(state: Any) -> Any:  # pragma: no cover - pickled by reference only
        raise AssertionError

    tf_reconstruct.__module__ = "dnnlib.tflib.network"
    tf_reconstruct.__qualname__ = "_reconstruct_persistent_obj"

    class TFNet:
        def __reduce__(self) -> tuple:
            return (tf_reconstruct, ({"version": 4, "name": "G_synthesis"},))

    tf_path = write_snapshot(
        tmp_path / "tf.pkl",
        {"G": TFNet()},
        extra_modules={"dnnlib.tflib": {}, "dnnlib.tflib.network": {"_reconstruct_persistent_obj": tf_reconstruct}},
    )
    assert "TensorFlow" in _message(tf_path)


def test_other_pickles_are_rejected(tmp_path: Path) -> None:
    plain = tmp_path / "list.pkl"
    plain.write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    assert "not an NVlabs snapshot dict" in _message(plain)
    other = Persistent("Discriminator", "class Discriminator:\n    pass\n", module_state({}, {}, {}))
    path = write_snapshot(tmp_path / "d.pkl", {"G_ema": other})
    assert "not the StyleGAN2 networks module" in _message(path)


def test_convert_reports_clear_errors(tmp_path: Path) -> None:
    from engine.commands.convert import command

    bad = tmp_path / "random.pkl"
    bad.write_bytes(b"\x80\x04" + bytes(range(200)))
    result = CliRunner().invoke(command, [str(bad), str(tmp_path / "out.safetensors")])
    assert result.exit_code == 1
    assert str(bad) in result.output and "Supported" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.safetensors").exists()
