"""Inversion: a portrait -> its W+ code (and optionally a pivotally tuned generator)."""

from engine.inversion.core import (
    InversionConfig,
    InversionResult,
    LandmarkProxy,
    RegionLoss,
    invert,
    pca_basis,
    pyramid_loss,
)

__all__ = ["InversionConfig", "InversionResult", "LandmarkProxy", "RegionLoss", "invert", "pca_basis", "pyramid_loss"]
