"""`d2a bench`: the live pipeline and the generator per backend, side by side in one run."""

from __future__ import annotations

import json
from pathlib import Path

import click

DEFAULT_BACKENDS = "torch,torch-bf16,torch-fast,ort,ort-fast"


@click.command(name="bench")
@click.option("--bundle", default=None, type=click.Path(path_type=Path), help="Bundle folder (default: embedded).")
@click.option("--generator", "generator_ref", default=None,
              help='Generator to time: "paper256"/"tiny" (random StyleGAN2 built in code), "faceworld" or a '
                   "checkpoint. Default: the bundle's.")
@click.option("--video", default=None, type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Driving clip (default: resources/samples/*.mp4, else a rendered FaceWorld clip).")
@click.option("--frames", default=60, show_default=True, type=click.IntRange(1), help="Pipeline frames per backend.")
@click.option("--runs", default=10, show_default=True, type=click.IntRange(1), help="Timed generator calls.")
@click.option("--backends", default=DEFAULT_BACKENDS, show_default=True,
              help="Comma list of torch, torch-bf16, torch-fast, torch-compile, ort, ort-fast, ort-int8 (lossy int8, "
                   "quantised once into the user cache) (torch always runs: it is the reference).")
@click.option("--threads", default=0, show_default=True, type=click.IntRange(0), help="Threads (0 = all cores).")
@click.option("--no-pipeline", is_flag=True, help="Time the generator only.")
@click.option("--json", "json_out", default=None, type=click.Path(path_type=Path), help="Write the results here.")
def command(bundle: Path | None, generator_ref: str | None, video: Path | None, frames: int, runs: int,
            backends: str, threads: int, no_pipeline: bool, json_out: Path | None) -> None:
    """Benchmark the live pipeline (decode, landmarks, align+heatmaps, FAN, generator, colour conversion) and the
    generator alone, per backend in the same run: median/p95 latency, fps, PSNR vs torch fp32 eager, generator
    FLOPs and the share of this machine's measured matmul peak.

    \b
    Examples:
      d2a bench --frames 60 --json bench.json                   # default bundle (FaceWorld), all backends
      d2a bench --generator paper256 --no-pipeline --runs 5     # StyleGAN2 256² (random weights), generator only
      d2a bench --generator paper256 --backends torch,ort-fast --video clip.mp4
      d2a bench --generator paper256 --no-pipeline --backends torch,ort,ort-int8   # int8: speed vs PSNR
    """
    from engine.evaluation.bench import BenchConfig, run_bench

    names = tuple(b.strip() for b in backends.split(",") if b.strip())
    cfg = BenchConfig(
        bundle=str(bundle) if bundle else None,
        generator=generator_ref,
        video=str(video) if video else None,
        frames=frames,
        generator_runs=runs,
        backends=names,
        threads=threads,
        pipeline=not no_pipeline,
    )
    try:
        result = run_bench(cfg, log=lambda m: click.echo(m, err=True))
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    _print_table(result)
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1) + "\n")
        click.echo(f"wrote {json_out}")


def _print_table(result: dict) -> None:
    m = result["machine"]
    click.echo(f"{m['cpu']} | {m['threads']} threads | fp32 peak {m['peak_fp32_gflops']} GFLOP/s | "
               f"load {m['loadavg_before']}")
    click.echo(f"generator {result['generator_name']}: {result['generator_info']}")
    click.echo(f"{'backend':<12} {'name':<34} {'ms':>9} {'p95':>9} {'PSNR dB':>8} {'share of peak':>14}")
    for r in result["generator"]:
        share = r.get("share_of_fp32_peak")
        click.echo(f"{r['backend']:<12} {r['name']:<34} {r['ms']:>9.1f} {r['ms_p95']:>9.1f} {r['psnr']:>8.1f} "
                   f"{'' if share is None else f'{100 * share:.0f}%':>14}")
    if result["pipeline"]:
        stages = list(result["pipeline"][0]["stages_ms"])
        click.echo(f"{'pipeline':<12} {'fps':>6} " + " ".join(f"{s:>15}" for s in stages) + f" {'PSNR dB':>8}")
        for r in result["pipeline"]:
            cells = " ".join(f"{r['stages_ms'].get(s, float('nan')):>15.2f}" for s in stages)
            click.echo(f"{r['backend']:<12} {r['fps']:>6.1f} {cells} {r['psnr']:>8.1f}")
