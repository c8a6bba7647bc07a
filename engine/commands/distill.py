"""``d2a distill``: the CluDistiller (latent directions for facial actions from landmark clusters)."""

from __future__ import annotations

from typing import Any

import click

from engine.commands._preset import preset_option, resolve
from engine.distill.recipes import DISTILL_PRESETS, distiller_config

__all__ = ["command", "distiller_config"]


@click.command(name="distill")
@preset_option(DISTILL_PRESETS)
@click.option("--generator", "generator_ref", default="faceworld", show_default=True,
              help="'faceworld' or a generator checkpoint (.pkl/.pt/.safetensors).")
@click.option("--samples", default=4000, show_default=True, help="Latents to draw (undetected ones are dropped).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder (resumable).")
@click.option("--seed", default=0, show_default=True)
@click.option("--regions", default="pose,nose,mouth,eyes,eye_right,eye_left,brows", show_default=True,
              help="Comma-separated landmark regions to cluster: pose, face, mouth, eyes, eye_right, eye_left, "
                   "irises, brows, jaw, nose (pose keeps rotation; the others are normalised).")
@click.option("--k", "ks", default="2,3,4,6,8,12", show_default=True, help="Cluster counts, e.g. '2-12' or '2,4,8'.")
@click.option("--action-layers", default=8, show_default=True, help="Directions live on the first N latent layers.")
@click.option("--resolution", default=128, show_default=True,
              help="FaceWorld render size for sampling/detection (ignored for checkpoints).")
@click.option("--detect-size", default=0, show_default=True,
              help="Downsample renders to this side before detection (0 = native; for large checkpoints).")
@click.option("--max-directions", default=64, show_default=True)
@click.option("--effect-samples", default=4, show_default=True,
              help="Sources rendered per candidate direction to measure its landmark effect (pruning).")
@click.option("--localise/--no-localise", default=False, show_default=True,
              help="Remove what expression directions change outside their region (soft null space of the "
                   "out-of-region Jacobian; engine.latent.locality). Unless given, it also turns on "
                   "--rotation-samples 4096, --mouth-regression and --min-locality 0.95, as the default preset does.")
@click.option("--locality-tau", default=2e-6, show_default=True,
              help="Ridge strength of the localisation relative to the largest eigenvalue (smaller = stronger).")
@click.option("--rotation-samples", type=int, default=None,
              help="Add three head-rotation directions: w regressed on the 3D head rotation (a rigid fit of "
                   "mediapipe's mesh) of this many samples; they replace the nose region (0 = off; with --localise "
                   "4096 unless given; engine.distill.rotation).")
@click.option("--mouth-regression/--no-mouth-regression", default=None,
              help="With the rotation directions, also a jaw and a smile direction: w regressed on the mouth's "
                   "opening and corner lift measured in the head frame of the same 3D fit, with the rotation held "
                   "fixed (default: on whenever the rotation directions are; engine.distill.rotation).")
@click.option("--min-locality", type=float, default=None,
              help="Prune mouth cluster directions whose landmark motion is less concentrated on the mouth than "
                   "this share of the most local one (0 = off; with the mouth regression, which keeps the smile "
                   "and jaw, 0.95 unless given; RESULTS.md, 'Locality pruning').")
@click.option("--keep-images", is_flag=True, help="Also keep the rendered images in the sample shards.")
@click.option("--batch", default=64, show_default=True, help="Samples per shard.")
@click.option("--device", default="cpu", show_default=True)
@click.pass_context
def command(ctx: click.Context, **options: Any) -> None:
    """CluDistiller: discover latent directions by k-means over generated faces' landmarks.

    Writes OUT/directions.safetensors ([n, num_ws, w_dim]) and OUT/directions.json. Samples are kept in
    OUT/samples/ shards, so rerunning the same command resumes; the result is deterministic for a seed.

    \b
    Examples:
      d2a distill --generator faceworld --samples 32768 --out runs/bank    # the shipped recipe (preset default)
      d2a distill --preset plain --samples 4000 --out runs/plain           # cluster directions only (the paper)
      d2a distill --generator ffhq.d2a.safetensors --samples 20000 --k 2-12 --detect-size 256 --out runs/ffhq
    """
    from engine.distill.cludistiller import distill
    from engine.distill.sampling import SamplingConfig
    from engine.generators import load_generator

    o = resolve(ctx, DISTILL_PRESETS)
    try:
        cfg = distiller_config(o["regions"], o["ks"], o["action_layers"], o["max_directions"], o["effect_samples"],
                               o["localise"], o["locality_tau"], o["rotation_samples"], o["min_locality"], o["seed"],
                               o["mouth_regression"])
    except ValueError as e:
        raise click.BadParameter(str(e)) from e
    generator_ref, out_dir = o["generator_ref"], o["out_dir"]
    kwargs = {"resolution": o["resolution"]} if generator_ref.lower() == "faceworld" else {}
    try:
        gen = load_generator(generator_ref, device=o["device"], **kwargs)
    except (OSError, ValueError) as e:
        raise click.ClickException(f"cannot load generator {generator_ref!r}: {e}") from e
    sampling = SamplingConfig(samples=o["samples"], batch=o["batch"], seed=o["seed"], detect_size=o["detect_size"],
                              keep_images=o["keep_images"])
    try:
        res = distill(gen, out_dir, sampling, cfg)
    except (RuntimeError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    s = res.stats
    click.echo(
        f"{s['directions']} directions from {s['candidates']} candidates; samples kept {s['kept_samples']}/"
        f"{s['drawn']} (undetected {s['dropped_undetected']}) -> {out_dir}/directions.safetensors"
    )

