"""``d2a eval``: measure a bundle against FaceWorld's ground truth (and optionally on real driving clips).

The protocols and the meaning of every number are documented in ``engine.evaluation.protocols``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("eval")
@click.option("--bundle", "bundle_path", type=click.Path(), default=None, help="Bundle folder (default: embedded).")
@click.option("--json", "json_out", required=True, type=click.Path(dir_okay=False), help="Write the results here.")
@click.option("--pairs", type=int, default=20, show_default=True, help="Held-out source/driver pairs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Selects the held-out identities/actions.")
@click.option("--no-sequence", is_flag=True, help="Skip the bundled driving clip.")
@click.option("--sequence-frames", type=int, default=None, help="Use only the first N frames of the clip.")
@click.option("--inversion", type=int, default=0, show_default=True, help="Also invert N held-out renders.")
@click.option("--inversion-steps", type=int, default=300, show_default=True)
@click.option("--inversion-basis", type=click.Choice(["pca", "bank"]), default="pca", show_default=True,
              help="Landmark-fit subspace of the inversion: principal axes of w, or the bundle's bank.")
@click.option("--smoothing", type=float, default=0.0, show_default=True,
              help="One-Euro strength for the sequence and real clips (AnimatorConfig.smoothing).")
@click.option("--real", multiple=True, type=click.Path(), help="Also drive with a real clip (relative mode).")
@click.option("--device", default="cpu", show_default=True)
def command(
    bundle_path: str | None,
    json_out: str,
    pairs: int,
    seed: int,
    no_sequence: bool,
    sequence_frames: int | None,
    inversion: int,
    inversion_steps: int,
    inversion_basis: str,
    smoothing: float,
    real: tuple[str, ...],
    device: str,
) -> None:
    """Evaluate a bundle (NME, no-motion baseline, appearance error, jitter) against FaceWorld ground truth.

    \b
    Examples:
      d2a eval --json out/eval.json
      d2a eval --bundle runs/b1 --json b1.json --pairs 100
      d2a eval --json real.json --pairs 10 --real ../shared/data/driving/d0.mp4
      d2a eval --json inv.json --pairs 1 --no-sequence --inversion 5
    """
    from engine.evaluation.protocols import evaluate
    from engine.media import MediaError

    if pairs < 1:
        raise click.BadParameter("--pairs must be >= 1")
    try:
        res = evaluate(
            bundle_path, pairs, seed=seed, sequence=not no_sequence, sequence_frames=sequence_frames,
            inversion=inversion, inversion_steps=inversion_steps, inversion_basis=inversion_basis,
            smoothing=smoothing, real=real, device=device,
        )
    except (MediaError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    Path(json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(json_out).write_text(json.dumps(res, indent=1))
    sd, ci = res["self_driving"], res["cross_identity"]
    click.echo(
        f"self-driving NME {sd['nme']} (no motion {sd['nme_no_motion']}); cross-identity NME {ci['nme']} "
        f"(no motion {ci['nme_no_motion']}), appearance error {ci['appearance_error']}"
    )
    if "sequence" in res:
        click.echo(f"sequence NME {res['sequence']['nme']}, jitter {res['sequence']['jitter']}")
    click.echo(f"wrote {json_out}")
