"""FaceWorld's named parameters: groups, value ranges and the squashing that maps a latent score to a value.

Every parameter is computed from a standardised latent score ``r`` (about N(0, 1) for ``z ~ N(0, I)``, exactly 0
at ``w_avg``) by one smooth squashing function, so the average face (``truncation_psi=0``) is a neutral,
frontal, eyes-open, mouth-closed face, and the spread under ``z ~ N(0, I)`` covers natural ranges.

Conventions (image axes: x to the right, y up for angles):
- ``yaw`` > 0 turns the face towards image right; ``pitch`` > 0 looks up; ``roll`` > 0 tilts the head
  counter-clockwise as seen in the image. Angles in radians.
- ``*_left`` is the subject's left (image right in a non-mirrored portrait).
- ``gaze_x`` > 0 looks towards image right, ``gaze_y`` > 0 looks up (both in [-1, 1] of the eye's range).
- Expression values ``jaw_open, smile, pucker, blink_*, brow_raise, frown`` are in [0, 1].
- Identity geometry values are in [-1, 1] (0 = average); appearance values in [0, 1] or [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

POSE_PARAMS: tuple[str, ...] = ("yaw", "pitch", "roll", "tx", "ty", "scale")
EXPRESSION_PARAMS: tuple[str, ...] = (
    "jaw_open",
    "smile",
    "pucker",
    "blink_left",
    "blink_right",
    "brow_raise",
    "frown",
    "gaze_x",
    "gaze_y",
)
ACTION_PARAMS: tuple[str, ...] = POSE_PARAMS + EXPRESSION_PARAMS
IDENTITY_GEOMETRY_PARAMS: tuple[str, ...] = (
    "face_width",
    "face_length",
    "jaw_shape",
    "chin_length",
    "eye_spacing",
    "eye_size",
    "eye_height",
    "nose_size",
    "nose_length",
    "mouth_width",
    "lip_thickness",
    "brow_thickness",
    "brow_arch",
    "ear_size",
    "hair_style",
    "hair_volume",
    "hairline",
    "neck_width",
)
APPEARANCE_PARAMS: tuple[str, ...] = (
    "skin_tone",
    "skin_warmth",
    "hair_color",
    "hair_hue",
    "eye_color",
    "lip_color",
    "blush",
    "background",
    "background_value",
    "shirt_color",
    "shirt_value",
    "light_azimuth",
    "light_elevation",
    "light_intensity",
)
IDENTITY_PARAMS: tuple[str, ...] = IDENTITY_GEOMETRY_PARAMS + APPEARANCE_PARAMS
GEOMETRY_PARAMS: tuple[str, ...] = ACTION_PARAMS + IDENTITY_GEOMETRY_PARAMS  # decoded from layers 0..7
ALL_PARAMS: tuple[str, ...] = GEOMETRY_PARAMS + APPEARANCE_PARAMS


@dataclass(frozen=True)
class Squash:
    """value = scale * tanh(gain * r + bias) + offset  (kind "tanh")  or  sigmoid(gain * r + bias)  (kind "sig")."""

    kind: str  # "tanh" | "sig"
    gain: float  # slope on the standardised score
    bias: float = 0.0  # shift before squashing (sets how often an action is "on")
    scale: float = 1.0  # output scale (tanh only)
    offset: float = 0.0  # output offset (tanh only)


def _t(scale: float = 1.0, gain: float = 0.8, offset: float = 0.0) -> Squash:
    return Squash("tanh", gain, 0.0, scale, offset)


def _s(gain: float, bias: float) -> Squash:
    return Squash("sig", gain, bias)


# Natural ranges: yaw within about +-35 deg, pitch +-20 deg, roll +-15 deg; actions mostly off with a sizeable
# share of samples showing each one (CluDistiller clusters random samples by their landmarks).
SQUASH: dict[str, Squash] = {
    "yaw": _t(0.62, 0.75),
    "pitch": _t(0.36, 0.75),
    "roll": _t(0.27, 0.75),
    "tx": _t(0.06, 0.8),
    "ty": _t(0.05, 0.8),
    "scale": _t(0.08, 0.8, 1.0),
    "jaw_open": _s(2.4, -2.4),  # 0.08 at the mean, > 0.5 for ~16 % of samples
    "smile": _s(2.0, -1.0),
    "pucker": _s(2.4, -2.6),
    "blink_left": _s(4.0, -4.2),  # eyes mostly open; ~15 % of samples have a closed eye
    "blink_right": _s(4.0, -4.2),
    "brow_raise": _s(2.0, -1.0),
    "frown": _s(2.4, -2.4),
    "gaze_x": _t(1.0, 0.8),
    "gaze_y": _t(0.8, 0.8),
    **{name: _t() for name in IDENTITY_GEOMETRY_PARAMS},
    "skin_tone": _s(1.4, 0.0),
    "skin_warmth": _t(),
    "hair_color": _s(1.6, 0.6),
    "hair_hue": _s(1.6, 0.0),
    "eye_color": _s(1.6, 0.0),
    "lip_color": _s(1.4, 0.0),
    "blush": _s(1.4, -0.5),
    "background": _s(1.8, 0.0),
    "background_value": _s(1.4, 0.0),
    "shirt_color": _s(1.8, 0.0),
    "shirt_value": _s(1.4, 0.0),
    "light_azimuth": _t(0.7, 0.8),
    "light_elevation": _t(0.25, 0.8, 0.35),
    "light_intensity": _s(1.2, 0.3),
}
