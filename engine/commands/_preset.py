"""The ``--preset`` option of ``d2a distill`` and ``d2a train``; the presets are ``engine.distill.recipes``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from engine.distill.recipes import DEFAULT_PRESET, with_preset


def preset_option(presets: dict[str, dict[str, Any]]) -> Callable[[Any], Any]:
    """A ``--preset`` click option over ``presets``; its help lists what the default preset sets."""
    sets = ", ".join("--" + k.replace("_", "-") for k in presets[DEFAULT_PRESET])
    return click.option(
        "--preset", type=click.Choice(list(presets)), default=DEFAULT_PRESET, show_default=True,
        help=f"Named recipe (documented in engine.distill.recipes). '{DEFAULT_PRESET}' is the shipped bundle's and "
             f"sets {sets}; 'plain' keeps the defaults shown here. An option given explicitly overrides the preset.",
    )


def resolve(ctx: click.Context, presets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The command's settings: its option defaults, the chosen preset over them, the options given over both."""
    params = {k: v for k, v in ctx.params.items() if k != "preset"}
    given = {k: v for k, v in params.items() if ctx.get_parameter_source(k) is not ParameterSource.DEFAULT}
    try:
        return with_preset(presets, ctx.params["preset"], params, given)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--preset") from e
