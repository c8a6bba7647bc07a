"""``d2a demo``: headless demo — animate the bundled sample source with the bundled driving clip."""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--out", type=click.Path(dir_okay=False), default="out/demo.mp4", show_default=True,
              help="Output mp4 (driver | output side by side).")
@click.option("--bundle", "bundle_path", type=click.Path(), default=None, help="Bundle folder (default: embedded).")
@click.option("--mode", type=click.Choice(["relative", "absolute"]), default="relative", show_default=True)
@click.option("--max-frames", type=int, default=None, help="Stop after this many frames.")
def command(out: str, bundle_path: str | None, mode: str, max_frames: int | None) -> None:
    """Animate the bundled sample portrait with the bundled driving clip (no display needed).

    The source is ``resources/samples/source.png`` (a FaceWorld portrait; its W+ code ships beside it as
    ``source_ws.safetensors`` so no inversion is needed), the driver ``resources/samples/driving.mp4``.

    \b
    Examples:
      d2a demo
      d2a demo --out /tmp/demo.mp4 --mode absolute
    """
    from engine.animate import Animator, AnimatorConfig
    from engine.animate.drive import animate_video, load_sample_source
    from engine.media import MediaError
    from engine.resources import samples_dir

    samples = samples_dir()
    driving = samples / "driving.mp4"
    if not driving.is_file():
        raise click.ClickException(f"the sample driving clip is missing: {driving} (run scripts/make_samples.py)")
    try:
        anim = Animator(bundle_path, config=AnimatorConfig(mode=mode))
        anim.set_source(load_sample_source(samples))
        info = animate_video(anim, driving, out, side=True, max_frames=max_frames)
        anim.close()
    except (MediaError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    med = info["timings"].get("total", {}).get("median", float("nan"))
    click.echo(f"wrote {out}: {info['frames']} frames, {med:.1f} ms/frame (median)")

