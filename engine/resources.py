"""One locator for everything shipped in ``resources/`` (no relative paths elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path

_ENV_VAR = "D2A_RESOURCES"


def resources_dir() -> Path:
    """The resources folder: ``$D2A_RESOURCES`` if set, else ``resources/`` beside the ``engine`` package."""
    env = os.environ.get(_ENV_VAR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "resources"


def resource(*parts: str) -> Path:
    """Path of a shipped resource, e.g. ``resource("models", "faceworld")``."""
    return resources_dir().joinpath(*parts)


def default_bundle_dir() -> Path:
    """The embedded default model bundle (FaceWorld generator + directions + FAN)."""
    return resource("models", "faceworld")


def samples_dir() -> Path:
    """Sample media the app and ``d2a demo`` run on out of the box."""
    return resource("samples")


def user_cache_dir() -> Path:
    """Per-user cache (TensorRT engines, fine-tuned FANs, ...); honours ``XDG_CACHE_HOME``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "d2a"
