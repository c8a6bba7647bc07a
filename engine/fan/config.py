"""The FAN's configuration: everything needed to rebuild a FAN and its input preparation (saved in ``bundle.json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


def default_points() -> list[int]:
    """Indices (into the 478-point mesh) of the points the FAN sees: iBUG-68 + the 10 iris points."""
    from engine.landmarks import schema

    idx = [int(i) for i in np.asarray(schema.IBUG68).tolist()]
    irises = [int(i) for i in np.asarray(schema.REGIONS["irises"]).tolist()]
    return idx + [i for i in irises if i not in idx]


@dataclass
class FANConfig:
    """Everything needed to rebuild a FAN and its preprocessing (saved in ``bundle.json``)."""

    num_ws: int = 14  # latent layers of the generator
    w_dim: int = 512  # width of one latent
    action_layers: int = 8  # Δw is predicted on ws[:, :action_layers]; zeros beyond
    points: list[int] = field(default_factory=list)  # indices into the 478 mesh; [] -> default_points()
    heatmap_size: int = 32  # S: side of the heatmaps in pixels
    sigma: float = 1.0  # Gaussian std in heatmap pixels
    face_extent: float = 0.30  # RMS radius of the source points maps to face_extent * S
    align_rotation: bool = False  # also remove the source's in-plane rotation (default: keep it)
    output: str = "coeffs"  # "coeffs" (over the bank) | "full" (Δw of the action layers)
    num_directions: int = 0  # bank size (for output="coeffs")
    width: int = 32  # channels of the first conv block (doubles per block)
    hidden: int = 256  # width of the fully connected layer

    def __post_init__(self) -> None:
        if self.output not in ("coeffs", "full"):
            raise ValueError(f"FANConfig.output must be 'coeffs' or 'full', got {self.output!r}")
        if not 0 < self.action_layers <= self.num_ws:
            raise ValueError(f"action_layers must be in 1..num_ws={self.num_ws}, got {self.action_layers}")
        if self.heatmap_size < 16:
            raise ValueError(f"heatmap_size must be >= 16, got {self.heatmap_size}")

    def resolved(self) -> FANConfig:
        """A copy with ``points`` filled in (default points when empty)."""
        d = asdict(self)
        if not d["points"]:
            d["points"] = default_points()
        return FANConfig(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FANConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


