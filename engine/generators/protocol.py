"""The contracts the rest of the engine codes against: ``Generator`` (every generator) and ``GroundTruth`` (a
generator that also knows the true parameters of what it renders: only FaceWorld).

``isinstance(g, Generator)`` checks that the members exist (not their signatures), on every Python version.
Stages that measure against the ground truth call ``require_ground_truth`` first, so a StyleGAN2 checkpoint fails
with a message naming the stage instead of an AttributeError deep inside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor


class _HasMembers(type(Protocol)):  # type: ignore[misc]
    """isinstance by ``hasattr`` on every protocol member.

    From Python 3.12 on, typing's own check reads attributes statically, which misses what an ``nn.Module`` keeps in
    its buffers and submodules (``w_avg``, StyleGAN2's ``mapping`` and ``synthesis``): no generator would pass.
    """

    def __instancecheck__(cls, instance: object) -> bool:
        if Protocol not in cls.__bases__:
            return super().__instancecheck__(instance)
        return all(hasattr(instance, name) for name in _members(cls))


def _members(cls: type) -> set[str]:
    names: set[str] = set()
    for base in cls.__mro__:
        if Protocol in base.__bases__:
            names.update(base.__dict__.get("__annotations__", {}))
            names.update(k for k, v in base.__dict__.items()
                         if not k.startswith("_") and (callable(v) or isinstance(v, property)))
    return names


@runtime_checkable
class Generator(Protocol, metaclass=_HasMembers):
    """z -> ws -> image, with StyleGAN2's names and shapes.

    ``mapping``: z [N, z_dim] (+ label c [N, c_dim] or None) -> ws [N, num_ws, w_dim], truncated towards ``w_avg``
    by ``truncation_psi`` on the layers below ``truncation_cutoff`` (all when None).
    ``synthesis``: ws [N, num_ws, w_dim] -> images [N, 3, img_resolution, img_resolution], float, about [-1, 1].
    """

    z_dim: int
    w_dim: int
    c_dim: int
    num_ws: int
    img_resolution: int

    @property
    def w_avg(self) -> Tensor:
        """The truncation centre [w_dim]."""
        ...

    def mapping(
        self, z: Tensor, c: Tensor | None = None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None
    ) -> Tensor: ...

    def synthesis(self, ws: Tensor, noise_mode: str = "const") -> Tensor: ...


@runtime_checkable
class GroundTruth(Generator, Protocol):
    """A generator whose latent code decodes to named, known face parameters (FaceWorld).

    Scores are linear in ws: ``scores(ws) = einsum("nlw,plw->np", ws - w_avg, proj) / score_std`` (order
    ``PARAM_NAMES``), ~N(0, 1) under z ~ N(0, I); ``decode`` squashes them into the parameters' units.
    """

    PARAM_NAMES: tuple[str, ...]  # every parameter, the column order of ``scores`` and ``proj``
    POSE_PARAMS: tuple[str, ...]
    EXPRESSION_PARAMS: tuple[str, ...]
    ACTION_PARAMS: tuple[str, ...]  # pose + expression
    IDENTITY_GEOMETRY_PARAMS: tuple[str, ...]
    APPEARANCE_PARAMS: tuple[str, ...]  # colour, texture and lighting (layers >= 8)
    IDENTITY_PARAMS: tuple[str, ...]  # identity geometry + appearance
    proj: Tensor  # [P, num_ws, w_dim] score read-out
    score_std: Tensor  # [P]

    def decode(self, ws: Tensor) -> dict[str, Tensor]:
        """ws [N, num_ws, w_dim] -> {parameter name: [N]}."""
        ...

    def scores(self, ws: Tensor) -> Tensor:
        """ws [N, num_ws, w_dim] -> standardised scores [N, P]."""
        ...

    def keypoints(self, ws: Tensor) -> dict[str, Tensor]:
        """ws [N, num_ws, w_dim] -> analytic pixel positions {name: [N, 2]}."""
        ...


def require_ground_truth(generator: Any, what: str) -> GroundTruth:
    """``generator`` as a ``GroundTruth``; a TypeError naming ``what`` (the stage) when it has none."""
    if not isinstance(generator, GroundTruth):
        raise TypeError(f"{what} needs a generator with ground truth (FaceWorld); {type(generator).__name__} has none")
    return generator
