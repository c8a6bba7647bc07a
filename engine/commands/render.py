"""`d2a render`: images from a generator (FaceWorld or a checkpoint), as a contact sheet or one file per seed."""

from __future__ import annotations

from pathlib import Path

import click

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def parse_seeds(text: str) -> list[int]:
    """"0-3,7,10-11" -> [0, 1, 2, 3, 7, 10, 11]."""
    seeds: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            if sep:
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                seeds.extend(range(a, b + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise click.BadParameter(f"bad seed list {text!r}: use e.g. 0-15 or 1,4,9-12") from None
    if not seeds:
        raise click.BadParameter("no seeds given")
    return seeds


def contact_sheet(images, cols: int):
    """uint8 images [N, H, W, 3] -> one uint8 grid image (rows of `cols`, padded with black)."""
    import numpy as np

    n, h, w, c = images.shape
    rows = -(-n // cols)
    sheet = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    for i, im in enumerate(images):
        r, k = divmod(i, cols)
        sheet[r * h : (r + 1) * h, k * w : (k + 1) * w] = im
    return sheet


@click.command(name="render")
@click.option("--generator", "generator_ref", default="faceworld", show_default=True,
              help='"faceworld" or a checkpoint file (.pkl, .pt, .safetensors).')
@click.option("--seeds", default="0-15", show_default=True, help="Seeds: z = randn(1, z_dim) from torch seed.")
@click.option("--psi", default=1.0, show_default=True, type=float, help="Truncation psi (1 = none).")
@click.option("--resolution", default=256, show_default=True, type=int, help="FaceWorld output size (128..512).")
@click.option("--cols", default=0, type=int, help="Contact-sheet columns (default: about square).")
@click.option("--batch", default=8, show_default=True, type=int, help="Images rendered per batch.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="An image file (.png/.jpg/.webp): a contact sheet; otherwise a directory of seedNNNN.png.")
def command(generator_ref: str, seeds: str, psi: float, resolution: int, cols: int, batch: int, out: Path) -> None:
    """Render images from a generator, as a contact sheet or one file per seed.

    With FaceWorld and a directory output, the ground-truth parameters of every image are written to
    ``params.json`` beside the images.

    \b
    Examples:
      d2a render --generator faceworld --seeds 0-15 --out sheet.png
      d2a render --generator faceworld --seeds 3,7,20-23 --psi 0.7 --resolution 512 --out renders/
      d2a render --generator ffhq256.d2a.safetensors --seeds 0-7 --out ffhq.png
    """
    import json
    import math

    import torch
    from tqdm import tqdm

    from engine.generators import FACEWORLD, GroundTruth, load_generator
    from engine.latent.mapping import seed_z
    from engine.media import save_image, to_uint8

    seed_list = parse_seeds(seeds)
    if batch < 1:
        raise click.BadParameter("--batch must be >= 1")
    kw = {"resolution": resolution} if generator_ref.lower() == FACEWORLD else {}
    if kw and not 64 <= resolution <= 1024:
        raise click.BadParameter("--resolution must be within 64..1024 (128..512 recommended)")
    try:
        g = load_generator(generator_ref, **kw)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot load generator {generator_ref!r}: {exc}") from None
    is_fw = isinstance(g, GroundTruth)
    images = []
    truth: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for i in tqdm(range(0, len(seed_list), batch), desc="render", unit="batch", disable=len(seed_list) <= batch):
            chunk = seed_list[i : i + batch]
            z = seed_z(g, chunk)
            c = torch.zeros(len(chunk), g.c_dim) if g.c_dim else None
            ws = g.mapping(z, c, truncation_psi=psi)
            images.append(to_uint8(g.synthesis(ws, noise_mode="const")))
            if is_fw:
                params = g.decode(ws)
                for j, s in enumerate(chunk):
                    truth[str(s)] = {k: round(float(v[j]), 5) for k, v in params.items()}
    import numpy as np

    imgs = np.concatenate(images)
    if out.suffix.lower() in IMAGE_SUFFIXES:
        ncols = cols if cols > 0 else math.ceil(math.sqrt(len(imgs)))
        save_image(out, contact_sheet(imgs, ncols))
        click.echo(f"wrote {out} ({len(imgs)} images, {ncols} columns)")
        return
    out.mkdir(parents=True, exist_ok=True)
    for s, im in zip(seed_list, imgs):
        save_image(out / f"seed{s:04d}.png", im)
    if is_fw:
        (out / "params.json").write_text(json.dumps(truth, indent=1))
    click.echo(f"wrote {len(imgs)} images to {out}/")
