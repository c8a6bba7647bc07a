"""``d2a train``: the AugDistiller (train the facial action network on augmented latent pairs)."""

from __future__ import annotations

from typing import Any

import click

from engine.commands._preset import preset_option, resolve
from engine.distill.recipes import TRAIN_PRESETS


@click.command(name="train")
@preset_option(TRAIN_PRESETS)
@click.option("--generator", "generator_ref", default="faceworld", show_default=True,
              help="'faceworld' or a generator checkpoint (.pkl/.pt/.safetensors).")
@click.option("--directions", "directions_path", required=True, type=click.Path(exists=True),
              help="RUN_DIR/directions.safetensors of `d2a distill` (directions.json beside it is used if present).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: pair cache, checkpoint, metrics, and the bundle in OUT/bundle (resumable).")
@click.option("--steps", default=2000, show_default=True)
@click.option("--batch", default=32, show_default=True, help="Global batch (split across torchrun processes).")
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--pairs", default=6144, show_default=True, help="Training pairs to render and cache.")
@click.option("--val-pairs", default=512, show_default=True)
@click.option("--val-render", default=32, show_default=True, help="Held-out pairs re-rendered per validation (NME).")
@click.option("--output", type=click.Choice(["coeffs", "full"]), default="coeffs", show_default=True,
              help="FAN output: coefficients over the bank, or the full Δw of the action layers.")
@click.option("--heatmap-size", default=32, show_default=True)
@click.option("--sigma", default=1.0, show_default=True)
@click.option("--width", default=32, show_default=True, help="Channels of the FAN's first block.")
@click.option("--renorm-percentile", default=99.0, show_default=True,
              help="Per-layer re-norm threshold: this percentile of ||w_l - w_avg|| over random samples.")
@click.option("--active-fraction", default=1.0, show_default=True,
              help="Fraction of bank directions with a nonzero random coefficient per pair (1 = the paper).")
@click.option("--eye-range", default=1.0, show_default=True,
              help="Augmentation range of the bank's eye directions (r ~ U(-x, x); others 1; the default preset: "
                   "0.5, for a localised bank).")
@click.option("--resolution", default=128, show_default=True,
              help="FaceWorld render size for pair rendering/detection (ignored for checkpoints).")
@click.option("--detect-size", default=0, show_default=True, help="Downsample renders before detection (0 = off).")
@click.option("--shard-sources", default=64, show_default=True, help="Sources per cached pair shard.")
@click.option("--targets-per-source", default=4, show_default=True, help="Augmented targets per rendered source.")
@click.option("--checkpoint-every", default=200, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.pass_context
def command(ctx: click.Context, **options: Any) -> None:
    """AugDistiller: train the FAN (landmark heatmaps of a source/target pair -> Δw).

    Renders and detects the augmented pairs once (cached in OUT/pairs), trains with AdamW and a cosine schedule,
    validates on held-out pairs (Δw error, landmark NME after re-rendering), writes OUT/metrics.csv/.json and the
    bundle OUT/bundle. Killed runs resume from OUT/checkpoint.pt when the same command is run again.

    \b
    Examples:
      d2a train --directions runs/bank/directions.safetensors --out runs/fan            # the shipped recipe
      d2a train --preset plain --directions runs/bank/directions.safetensors --out runs/fan --steps 2000
      torchrun --nproc_per_node 2 -m engine.cli train --directions runs/bank/directions.safetensors --out runs/fan
    """
    from engine.distill.recipes import train_config
    from engine.distill.train import train
    from engine.generators import load_generator
    from engine.latent.bank import load_directions

    o = resolve(ctx, TRAIN_PRESETS)
    generator_ref, out_dir = o["generator_ref"], o["out_dir"]
    kwargs = {"resolution": o["resolution"]} if generator_ref.lower() == "faceworld" else {}
    try:
        gen = load_generator(generator_ref, device=o["device"], **kwargs)
        dirs, infos = load_directions(o["directions_path"])
    except (OSError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    if dirs.shape[1:] != (gen.num_ws, gen.w_dim):
        raise click.ClickException(
            f"directions {tuple(dirs.shape)} do not fit the generator (num_ws={gen.num_ws}, w_dim={gen.w_dim})"
        )
    cfg = train_config(o, dirs, infos)
    # The bundle renders at the generator's default resolution; only training renders at --resolution.
    try:
        bundle = train(gen, generator_ref, dirs, infos, out_dir, cfg, generator_kwargs={},
                       train_generator_kwargs=kwargs)
    except (RuntimeError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    if bundle is not None:
        val = bundle.meta.get("last_validation", {})
        msg = ", ".join(f"{k}={v:.4f}" for k, v in val.items() if isinstance(v, float))
        click.echo(f"bundle -> {out_dir}/bundle  ({msg})")
