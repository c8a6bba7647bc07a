"""`d2a convert IN OUT`: an official StyleGAN2 checkpoint -> our safetensors format."""

from __future__ import annotations

import click


@click.command(name="convert")
@click.argument("src", metavar="IN", type=click.Path(dir_okay=False, path_type=str))
@click.argument("dst", metavar="OUT", type=click.Path(dir_okay=False, writable=True, path_type=str))
@click.option("--verify/--no-verify", default=True, show_default=True, help="Reload OUT and compare one image.")
@click.option("--seed", default=0, show_default=True, help="Seed of the verification image.")
def command(src: str, dst: str, verify: bool, seed: int) -> None:
    """Convert an official StyleGAN2 checkpoint to D2A's safetensors format.

    IN is an NVlabs network pickle (stylegan2-ada-pytorch, or the stylegan3 repo's StyleGAN2), a rosinality
    stylegan2-pytorch .pt, or an existing D2A .safetensors. Nothing in IN is executed: pickles are read with a
    restricted unpickler and .pt files with torch.load(weights_only=True). StyleGAN3 and TensorFlow pickles are
    rejected with a clear message.

    \b
    Examples:
      d2a convert stylegan2-ffhq-1024x1024.pkl ffhq1024.d2a.safetensors
      d2a convert 550000.pt ffhq256.d2a.safetensors --no-verify
    """
    import torch

    from engine.generators.checkpoints import CheckpointError, describe, load_checkpoint, save_generator
    from engine.latent.mapping import seed_z

    try:
        g = load_checkpoint(src)
    except CheckpointError as e:
        raise click.ClickException(str(e)) from None
    info = describe(g)
    click.echo(f"found: {info['format']}" + (f" ({g.checkpoint_info['repo']})" if "repo" in g.checkpoint_info else ""))
    click.echo(
        f"  resolution {info['resolution']}, num_ws {info['num_ws']}, z_dim {info['z_dim']}, w_dim {info['w_dim']}, "
        f"c_dim {info['c_dim']}, mapping layers {info['mapping_layers']}"
    )
    click.echo(
        f"  channels {info['channels']}, conv_clamp {info['conv_clamp']}, architecture {info['architecture']}, "
        f"w_avg: {info['w_avg_source']}"
    )
    out = save_generator(g, dst, info={"converted_from": str(src)})
    click.echo(f"wrote {out}")
    if not verify:
        return
    g2 = load_checkpoint(out)
    z = seed_z(g, [seed])
    c = torch.zeros([1, g.c_dim]) if g.c_dim else None
    with torch.no_grad():
        a = g.synthesis(g.mapping(z, c))
        b = g2.synthesis(g2.mapping(z, c))
    diff = float((a - b).abs().max())
    click.echo(f"verified: max |image difference| after reload = {diff:.3g} (seed {seed})")
    if diff > 1e-6:
        raise click.ClickException(f"{out}: the reloaded generator differs from the source (max diff {diff})")
