"""The facial action network (FAN): its config, its input preparation and the network.

The FAN turns a landmark change into a latent change::

    x  = fan_inputs(src_points, tgt_points, config)     # [N, 2K, S, S]  Gaussian heatmaps, source then target
    dw = fan(x)                                        # [N, num_ws, w_dim]  zeros beyond the action layers

``fan_inputs`` is the ONLY preprocessing path: training (``engine.distill.train``) and inference (the Animator)
both call it, so the two can never drift apart.

Design (chosen by measurement, see ``docs/RESULTS.md``, 'FAN design', and :class:`FANConfig`):

* **Points.** The 68 iBUG points of the 478-point mesh plus the 10 iris points (78 points, one heatmap channel per
  point): the iBUG subset carries jaw, brows, eyelids and lips; the irises carry gaze, which the iBUG set lacks.
* **Alignment.** One similarity transform is computed from the SOURCE only (translation = centroid of its points,
  scale = RMS radius of its points, no rotation) and applied to BOTH point sets. Aligning each set separately
  would normalise yaw/roll/scale/translation differences away; with a common source transform they survive in
  the target heatmaps. Rotation is not removed so that the absolute head roll of the source stays visible too.
* **Output.** ``output="coeffs"``: the network predicts one coefficient per bank direction and returns
  ``coeffs @ bank`` (a few dozen outputs instead of ``action_layers * w_dim``); ``output="full"`` predicts the full
  Δw of the action layers directly.
"""

from engine.fan.config import FANConfig, default_points
from engine.fan.inputs import canonical_points, fan_inputs, source_transform
from engine.fan.network import FAN, fan_loss, log_cosh

__all__ = [
    "FAN",
    "FANConfig",
    "canonical_points",
    "default_points",
    "fan_inputs",
    "fan_loss",
    "log_cosh",
    "source_transform",
]
