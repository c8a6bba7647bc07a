"""``d2a invert``: invert a portrait into a generator's W+ space and save the code (safetensors)."""

from __future__ import annotations

import click


@click.command("invert")
@click.option("--generator", "generator_ref", default="faceworld", show_default=True,
              help="'faceworld' or a converted checkpoint (.d2a.safetensors / .pkl / .pt).")
@click.option("--image", required=True, type=click.Path(dir_okay=False), help="Portrait to invert (RGB image).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output ws.safetensors.")
@click.option("--steps", type=int, default=300, show_default=True, help="Optimisation steps.")
@click.option("--no-landmarks", is_flag=True, help="Skip the landmark checks (selection / early stop).")
@click.option("--pivotal-tuning", is_flag=True, help="Also fine-tune a generator copy around the code (PTI).")
@click.option("--bundle", "bundle_path", type=click.Path(), default=None,
              help="Use this bundle's direction bank as the landmark-fit subspace (default: principal axes of w).")
@click.option("--candidates", type=int, default=64, show_default=True, help="Random start codes to choose from.")
@click.option("--preview", type=click.Path(dir_okay=False), default=None, help="Also save the rendering (png).")
@click.option("--device", default="cpu", show_default=True)
def command(
    generator_ref: str,
    image: str,
    out: str,
    steps: int,
    no_landmarks: bool,
    pivotal_tuning: bool,
    bundle_path: str | None,
    candidates: int,
    preview: str | None,
    device: str,
) -> None:
    """Invert a portrait into the generator's W+ space.

    Writes ``{"ws": [1, num_ws, w_dim]}`` to OUT (safetensors) with the final loss and landmark NME in its
    metadata; with --pivotal-tuning the tuned synthesis weights go to OUT with the suffix ``.generator``.

    \b
    Examples:
      d2a invert --image portrait.png --out ws.safetensors
      d2a invert --generator ffhq256.d2a.safetensors --image me.jpg --out me_ws.safetensors --steps 500
      d2a invert --image portrait.png --out ws.safetensors --bundle resources/models/faceworld
    """
    from pathlib import Path

    from safetensors.torch import save_file
    from tqdm import tqdm

    from engine.generators import load_generator
    from engine.inversion import InversionConfig, invert
    from engine.media import MediaError, load_image, save_image

    try:
        img = load_image(image)
        g = load_generator(generator_ref, device=device)
        basis = None
        if bundle_path is not None:
            from engine.bundle import load_bundle

            basis = load_bundle(bundle_path).directions
    except (MediaError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from e
    bar = tqdm(total=steps, desc="invert", unit="step")

    def progress(i: int, n: int, loss: float) -> None:
        bar.total = n  # the Gauss-Newton polish adds its iterations to the steps
        bar.update(i - bar.n)
        bar.set_postfix(loss=f"{loss:.4f}")

    res = invert(
        g, img, steps=steps, landmarks=not no_landmarks, progress=progress, pivotal_tuning=pivotal_tuning,
        config=InversionConfig(init_candidates=candidates), basis=basis,
    )
    bar.close()
    meta = {
        "generator": str(generator_ref),
        "steps": str(res.steps_run),
        "final_loss": f"{res.losses[-1]:.6f}" if res.losses else "nan",
        "landmark_nme": "nan" if res.landmark_nme is None else f"{res.landmark_nme:.5f}",
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_file({"ws": res.ws.detach().cpu().contiguous()}, out, metadata=meta)
    if res.generator is not None:
        state = {k: v.detach().cpu().contiguous() for k, v in res.generator.state_dict().items()}
        save_file(state, str(out) + ".generator", metadata=meta)
    if preview:
        save_image(preview, res.image)
    for note in res.notes:
        click.echo(note)
    click.echo(f"wrote {out}: loss {meta['final_loss']}, landmark NME {meta['landmark_nme']}, {res.seconds:.1f} s")
