"""FaceWorld ground-truth errors: FaceWorld's ``decode(ws)`` gives the true parameters of every rendered face.

The mean absolute difference of decoded parameters between two codes, over ``APPEARANCE_PARAMS`` (colour/texture),
``IDENTITY_PARAMS`` or ``ACTION_PARAMS`` (pose and expression); used by ``d2a eval`` and docs/RESULTS.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from engine.generators.protocol import require_ground_truth

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from engine.generators.protocol import Generator


def param_error(generator: Generator, ws_a: torch.Tensor, ws_b: torch.Tensor, names: Iterable[str]) -> float:
    """Mean |decode(ws_a)[p] - decode(ws_b)[p]| over parameters ``names`` and the batch (FaceWorld only)."""
    import torch

    names = list(names)
    truth = require_ground_truth(generator, "a parameter error")
    with torch.no_grad():
        da, db = truth.decode(ws_a), truth.decode(ws_b)
    errs = [(da[n].float() - db[n].float()).abs().mean() for n in names]
    return float(torch.stack(errs).mean()) if errs else 0.0


def param_errors(
    generator: Generator, ws_a: torch.Tensor, ws_b: torch.Tensor, names: Iterable[str]
) -> dict[str, float]:
    """Per-parameter mean absolute differences of FaceWorld's decode (see ``param_error``)."""
    import torch

    truth = require_ground_truth(generator, "parameter errors")
    with torch.no_grad():
        da, db = truth.decode(ws_a), truth.decode(ws_b)
    return {n: float((da[n].float() - db[n].float()).abs().mean()) for n in names}


def appearance_error(generator: Generator, ws_a: torch.Tensor, ws_b: torch.Tensor) -> float:
    """Mean absolute error over FaceWorld's colour/texture parameters (identity appearance)."""
    truth = require_ground_truth(generator, "the appearance error")
    return param_error(truth, ws_a, ws_b, truth.APPEARANCE_PARAMS)


def identity_error(generator: Generator, ws_a: torch.Tensor, ws_b: torch.Tensor) -> float:
    """Mean absolute error over all FaceWorld identity parameters (geometry and colours)."""
    truth = require_ground_truth(generator, "the identity error")
    return param_error(truth, ws_a, ws_b, truth.IDENTITY_PARAMS)


def action_error(generator: Generator, ws_a: torch.Tensor, ws_b: torch.Tensor) -> float:
    """Mean absolute error over FaceWorld's pose and expression parameters."""
    truth = require_ground_truth(generator, "the action error")
    return param_error(truth, ws_a, ws_b, truth.ACTION_PARAMS)
