"""Fixtures of the distiller tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def fw():
    """FaceWorld at 96² (small renders keep the distillers' tests fast; mediapipe still finds every face)."""
    from engine.generators import load_generator

    return load_generator("faceworld", resolution=96)
