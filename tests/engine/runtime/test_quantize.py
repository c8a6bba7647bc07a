"""int8 quantisation (engine.runtime.quantize): the sub-pixel rewrite is exact, the quantised model runs int8
kernels in ONNX Runtime and stays close to torch fp32, and the ``ort-int8`` bench backend works."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.evaluation.bench import make_backends
from engine.runtime.export import ExportConfig, export_synthesis, psnr, random_ws
from engine.runtime.quantize import (
    GRAPHS,
    QuantizeConfig,
    WsReader,
    conv_nodes,
    export_int8,
    mapping_ws,
    quantize_synthesis,
    select_nodes,
    subpixel_conv_transpose,
)


@pytest.fixture(scope="module")
def plain_fp32(tiny, tmp_path_factory):
    """The plain FastSynthesis graph of tiny64 (what ``export_int8`` quantises), exported once."""
    path, fast = GRAPHS["plain"]
    out = tmp_path_factory.mktemp("int8") / "plain.onnx"
    export_synthesis(tiny, out, path=path, config=ExportConfig(validate=False), fast=fast)
    return out


def _session(path, optimized=None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    if optimized is not None:
        opts.optimized_model_filepath = str(optimized)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def test_subpixel_rewrite_is_exact(tiny, tmp_path) -> None:
    """Every stride-2 transposed 3x3 conv becomes 4 phase convs with 9 taps in all; the output is unchanged."""
    import onnx

    src = tmp_path / "ref.onnx"
    export_synthesis(tiny, src, config=ExportConfig(validate=False))
    model = onnx.load(str(src))
    before = [r for r in conv_nodes(model) if r["op"] == "ConvTranspose" and r["kind"] == "dense"]
    assert len(before) == 4  # the up-convs of 8², 16², 32², 64²
    assert subpixel_conv_transpose(model) == 4
    after = conv_nodes(model)
    assert not [r for r in after if r["op"] == "ConvTranspose" and r["kind"] == "dense"]
    phases = [r for r in after if "/phase" in r["name"]]
    assert len(phases) == 16
    assert sum(r["weight"][2] * r["weight"][3] for r in phases) == 4 * 9  # the same taps, no extra work
    # each crop is folded into the following FIR conv's trailing padding
    assert not [n for n in model.graph.node if n.op_type == "Slice" and n.name.endswith("/crop")]
    # node selection counts layers: the 4 phase convs of an up-conv are one layer
    nodes, kept = select_nodes(model, QuantizeConfig())
    assert len(nodes) == 21 and not kept
    nodes, kept = select_nodes(model, QuantizeConfig(keep_fp32_first=2))  # b4.conv1 and b8.conv0 (4 phases)
    assert len(kept) == 5 and len(nodes) == 16 and all("/b4/" in k or "/b8/conv0" in k for k in kept)
    nodes, _ = select_nodes(model, QuantizeConfig(only=("/b64/",)))
    assert len(nodes) == 5 and all("/b64/" in n for n in nodes)
    out = tmp_path / "sp.onnx"
    onnx.save(model, str(out))
    ws = random_ws(tiny, 2, seed=4).numpy()
    a = _session(src).run(None, {"ws": ws})[0]
    b = _session(out).run(None, {"ws": ws})[0]
    assert a.shape == b.shape == (2, 3, 64, 64)
    assert np.abs(a - b).max() < 1e-4


def test_quantized_model_runs_int8_and_stays_close(tiny, tmp_path) -> None:
    cfg = QuantizeConfig(calibration_samples=4)
    out = tmp_path / "synthesis.int8.onnx"
    rep = export_int8(tiny, out, cfg, graph="plain", validate=2)
    assert rep["subpixel_rewrites"] == 4 and rep["fp32_nodes"] == []
    assert len(rep["quantized_nodes"]) == 4 * 4 + 5  # 16 phase convs + the 5 same-resolution 3x3 convs
    assert (tmp_path / "synthesis.int8.validation.json").is_file()
    assert not list(tmp_path.glob("*.fp32.onnx")) and not list(tmp_path.glob("*.pre.onnx"))
    # ONNX Runtime fuses the Q/DQ pairs into integer convolutions (otherwise int8 would be pure overhead)
    import onnx

    _session(out, optimized=tmp_path / "opt.onnx")
    ops = {n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node}
    assert "QLinearConv" in ops
    # lossy but close: tiny64 gives ~21-25 dB; a broken scale or layout gives < 10 dB
    v = rep["validation"]
    assert 15.0 < v["psnr"] < 60.0 and v["psnr_mean"] >= v["psnr"]
    ws = mapping_ws(tiny, 1, seed=77, psi=0.7)
    with torch.no_grad():
        ref = tiny.synthesis(torch.from_numpy(ws), noise_mode="const").numpy()
    got = _session(out).run(None, {"ws": ws})[0]
    assert got.shape == ref.shape and 15.0 < psnr(got, ref) < 60.0


def test_dynamic_mode_uses_conv_integer(tiny, plain_fp32, tmp_path) -> None:
    import onnx

    out = tmp_path / "dyn.onnx"
    rep = quantize_synthesis(tiny, plain_fp32, out, QuantizeConfig(mode="dynamic", types="u8u8"), validate=1)
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert ops.count("ConvInteger") == 21 and rep["calibration_samples"] == 0
    assert 15.0 < rep["validation"]["psnr"] < 60.0


def test_ort_int8_bench_backend(tiny) -> None:
    """``d2a bench --backends ort-int8``: quantised once into the (test) user cache, then reused."""
    from engine.resources import user_cache_dir

    logs: list[str] = []
    [(name, backend)] = make_backends(tiny, ("ort-int8",), 1, logs.append)
    assert name == "ort-int8" and backend.name == "onnxruntime-int8-CPU"
    assert backend.providers == ["CPUExecutionProvider"]
    ws = random_ws(tiny, 2, seed=9)
    with torch.no_grad():
        ref = tiny.synthesis(ws, noise_mode="const").numpy()
    out = backend(ws).numpy()
    assert out.shape == ref.shape and 15.0 < psnr(out, ref) < 60.0
    cached = sorted((user_cache_dir() / "onnx").glob("synthesis-int8-plain-*.onnx"))
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime
    make_backends(tiny, ("ort-int8",), 1, logs.append)
    assert cached[0].stat().st_mtime == mtime


def test_config_and_reader_errors() -> None:
    for bad in ({"mode": "qat"}, {"format": "qint4"}, {"calibration": "mse"}, {"types": "s8u8"}, {"include": "all"},
                {"percentile": 20.0}, {"calibration_samples": 0}):
        with pytest.raises(ValueError):
            QuantizeConfig(**bad).validate()
    with pytest.raises(ValueError, match="calibration ws"):
        WsReader(np.zeros((3, 512), np.float32))
    r = WsReader(np.zeros((2, 4, 8), np.float32), "ws")
    feeds = [r.get_next(), r.get_next(), r.get_next()]
    assert feeds[0]["ws"].shape == (1, 4, 8) and feeds[2] is None and len(r) == 2
    assert QuantizeConfig().key() != QuantizeConfig(reduce_range=True).key()
