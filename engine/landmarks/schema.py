"""The landmark schema shared by every backend: the 478-point mediapipe mesh, its iBUG-68 subset and region groups.

Conventions
-----------
* Points are ``(x, y)`` in pixels of the image they were detected on (x to the right, y down).
* **Left and right are the subject's**, as in mediapipe and in the iBUG annotation: the subject's *right* eye
  appears on the *image left* of a non-mirrored photo. ``RIGHT_EYE`` therefore holds the eye with the smaller x on
  a frontal, non-mirrored photo, and the iBUG points 36-41 are that eye.
* The full layout is the mediapipe face mesh with refined irises: indices 0-467 are the mesh, 468-472 the subject's
  right iris (centre 468, then four points on the iris rim) and 473-477 the subject's left iris (centre 473).
* ``IBUG68`` picks, for each of the 68 iBUG/300-W points, the mesh vertex that sits at the same anatomical place,
  so a 478-point detection can be compared with (or replaced by) a 68-point one (dlib, face-alignment):
  ``to_ibug68(points)`` is that selection for 478 points and the identity for 68 points. The vertices were chosen
  among left/right mirror pairs of the mesh (jaw points on the face-oval contour, in order) to best match dlib's
  68-point predictor on 63 real frames (the astronaut photo and three talking-head clips): mean NME to dlib 0.035
  of the inter-ocular distance (jaw 0.059, inner face 0.027); eye and mouth corners are the mesh's anatomical
  corners.

iBUG-68 order (image-left to image-right on a frontal, non-mirrored face):
  0-16 jaw contour from the subject's right ear level over the chin (8) to the left ear level;
  17-21 subject's right brow (outer to inner), 22-26 left brow (inner to outer);
  27-30 nose bridge from between the eyes down to the tip, 31-35 lower nose from the right nostril to the left;
  36-41 right eye (outer corner, upper lid x2, inner corner, lower lid x2), 42-47 left eye (inner corner first);
  48-59 outer lip contour clockwise from the right mouth corner (51 top centre, 54 left corner, 57 bottom centre);
  60-67 inner lip contour (60 right inner corner, 62 top centre, 64 left inner corner, 66 bottom centre).

The "face" set used for heatmaps and region controls is the 68 subset followed by the 10 iris points (78 points).
``REGIONS`` indexes the 478 layout; ``FACE_REGIONS`` indexes positions inside the 78-point face set;
``IBUG_REGIONS`` indexes positions inside a 68-point array.

Region names are spelled once, here (``LANDMARK_REGIONS``); every other table in the project (the CluDistiller's
regions, the locality masks, the Animator's toggles, the augmentation's eye ranges) is written with these
constants. Bank files save them as strings (``"region": "eye_right"``), so the strings never change.
"""

from __future__ import annotations

import numpy as np

NUM_POINTS = 478  # mediapipe face mesh with refined irises
NUM_MESH_POINTS = 468  # the mesh without irises
NUM_IBUG = 68


class Region:
    """THE region names, plain strings (bank files save them: ``"region": "eye_right"``)."""

    FACE = "face"  # all 78 points of the face set
    JAW = "jaw"
    BROWS = "brows"
    EYES = "eyes"  # both eyes, lids and irises
    EYE_RIGHT = "eye_right"  # one eye (the subject's right): its lids and its iris
    EYE_LEFT = "eye_left"
    IRISES = "irises"
    NOSE = "nose"
    MOUTH = "mouth"
    POSE = "pose"  # no point set: the head's motion (the CluDistiller's pose clusters, the Animator's pose toggle)


LANDMARK_REGIONS: tuple[str, ...] = (
    Region.FACE, Region.JAW, Region.BROWS, Region.EYES, Region.EYE_RIGHT, Region.EYE_LEFT, Region.IRISES,
    Region.NOSE, Region.MOUTH,
)
EYE_REGIONS: tuple[str, ...] = (Region.EYES, Region.EYE_RIGHT, Region.EYE_LEFT, Region.IRISES)  # eye points only

# fmt: off
IBUG68 = np.array([
    # jaw 0-16: subject's right (image left, temple level) -> chin (8) -> subject's left
    127, 234, 93, 132, 172, 136, 149, 148, 152, 377, 378, 365, 397, 361, 323, 454, 356,
    # right brow 17-21 (outer -> inner), left brow 22-26 (inner -> outer); upper brow edge
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # nose bridge 27-30 (top -> just above the tip), lower nose 31-35 (right alar base -> left alar base)
    168, 197, 195, 4, 75, 97, 2, 326, 305,
    # right eye 36-41: outer corner, upper lid (outer, inner), inner corner, lower lid (inner, outer)
    33, 160, 158, 133, 153, 144,
    # left eye 42-47: inner corner, upper lid (inner, outer), outer corner, lower lid (outer, inner)
    362, 385, 387, 263, 373, 380,
    # outer lips 48-59: right corner, upper lip to the left corner (54), lower lip back
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,
    # inner lips 60-67: right inner corner, upper inner lip, left inner corner (64), lower inner lip
    78, 82, 13, 312, 308, 317, 14, 87,
], dtype=np.int64)
# fmt: on

RIGHT_IRIS = np.arange(468, 473, dtype=np.int64)  # subject's right iris: centre, then 4 rim points
LEFT_IRIS = np.arange(473, 478, dtype=np.int64)  # subject's left iris: centre, then 4 rim points
IRISES = np.concatenate([RIGHT_IRIS, LEFT_IRIS])

# Named points (indices into the 478 layout). Subject's left/right.
RIGHT_IRIS_CENTER = 468
LEFT_IRIS_CENTER = 473
RIGHT_EYE_CENTER = RIGHT_IRIS_CENTER  # the iris centre; for the centre of the eye opening use eye_centers() on 68 pts
LEFT_EYE_CENTER = LEFT_IRIS_CENTER
RIGHT_EYE_OUTER = 33
RIGHT_EYE_INNER = 133
LEFT_EYE_INNER = 362
LEFT_EYE_OUTER = 263
NOSE_TIP = 1
NOSE_BRIDGE = 168
CHIN = 152
MOUTH_RIGHT = 61  # subject's right mouth corner (image left)
MOUTH_LEFT = 291
UPPER_LIP_TOP = 0  # outer upper lip, centre
LOWER_LIP_BOTTOM = 17  # outer lower lip, centre
UPPER_LIP_INNER = 13  # inner upper lip, centre
LOWER_LIP_INNER = 14  # inner lower lip, centre
RIGHT_EYE_UPPER_LID = 159  # centre of the right upper eyelid
RIGHT_EYE_LOWER_LID = 145
LEFT_EYE_UPPER_LID = 386
LEFT_EYE_LOWER_LID = 374
RIGHT_BROW_CENTER = 105
LEFT_BROW_CENTER = 334
RIGHT_FACE_EDGE = 234  # widest contour point on the subject's right (image left)
LEFT_FACE_EDGE = 454
FOREHEAD_TOP = 10

# Full eye contours (16 points each, mesh order: lower lid outer->inner, upper lid outer->inner).
RIGHT_EYE = np.array([33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173], dtype=np.int64)
LEFT_EYE = np.array([263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398], dtype=np.int64)

# Positions of the eye centres / key points inside the 68-point layout.
IBUG_RIGHT_EYE = np.arange(36, 42)
IBUG_LEFT_EYE = np.arange(42, 48)
IBUG_RIGHT_EYE_OUTER = 36
IBUG_RIGHT_EYE_INNER = 39
IBUG_LEFT_EYE_INNER = 42
IBUG_LEFT_EYE_OUTER = 45
IBUG_MOUTH_RIGHT = 48
IBUG_MOUTH_LEFT = 54
IBUG_NOSE_TIP = 30
IBUG_CHIN = 8
IBUG_RIGHT_BROW = np.arange(17, 22)
IBUG_LEFT_BROW = np.arange(22, 27)

IBUG_REGIONS: dict[str, np.ndarray] = {
    Region.JAW: np.arange(0, 17),
    Region.BROWS: np.arange(17, 27),
    Region.NOSE: np.arange(27, 36),
    Region.EYES: np.arange(36, 48),
    Region.MOUTH: np.arange(48, 68),
}

# Positions inside the 78-point "face" set (the 68 subset, then the 10 iris points).
NUM_FACE_POINTS = NUM_IBUG + len(IRISES)
FACE_RIGHT_IRIS = np.arange(NUM_IBUG, NUM_IBUG + 5)  # centre first, as in the mesh
FACE_LEFT_IRIS = np.arange(NUM_IBUG + 5, NUM_FACE_POINTS)
FACE_REGIONS: dict[str, np.ndarray] = {
    Region.FACE: np.arange(NUM_FACE_POINTS),
    **IBUG_REGIONS,
    Region.IRISES: np.arange(NUM_IBUG, NUM_FACE_POINTS),
}
# One eye each in the face set: its six lid points (iBUG order) and its iris. Not in FACE_REGIONS, whose keys are
# the per-region landmark effects the CluDistiller measures and saves.
FACE_EYE_LIDS: dict[str, np.ndarray] = {Region.EYE_RIGHT: IBUG_RIGHT_EYE, Region.EYE_LEFT: IBUG_LEFT_EYE}
FACE_EYE_IRISES: dict[str, np.ndarray] = {Region.EYE_RIGHT: FACE_RIGHT_IRIS, Region.EYE_LEFT: FACE_LEFT_IRIS}

# Indices into the 478 layout.
REGIONS: dict[str, np.ndarray] = {
    Region.FACE: np.concatenate([IBUG68, IRISES]),
    Region.JAW: IBUG68[IBUG_REGIONS[Region.JAW]],
    Region.BROWS: IBUG68[IBUG_REGIONS[Region.BROWS]],
    Region.EYES: np.concatenate([RIGHT_EYE, LEFT_EYE]),
    Region.IRISES: IRISES,
    Region.NOSE: IBUG68[IBUG_REGIONS[Region.NOSE]],
    Region.MOUTH: IBUG68[IBUG_REGIONS[Region.MOUTH]],
}
FACE = REGIONS[Region.FACE]

# The region groups (without the all-points "face" group) in a fixed order, for per-region heatmaps and controls.
GROUP_NAMES: tuple[str, ...] = (Region.JAW, Region.BROWS, Region.EYES, Region.IRISES, Region.NOSE, Region.MOUTH)

# Points that move little with expression, for similarity/affine fits that must follow the head only: eye corners,
# the nose (tip, bridge), the forehead midline (10, 151, 9 and the bridge top 6) and the contour at the temples and
# cheeks. The order is part of the fits' arithmetic: keep it.
EXPRESSION_STABLE = np.array([
    RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER, NOSE_TIP, IBUG68[30], 6, NOSE_BRIDGE,
    IBUG68[28], IBUG68[29], FOREHEAD_TOP, 151, 9, IBUG68[0], IBUG68[16], RIGHT_FACE_EDGE, LEFT_FACE_EDGE,
], dtype=np.int64)

# iBUG-68 left/right mirror permutation: flipped[i] = points[IBUG68_MIRROR[i]] after negating x.
# fmt: off
IBUG68_MIRROR = np.array(
    list(range(16, -1, -1))                                  # jaw
    + list(range(26, 16, -1))                                # brows
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]                    # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]        # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]        # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65],                       # inner lips
    dtype=np.int64,
)
# fmt: on


def to_ibug68(points):
    """The 68-point iBUG view of a landmark array.

    ``points``: ``[..., 478, 2]`` (mediapipe layout), ``[..., 78, 2]`` (the face set) or ``[..., 68, 2]`` (already
    iBUG, returned unchanged), numpy or torch. Returns ``[..., 68, 2]`` of the same type.
    """
    k = points.shape[-2]
    if k == NUM_IBUG:
        return points
    if k == NUM_POINTS:
        idx = IBUG68
    elif k == NUM_FACE_POINTS:
        idx = np.arange(NUM_IBUG)
    else:
        raise ValueError(f"to_ibug68 expects 478, 78 or 68 points, got {k} (shape {tuple(points.shape)})")
    if isinstance(points, np.ndarray):
        return points[..., idx, :]
    import torch

    return points[..., torch.as_tensor(idx, device=points.device), :]


def to_face(points):
    """The 78-point face set (iBUG-68 subset + 10 iris points) of a ``[..., 478, 2]`` array (numpy or torch)."""
    k = points.shape[-2]
    if k == NUM_FACE_POINTS:
        return points
    if k != NUM_POINTS:
        raise ValueError(f"to_face expects 478 (or 78) points, got {k}")
    if isinstance(points, np.ndarray):
        return points[..., FACE, :]
    import torch

    return points[..., torch.as_tensor(FACE, device=points.device), :]


def region_groups(num_points: int) -> dict[str, np.ndarray]:
    """Region groups (``GROUP_NAMES`` order) as indices into an array of ``num_points`` = 478, 78 or 68 points.

    With 68 points the "irises" group is absent (iBUG has no irises).
    """
    if num_points == NUM_POINTS:
        table = REGIONS
    elif num_points == NUM_FACE_POINTS:
        table = FACE_REGIONS
    elif num_points == NUM_IBUG:
        table = IBUG_REGIONS
    else:
        raise ValueError(f"no region table for {num_points} points (expected 478, 78 or 68)")
    return {name: table[name] for name in GROUP_NAMES if name in table}


def eye_centers(points):
    """Subject's (right, left) eye centres ``([..., 2], [..., 2])`` from 478, 78 or 68 points (numpy or torch).

    With irises (478 or 78 points) these are the iris centres; with 68 points the mean of each eye's six points.
    """
    k = points.shape[-2]
    if k == NUM_POINTS:
        return points[..., RIGHT_IRIS_CENTER, :], points[..., LEFT_IRIS_CENTER, :]
    if k == NUM_FACE_POINTS:
        return points[..., NUM_IBUG, :], points[..., NUM_IBUG + 5, :]
    p = to_ibug68(points)
    return p[..., 36:42, :].mean(-2), p[..., 42:48, :].mean(-2)
