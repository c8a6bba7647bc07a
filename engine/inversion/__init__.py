"""Inversion: a portrait -> its W+ code ŵ (and optionally a pivotally tuned generator).

    res = invert(generator, image_uint8, steps=300)      # InversionResult(ws [1, num_ws, w_dim], image, losses, ...)

The phases of ``invert`` (``pipeline.py``), in order, one module each: the target and its data terms
(``targets``), the start and style mixing of the appearance layers (``start``), the landmark fit and term
(``landmarks``), Adam then L-BFGS (``optimise``), rounds of region search (``search``) and Gauss-Newton polish
(``polish``), pivotal tuning (``pivotal``). Settings and presets: ``config``; the state the phases share:
``context``.
"""

from engine.inversion.config import PRESETS, InversionConfig, InversionResult
from engine.inversion.landmarks import LandmarkProxy, pca_basis
from engine.inversion.pipeline import invert
from engine.inversion.targets import RegionLoss, pyramid_loss

__all__ = [
    "PRESETS", "InversionConfig", "InversionResult", "LandmarkProxy", "RegionLoss", "invert", "pca_basis",
    "pyramid_loss",
]
