"""Fixtures of the runtime tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    """A tiny random-weight StyleGAN2 (64², seeded): the real architecture at a size the CPU exports in seconds."""
    from engine.evaluation.bench import build_stylegan2

    return build_stylegan2("tiny64", seed=1)
