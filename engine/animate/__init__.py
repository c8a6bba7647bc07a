"""The live path: the Animator (driver landmarks -> frames of the source) and video driving, shared by the CLI and
the app."""

from engine.animate.animator import (
    REGION_NAMES,
    STAGES,
    Animator,
    AnimatorConfig,
    SynthesisBackend,
    absolute_target,
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
    "absolute_target",
    "neutral_scores",
    "relative_target",
    "ws_from_seed",
]
