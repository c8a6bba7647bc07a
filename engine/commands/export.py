"""`d2a export`: ONNX models of the generator synthesis, the FAN and FaceWorld's renderer, validated."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command(name="export")
@click.option("--bundle", default=None, type=click.Path(path_type=Path), help="Bundle folder (default: embedded).")
@click.option("--generator", "generator_ref", default=None,
              help="Checkpoint (or faceworld / paper256 / tiny) to export instead of the bundle's generator.")
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False), help="Output folder.")
@click.option("--fp16", is_flag=True,
              help="Mark the models for fp16 TensorRT engines (manifest); the ONNX files stay fp32 (see docs).")
@click.option("--exporter", default="torchscript", show_default=True,
              type=click.Choice(["torchscript", "dynamo"]),
              help="First exporter to try (the other is tried, loudly, if it fails to export or to validate).")
@click.option("--no-fast", is_flag=True, help="StyleGAN2: skip the FastSynthesis (CPU) model.")
@click.option("--int8", is_flag=True,
              help="StyleGAN2: also write synthesis.int8.onnx, statically quantised (LOSSY: its PSNR vs torch fp32 "
                   "is printed; see engine.runtime.quantize).")
def command(bundle: Path | None, generator_ref: str | None, out: Path, fp16: bool, exporter: str,
            no_fast: bool, int8: bool) -> None:
    """Export the generator synthesis (ws -> image; StyleGAN2: activation-modulation path, dynamic batch,
    constant noise), the FAN (heatmaps -> dw) and, for FaceWorld, its renderer to ONNX. Each model is validated
    against torch on random inputs (batches 1 and 3 through one session): max abs error and PSNR are printed and
    written to <model>.validation.json; manifest.json lists everything.

    \b
    Examples:
      d2a export --out export/                                   # default bundle: FaceWorld renderer + FAN
      d2a export --generator ffhq256.d2a.safetensors --out export/ffhq
      d2a export --generator paper256 --out export/p256 --fp16
      d2a export --generator paper256 --out export/p256 --int8   # + int8 model (lossy, PSNR printed)
    """
    from engine.bundle import load_bundle
    from engine.evaluation.bench import load_bench_generator
    from engine.runtime.export import ExportConfig, export_fan, export_synthesis, is_stylegan2

    cfg = ExportConfig(exporter=exporter)
    try:
        b = load_bundle(bundle)
        g = b.generator() if generator_ref is None else load_bench_generator(generator_ref)
    except (ValueError, FileNotFoundError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    if is_stylegan2(g):
        jobs.append(("synthesis.onnx", lambda p: export_synthesis(g, p, path="reference", config=cfg)))
        if not no_fast:
            jobs.append(("synthesis_fast.onnx", lambda p: export_synthesis(g, p, path="fast", config=cfg)))
    else:
        jobs.append(("renderer.onnx", lambda p: export_synthesis(g, p, path="reference", config=cfg)))
    if int8 and not is_stylegan2(g):
        raise click.ClickException("--int8 needs a StyleGAN2 generator")
    if b.fan is not None:
        jobs.append(("fan.onnx", lambda p: export_fan(b.fan, p, config=cfg)))
    manifest = {"generator": generator_ref or b.generator_ref, "fp16_engines": fp16, "models": []}
    for name, job in jobs:
        click.echo(f"exporting {name} ...", err=True)
        try:
            rep = job(out / name)
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from exc
        v = rep.get("validation", {})
        click.echo(f"{name}: {rep['exporter']} in {rep['seconds']} s; max abs {v.get('max_abs'):.3g}, "
                   f"PSNR {v.get('psnr'):.1f} dB (batches {[r['batch'] for r in v.get('runs', [])]})")
        manifest["models"].append({"file": name, **{k: rep[k] for k in ("kind", "exporter") if k in rep},
                                   "max_abs": v.get("max_abs"), "psnr": v.get("psnr")})
    if int8:
        from engine.runtime.quantize import QuantizeConfig, export_int8

        qcfg = QuantizeConfig()
        click.echo(f"quantising synthesis.int8.onnx ({qcfg.describe()}, {qcfg.calibration_samples} calibration "
                   "codes) ...", err=True)
        rep = export_int8(g, out / "synthesis.int8.onnx", qcfg, graph="plain", validate=4)
        v = rep["validation"]
        click.echo(f"synthesis.int8.onnx: {len(rep['quantized_nodes'])} int8 convs in {rep['seconds']} s; "
                   f"LOSSY: PSNR {v['psnr']:.1f} dB (worst of {v['samples']} codes, mean {v['psnr_mean']:.1f}), "
                   f"max abs {v['max_abs']:.3g}")
        manifest["models"].append({"file": "synthesis.int8.onnx", "kind": "synthesis-int8", "variant": rep["variant"],
                                   "max_abs": v["max_abs"], "psnr": v["psnr"]})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    click.echo(f"wrote {out / 'manifest.json'}")
