"""The ``d2a`` command line: thin, lazily imported subcommands over the engine.

Each subcommand lives in ``engine/commands/<name>.py`` and exposes a click command named ``command``;
it is imported only when invoked, so ``d2a --help`` stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

# name -> one-line help shown by `d2a --help` (the module engine.commands.<name> provides it).
SUBCOMMANDS: dict[str, str] = {
    "convert": "Convert an official StyleGAN2 checkpoint (.pkl/.pt) to our safetensors format.",
    "render": "Render images from a generator (FaceWorld or a checkpoint).",
    "distill": "CluDistiller: discover latent directions for facial actions.",
    "train": "AugDistiller: train the facial action network (FAN).",
    "finetune": "Fine-tune a bundle's FAN on one source portrait.",
    "invert": "Invert a portrait into the generator's W+ space.",
    "animate": "Animate a source with a driving video to an mp4.",
    "eval": "Evaluate a bundle (NME, identity, jitter) against ground truth.",
    "demo": "Headless demo: animate the bundled sample with the bundled driving clip.",
    "export": "Export the generator and FAN to ONNX.",
    "bench": "Benchmark the live pipeline per backend.",
}


def _available(name: str) -> bool:
    return importlib.util.find_spec(f"engine.commands.{name}") is not None


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n in SUBCOMMANDS if _available(n)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS or not _available(cmd_name):
            return None
        module = importlib.import_module(f"engine.commands.{cmd_name}")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, SUBCOMMANDS[n]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="d2a-desktop")
def main() -> None:
    """D2A: animate a portrait from a driving face with a pretrained StyleGAN2 (D²Animator).

    \b
    Examples:
      d2a demo --out demo.mp4
      d2a convert ffhq.pkl ffhq.d2a.safetensors
      d2a render --generator faceworld --seeds 0-15 --out sheet.png
      d2a animate --source seed:3 --driving clip.mp4 --out out.mp4
    """


if __name__ == "__main__":  # pragma: no cover
    main()
