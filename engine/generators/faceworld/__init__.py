"""FaceWorld: the built-in procedural, differentiable face generator with the StyleGAN2 interface.

``FaceWorld(resolution=256, seed=0)`` is an ``nn.Module`` with ``mapping``/``synthesis`` like StyleGAN2 plus the
ground truth (``decode``, ``keypoints``, ``render_params``). See ``model.py`` for the latent semantics,
``params.py`` for the parameter names and ranges and ``render.py`` for the renderer.
"""

from engine.generators.faceworld.model import FaceWorld, FaceWorldConfig
from engine.generators.faceworld.params import (
    ACTION_PARAMS,
    APPEARANCE_PARAMS,
    EXPRESSION_PARAMS,
    IDENTITY_GEOMETRY_PARAMS,
    IDENTITY_PARAMS,
    POSE_PARAMS,
)

__all__ = [
    "ACTION_PARAMS",
    "APPEARANCE_PARAMS",
    "EXPRESSION_PARAMS",
    "IDENTITY_GEOMETRY_PARAMS",
    "IDENTITY_PARAMS",
    "POSE_PARAMS",
    "FaceWorld",
    "FaceWorldConfig",
]
