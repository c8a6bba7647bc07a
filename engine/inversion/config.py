"""The inversion's settings, grouped by the phase that reads them, and the named presets that pick them.

``InversionConfig.preset("faceworld")`` is the set tuned on FaceWorld renders; the field defaults are the same
values, so ``InversionConfig()`` and keyword overrides of single fields (``InversionConfig(init_candidates=8)``)
keep working as before.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch


@dataclass(kw_only=True)
class InversionConfig:
    """Settings of ``invert``, one block per phase (the module that reads them is named above each block).

    Choose a whole set with ``InversionConfig.preset(name, **overrides)``; ``PRESETS`` lists the names.
    """

    # --- the data terms (targets.py) ---
    scales: tuple[int, ...] = (1, 2, 4, 8, 16)  # average-pooling factors of the pixel pyramid
    scale_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)  # weight of each pyramid level
    w_reg: float = 1e-3  # pull toward w̄
    layer_reg: float = 1e-3  # pull the per-layer codes toward their mean
    region_weight: float = 1.0  # weight of the region pixel loss (eyes, brows, mouth located on the target; 0 = off)
    region_blurs: tuple[float, ...] = (0.0, 2.0, 4.0)  # Gaussian blur sigmas (pixels at 256^2) of the region loss
    region_pad: float = 0.25  # margin around each region's landmarks (fraction of the inter-ocular distance)

    # --- the start (start.py) ---
    init_candidates: int = 64  # random codes (z ~ N(0, I), psi below) scored to choose the start; 0 = start at w̄
    init_psi: float = 0.7  # truncation of the candidate codes
    init_batch: int = 16  # candidates rendered per batch
    appearance_mix: bool = True  # after the landmark fit, try each candidate's appearance layers (style mixing)
    seed: int = 0  # seed of the candidate codes and every random probe (the inversion is deterministic for a seed)
    restarts: int = 1  # full runs from the best `restarts` start candidates; the lowest pixel+region loss wins

    # --- the landmark fit and the landmark term (landmarks.py) ---
    lm_basis: int = 24  # landmark fit subspace without a bank: top principal axes of w on the action layers
    lm_action_layers: int = 8  # layers the landmark subspace acts on (the rest are the appearance layers)
    lm_gn_iters: int = 4  # Levenberg-Marquardt iterations of the landmark fit before the pixels
    lm_fd_step: float = 0.5  # finite-difference step along each basis direction (in units of the direction)
    lm_fit_points: str = "pose_iris"  # points of the fit/term: "all" 78 | "pose" | "pose_iris" | "contour_iris"
    lm_weight: float = 300.0  # weight of the linearised landmark term during the pixel optimisation
    landmark_every: int = 25  # re-detect landmarks on the rendering every K steps (landmarks=True)
    early_stop_nme: float = 0.0  # stop once the NME is below this at two consecutive checks (0 = never)
    select_by_landmarks: bool = False  # take the action layers from the best-NME checkpoint when clearly better

    # --- the gradient phases (optimise.py) ---
    lr: float = 0.02  # Adam learning rate (5 % warm-up, then cosine decay to 5 %)
    appearance_first: float = 0.3  # fraction of the Adam steps that optimise only the layers >= lm_action_layers
    lbfgs_fraction: float = 0.6  # fraction of the steps run as L-BFGS after Adam
    lbfgs_segment: int = 25  # L-BFGS evaluations between re-linearisations of the landmark term

    # --- the region search (search.py) ---
    region_search: int = 1  # sweeps of the localised line search (0 = off; a deeply shut eye needs 2-3)
    region_search_regions: tuple[str, ...] = ("eye_right", "eye_left", "brows", "mouth")  # engine.latent.locality
    #   regions; the brows and mouth pay off with the Gauss-Newton polish after them (a saturated frown or pucker is
    #   switched off by a localised step, then re-fitted)
    region_search_probes: int = 32  # pixel probes of each region's out-of-region Jacobian
    region_search_grid: tuple[float, ...] = (-2.0, -1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 2.0)  # steps along a direction

    # --- the Gauss-Newton polish (polish.py) ---
    gn_iters: int = 10  # Levenberg-Marquardt iterations on the pixel residuals (0 = off)
    gn_probes: int = 64  # random residual probes that span the Jacobian's dominant row space (its subspace of W+)
    gn_rank_tol: float = 1e-5  # keep the subspace directions with a singular value above this share of the largest
    gn_fd_step: float = 0.02  # finite-difference step along each subspace direction (W+ units)
    gn_damping_floor: float = 1e-3  # Marquardt damping uses max(diag(JᵀJ), this x its largest entry)
    gn_resolution: int = 256  # residuals on renders average-pooled to at most this size (J is [directions, pixels])
    refine_rounds: int = 2  # rounds of (region search, Gauss-Newton polish): a second round frees what the first
    #                         polish re-fitted around

    # --- pivotal tuning (pivotal.py) ---
    pti_steps: int = 100  # pivotal tuning steps
    pti_lr: float = 3e-4  # pivotal tuning learning rate

    @classmethod
    def preset(cls, name: str = "faceworld", **overrides: Any) -> InversionConfig:
        """The named preset (``PRESETS``), with single fields overridden by keyword."""
        if name not in PRESETS:
            raise ValueError(f"unknown inversion preset {name!r}; known: {', '.join(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)


# The field defaults are the values tuned on FaceWorld renders; a generator of real faces may want its own preset.
PRESETS: dict[str, InversionConfig] = {"faceworld": InversionConfig()}


@dataclass
class InversionResult:
    """What ``invert`` returns. ``ws`` [1, num_ws, w_dim]; ``image`` uint8 [H, W, 3] = G(ws) (or G'(ws));
    ``losses``: the pixel-pyramid loss per step (reported to ``progress`` too)."""

    ws: torch.Tensor
    image: np.ndarray
    losses: list[float]
    steps_run: int = 0
    cancelled: bool = False
    landmark_nme: float | None = None  # NME of the rendering's landmarks vs the target's (None: not measured)
    nme_history: list[tuple[int, float]] = field(default_factory=list)
    generator: torch.nn.Module | None = None  # the pivotally tuned copy (None without pivotal tuning)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
