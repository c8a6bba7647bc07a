"""``d2a animate``: animate a source portrait with a driving video (or a folder of images) to an H.264 mp4."""

from __future__ import annotations

import click


@click.command("animate")
@click.option("--bundle", "bundle_path", type=click.Path(), default=None, help="Bundle folder (default: embedded).")
@click.option("--source", required=True, help="Source portrait: an image file, or seed:N for a generated face.")
@click.option("--driving", required=True, type=click.Path(), help="Driving video or folder of images.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .mp4 (H.264).")
@click.option("--mode", type=click.Choice(["relative", "absolute"]), default="relative", show_default=True)
@click.option("--side-by-side", "side", is_flag=True, help="Write driver | output side by side.")
@click.option("--calibrate", type=click.Choice(["first", "auto"]), default="first", show_default=True,
              help="Relative mode reference: the first frame with a face, or the most neutral early frame.")
@click.option("--smoothing", type=float, default=0.0, show_default=True, help="One-Euro strength (0 = off).")
@click.option("--interpolate", type=int, default=0, show_default=True, help="In-between frames per frame.")
@click.option("--steps", type=int, default=300, show_default=True, help="Inversion steps for an image source.")
@click.option("--max-frames", type=int, default=None, help="Stop after this many driving frames.")
@click.option("--device", default="cpu", show_default=True)
def command(
    bundle_path: str | None,
    source: str,
    driving: str,
    out: str,
    mode: str,
    side: bool,
    calibrate: str,
    smoothing: float,
    interpolate: int,
    steps: int,
    max_frames: int | None,
    device: str,
) -> None:
    """Animate a source portrait with a driving video to an mp4.

    \b
    Examples:
      d2a animate --source seed:3 --driving clip.mp4 --out out.mp4
      d2a animate --source me.png --driving frames/ --out out.mp4 --mode absolute --side-by-side
      d2a animate --bundle my_bundle --source seed:7 --driving clip.mp4 --out out.mp4 --smoothing 0.5
    """
    from engine.animate import Animator, AnimatorConfig
    from engine.animate.drive import animate_video, parse_source, probe_driving
    from engine.media import MediaError

    try:
        probe_driving(driving)
        try:
            src = parse_source(source)
        except MediaError:
            raise
        except ValueError as e:  # a malformed seed:N is a usage error, an unreadable image a runtime one
            raise click.BadParameter(str(e)) from e
        cfg = AnimatorConfig(mode=mode, smoothing=smoothing, interpolate=interpolate)
        anim = Animator(bundle_path, device=device, config=cfg)
        if isinstance(src, int):
            anim.set_source(src)
        else:
            from tqdm import tqdm

            bar = tqdm(total=steps, desc="invert", unit="step")
            anim.set_source(src, steps=steps, progress=lambda i, n, loss: bar.update(1))
            bar.close()
        info = animate_video(anim, driving, out, side=side, max_frames=max_frames, calibrate=calibrate)
        anim.close()
    except (MediaError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    med = info["timings"].get("total", {}).get("median", float("nan"))
    click.echo(f"wrote {out}: {info['frames']} frames ({info['no_face_frames']} without a face), {med:.1f} ms/frame")
