"""The live path: the Animator (driver landmarks -> frames of the source) and video driving, shared by the CLI and
the app."""

from engine.animate.animator import (
    REGION_NAMES,
    STAGES,
    Animator,
    AnimatorConfig,
    SynthesisBackend,
    TorchBackend,
    absolute_target,
    fit_similarity,
    frames_to_uint8,
    neutral_scores,
    relative_target,
)
from engine.latent.mapping import ws_from_seed

__all__ = [
    "REGION_NAMES",
    "STAGES",
    "Animator",
    "AnimatorConfig",
    "SynthesisBackend",
    "TorchBackend",
    "absolute_target",
    "fit_similarity",
    "frames_to_uint8",
    "neutral_scores",
    "relative_target",
    "ws_from_seed",
]
