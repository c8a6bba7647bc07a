"""``d2a distill``: the CluDistiller (latent directions for facial actions from landmark clusters)."""

from __future__ import annotations

from typing import Any

import click


def _parse_ks(text: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            a, b = (int(x) for x in part.split("-"))
            out.extend(range(a, b + 1))
        elif part:
            out.append(int(part))
    if not out or min(out) < 2:
        raise click.BadParameter(f"--k needs cluster counts >= 2, got {text!r}")
    return tuple(sorted(set(out)))


@click.command(name="distill")
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
                   "out-of-region Jacobian; engine.latent.locality). Also turns on --rotation-samples 4096, "
                   "--mouth-regression and --min-locality 0.95 unless they are given. The default bundle's recipe: "
                   "on FaceWorld identity moves 9 % as much as actions instead of 27 % (train its FAN with "
                   "--eye-range 0.5; docs/RESULTS.md, session 6).")
@click.option("--locality-tau", default=2e-6, show_default=True,
              help="Ridge strength of the localisation relative to the largest eigenvalue (smaller = stronger).")
@click.option("--rotation-samples", type=int, default=None,
              help="Add three head-rotation directions: w regressed on the 3D head rotation (a rigid fit of "
                   "mediapipe's mesh) of this many samples; they replace the nose region (0 = off; default: 4096 "
                   "with --localise, else 0; engine.distill.rotation).")
@click.option("--mouth-regression/--no-mouth-regression", default=None,
              help="With the rotation directions, also a jaw and a smile direction: w regressed on the mouth's "
                   "opening and corner lift measured in the head frame of the same 3D fit, with the rotation held "
                   "fixed (default: on whenever the rotation directions are; engine.distill.rotation).")
@click.option("--min-locality", type=float, default=None,
              help="Prune mouth cluster directions whose landmark motion is less concentrated on the mouth than "
                   "this share of the most local one (0 = off; default: 0.95 with the mouth regression, which "
                   "keeps the smile and jaw, else 0; RESULTS.md session 6).")
@click.option("--keep-images", is_flag=True, help="Also keep the rendered images in the sample shards.")
@click.option("--batch", default=64, show_default=True, help="Samples per shard.")
@click.option("--device", default="cpu", show_default=True)
def command(generator_ref: str, samples: int, out_dir: str, seed: int, regions: str, ks: str, action_layers: int,
            resolution: int, detect_size: int, max_directions: int, effect_samples: int, localise: bool,
            locality_tau: float, rotation_samples: int | None, mouth_regression: bool | None,
            min_locality: float | None, keep_images: bool, batch: int, device: str) -> None:
    """CluDistiller: discover latent directions by k-means over generated faces' landmarks.

    Writes OUT/directions.safetensors ([n, num_ws, w_dim]) and OUT/directions.json. Samples are kept in
    OUT/samples/ shards, so rerunning the same command resumes; the result is deterministic for a seed.

    \b
    Examples:
      d2a distill --generator faceworld --samples 4000 --out runs/bank
      d2a distill --generator ffhq.d2a.safetensors --samples 20000 --k 2-12 --detect-size 256 --out runs/ffhq
    """
    from engine.distill.cludistiller import distill
    from engine.distill.sampling import SamplingConfig
    from engine.generators import load_generator

    kwargs = {"resolution": resolution} if generator_ref.lower() == "faceworld" else {}
    try:
        gen = load_generator(generator_ref, device=device, **kwargs)
    except (OSError, ValueError) as e:
        raise click.ClickException(f"cannot load generator {generator_ref!r}: {e}") from e
    sampling = SamplingConfig(samples=samples, batch=batch, seed=seed, detect_size=detect_size, keep_images=keep_images)
    cfg = distiller_config(regions, ks, action_layers, max_directions, effect_samples, localise, locality_tau,
                           rotation_samples, min_locality, seed, mouth_regression)
    try:
        res = distill(gen, out_dir, sampling, cfg)
    except (RuntimeError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    s = res.stats
    click.echo(
        f"{s['directions']} directions from {s['candidates']} candidates; samples kept {s['kept_samples']}/"
        f"{s['drawn']} (undetected {s['dropped_undetected']}) -> {out_dir}/directions.safetensors"
    )


def distiller_config(regions: str, ks: str, action_layers: int, max_directions: int, effect_samples: int,
                     localise: bool, locality_tau: float, rotation_samples: int | None, min_locality: float | None,
                     seed: int, mouth_regression: bool | None = None) -> Any:
    """The command's options -> ``CluDistillerConfig``. Unless given: ``--localise`` turns on 4096 rotation samples,
    the mouth regression follows the rotation directions, and the mouth's locality pruning (0.95) the regression."""
    from engine.distill.cludistiller import CluDistillerConfig
    from engine.latent.locality import LocalityConfig

    rot = (4096 if localise else 0) if rotation_samples is None else rotation_samples
    mouth = rot > 0 if mouth_regression is None else mouth_regression
    return CluDistillerConfig(
        regions=tuple(r.strip() for r in regions.split(",") if r.strip()),
        ks=_parse_ks(ks),
        action_layers=action_layers,
        max_directions=max_directions,
        effect_samples=effect_samples,
        localise=localise,
        locality=LocalityConfig(tau=locality_tau, seed=seed),
        rotation_samples=rot,
        mouth_regression=mouth,
        min_locality=(0.95 if mouth else 0.0) if min_locality is None else min_locality,
        seed=seed,
    )
