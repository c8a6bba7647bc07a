"""``d2a finetune``: fine-tune a bundle's FAN on one source portrait (invert it, then train around ŵ_s)."""

from __future__ import annotations

import click


@click.command(name="finetune")
@click.option("--bundle", "bundle_path", default=None, type=click.Path(exists=True, file_okay=False),
              help="Bundle folder (default: the embedded FaceWorld bundle).")
@click.option("--source", required=True,
              help="Source portrait image (inverted first), or 'seed:N' for a FaceWorld/generator sample.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder of the new bundle.")
@click.option("--steps", default=300, show_default=True, help="FAN optimisation steps.")
@click.option("--inversion-steps", default=200, show_default=True)
@click.option("--lr", default=3e-4, show_default=True)
@click.option("--seed", default=0, show_default=True)
def command(bundle_path: str | None, source: str, out_dir: str, steps: int, inversion_steps: int, lr: float,
            seed: int) -> None:
    """Fine-tune a bundle's FAN for one person (the paper's per-source fine-tuning).

    The source is inverted into W+ (engine.inversion), then the FAN keeps training on augmented pairs whose
    source is ŵ_s plus a small jitter. The new bundle (same bank, tuned FAN) is written to OUT; its
    bundle.json meta.finetune holds the held-out Δw error before and after.

    \b
    Examples:
      d2a finetune --source portrait.png --out runs/me_bundle
      d2a finetune --bundle runs/fan/bundle --source seed:7 --steps 200 --out runs/seed7
    """
    from tqdm import tqdm

    from engine.bundle import BundleError, load_bundle
    from engine.distill.finetune import finetune
    from engine.distill.train import FinetuneConfig

    try:
        bundle = load_bundle(bundle_path)
    except BundleError as e:
        raise click.ClickException(str(e)) from e
    if source.startswith("seed:"):
        from engine.latent.mapping import seed_z

        gen = bundle.generator("cpu")
        z = seed_z(gen, [int(source[5:])])
        src = gen.mapping(z).detach()
    else:
        from engine.media import MediaError, load_image

        try:
            src = load_image(source)
        except (MediaError, OSError, ValueError) as e:
            raise click.ClickException(f"cannot read {source}: {e}") from e
    bar = tqdm(total=steps, desc="fine-tuning", unit="step")

    def progress(step: int, total: int, metrics: dict) -> None:
        bar.set_postfix_str(str(metrics.get("stage", "")))
        bar.n = step
        bar.refresh()

    cfg = FinetuneConfig(lr=lr, inversion_steps=inversion_steps, seed=seed)
    try:
        new = finetune(bundle, src, steps=steps, progress=progress, config=cfg)
    except (RuntimeError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    finally:
        bar.close()
    new.save(out_dir)
    ft = new.meta["finetune"]
    b, a = ft["val_before"]["val_dw_rel_error"], ft["val_after"]["val_dw_rel_error"]
    click.echo(f"bundle -> {out_dir}  (held-out relative Δw error {b:.3f} -> {a:.3f})")
