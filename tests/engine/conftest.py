"""Fixtures shared by the engine's tests: the real mediapipe detector and a public-domain test portrait."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def detector():
    """mediapipe's face mesh in image mode (the default backend), closed after the module."""
    from engine.landmarks import create_detector

    det = create_detector("mediapipe")
    yield det
    det.close()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """scikit-image's public-domain astronaut portrait, RGB uint8 [512, 512, 3]."""
    return pytest.importorskip("skimage.data").astronaut()
