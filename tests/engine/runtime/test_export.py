"""ONNX export (real onnxruntime, CPU): StyleGAN2 synthesis with a dynamic batch, FAN, FaceWorld renderer, and
``d2a bench --json`` writing its schema (no timing assertions)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from engine.evaluation.bench import build_stylegan2
from engine.runtime.export import ExportConfig, export_fan, export_synthesis


def _batch_dim(path) -> str | int:
    import onnx

    dim = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_param or dim.dim_value


def test_export_stylegan2_reference_dynamic_batch(tmp_path) -> None:
    """The activation-modulation synthesis exports with a symbolic batch; batches 1 and 3 run through one session
    and match the generator's own (grouped) synthesis."""
    g = build_stylegan2("tiny64", seed=2)
    rep = export_synthesis(g, tmp_path / "synthesis.onnx", config=ExportConfig(batch_sizes=(1, 3)))
    assert rep["exporter"] == "torchscript" and not rep["failed_exporters"]
    assert isinstance(_batch_dim(tmp_path / "synthesis.onnx"), str)
    v = rep["validation"]
    assert [r["batch"] for r in v["runs"]] == [1, 3]
    assert v["providers"] == ["CPUExecutionProvider"]
    assert v["max_abs"] < 1e-3 and v["psnr"] > 60
    stored = json.loads((tmp_path / "synthesis.validation.json").read_text())
    assert stored["validation"]["psnr"] == pytest.approx(v["psnr"])


def test_export_fan(tmp_path) -> None:
    from engine.fan import FAN, FANConfig

    torch.manual_seed(0)
    cfg = FANConfig(num_ws=6, w_dim=32, action_layers=4, points=list(range(20)), heatmap_size=32, output="full",
                    width=8, hidden=32)
    fan = FAN(cfg)
    for p in fan.parameters():
        torch.nn.init.normal_(p, std=0.1)  # the head starts at zero: make the output non-trivial
    with pytest.warns(UserWarning, match="adaptive_avg_pool2d"):  # TorchScript cannot: dynamo, loudly
        rep = export_fan(fan, tmp_path / "fan.onnx", config=ExportConfig(batch_sizes=(1, 3)))
    assert rep["exporter"] == "dynamo" and rep["failed_exporters"]
    v = rep["validation"]
    assert rep["input_shape"] == [40, 32, 32]
    assert v["max_abs"] < 1e-4 and v["psnr"] > 60
    assert isinstance(_batch_dim(tmp_path / "fan.onnx"), str)


def test_export_faceworld_renderer(tmp_path) -> None:
    from engine.generators import load_generator

    fw = load_generator("faceworld", resolution=64)
    rep = export_synthesis(fw, tmp_path / "renderer.onnx", config=ExportConfig(batch_sizes=(1, 2)))
    assert rep["validation"]["psnr"] > 40, rep["validation"]


def test_bench_cli_json_schema(tmp_path) -> None:
    """``d2a bench`` on the bundled sample clip: pipeline + generator sections per backend (torch and ONNX
    Runtime on the FaceWorld renderer), written as JSON. A timing bundle (random bank, untrained FAN) keeps the
    test independent of the trained default bundle."""
    from engine.cli import main
    from engine.evaluation.bench import make_timing_bundle
    from engine.resources import samples_dir

    clips = sorted(samples_dir().glob("*.mp4"))
    if not clips:
        pytest.skip("no sample clip in resources/samples")
    bundle = make_timing_bundle(tmp_path / "bundle", resolution=128)
    out = tmp_path / "bench.json"
    args = ["bench", "--bundle", str(bundle), "--video", str(clips[0]), "--frames", "3", "--runs", "2",
            "--backends", "torch,ort", "--json", str(out)]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert [r["backend"] for r in data["generator"]] == ["torch", "ort"]
    for r in data["generator"]:
        assert {"backend", "name", "ms", "psnr"} <= set(r)
    assert data["generator"][1]["psnr"] > 40
    assert data["generator"][1]["providers"] == ["CPUExecutionProvider"]
    assert [r["backend"] for r in data["pipeline"]] == ["torch", "ort"]
    for r in data["pipeline"]:
        assert {"backend", "fps", "stages_ms", "psnr"} <= set(r)
        assert {"decode", "landmarks", "align+heatmaps", "fan", "generator", "convert"} <= set(r["stages_ms"])
        assert r["frames"] == 3 and r["frames_with_face"] > 0
    assert data["pipeline"][1]["psnr"] > 30
    assert data["machine"]["peak_fp32_gflops"] > 0
