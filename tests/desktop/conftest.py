"""Desktop-test fixtures: short driving clips rendered with the real engine, temp settings, the default bundle."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")


def render_face_clip(path: Path, frames: int = 40, fps: float = 15.0, poses: int = 10) -> Path:
    """A FaceWorld driver clip [frames × 256²]: the average face turning and opening its mouth.

    ``poses`` distinct frames are rendered in one batch (the renderer is the slow part) and played back and forth.
    """
    import torch

    from engine.generators import load_generator
    from engine.media import VideoWriter, to_uint8

    g = load_generator("faceworld", resolution=256)
    p = g.neutral_params(poses)
    phase = torch.linspace(0.0, 1.0, poses)
    p["yaw"] = p["yaw"] + 0.35 * torch.sin(phase * math.pi * 2.0)
    p["jaw_open"] = 0.9 * phase
    with torch.no_grad():
        images = to_uint8(g.render_params(p))
    order = list(range(poses)) + list(range(poses - 2, 0, -1))
    with VideoWriter(path, fps, (256, 256)) as writer:
        for i in range(frames):
            writer.write(images[order[i % len(order)]])
    return path


def render_plain_clip(path: Path, frames: int = 20, fps: float = 15.0) -> Path:
    """A clip of one plain colour (no face anywhere)."""
    from engine.media import VideoWriter

    with VideoWriter(path, fps, (256, 256)) as writer:
        for _ in range(frames):
            writer.write(np.full((256, 256, 3), (70, 120, 170), np.uint8))
    return path


@pytest.fixture(scope="session")
def default_bundle_dir() -> Path:
    """The embedded default bundle (skips with a reason if this checkout does not have it yet)."""
    from engine.resources import default_bundle_dir

    folder = default_bundle_dir()
    if not (folder / "bundle.json").is_file():
        pytest.skip(f"the default bundle is missing at {folder}")
    return folder


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"face": a moving FaceWorld face, "plain": no face} as mp4 files."""
    root = tmp_path_factory.mktemp("clips")
    return {"face": render_face_clip(root / "face.mp4"), "plain": render_plain_clip(root / "plain.mp4")}
