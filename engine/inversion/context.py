"""What the phases of one inversion share: the generator, the target and its landmarks, the notes, the landmark
checkpoints, and the one place where a cancel request is checked and progress is reported."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.inversion.targets import RegionLoss
from engine.media import to_uint8

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from engine.inversion.config import InversionConfig

Progress = Callable[[int, int, float], None]


def requested(cancel: threading.Event | None) -> bool:
    """Whether the caller asked to stop."""
    return cancel is not None and cancel.is_set()


@dataclass
class Run:
    """One inversion in progress. ``total``: the progress units of the whole run (the optimisation steps, then
    every refinement round's polish iterations); ``halted``: a phase stopped early on a cancel request (the
    result is then the best code so far)."""

    generator: torch.nn.Module
    cfg: InversionConfig
    target: torch.Tensor
    w_avg: torch.Tensor
    total: int
    progress: Progress | None = None
    cancel: threading.Event | None = None
    detector: Any = None
    target_points: np.ndarray | None = None  # the target's mediapipe points [478, 2] (None: not detected)
    region: RegionLoss | None = None
    notes: list[str] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # the pixel-pyramid loss of every optimisation step
    nme_history: list[tuple[int, float]] = field(default_factory=list)  # (step, landmark NME) at every check
    best: tuple[float, float, Any] | None = None  # the best landmark checkpoint: (NME, pixel loss, ws)
    halted: bool = False

    @classmethod
    def open(cls, generator: torch.nn.Module, cfg: InversionConfig, target: torch.Tensor, total: int, landmarks: bool,
             progress: Progress | None, cancel: threading.Event | None) -> Run:
        """Freeze the generator, detect the target's landmarks (``landmarks``) and build the region loss on them."""
        for p in generator.parameters():
            p.requires_grad_(False)
        w_avg = generator.w_avg.detach().to(target.device).float()
        run = cls(generator, cfg, target, w_avg, total, progress, cancel)
        if landmarks:
            from engine.landmarks import create_detector

            run.detector = create_detector("mediapipe", video_mode=False)
            d = run.detector.detect(to_uint8(target)[0])
            if d.found:
                run.target_points = np.asarray(d.points, np.float32)
            else:
                run.notes.append("no face detected on the target: landmark selection disabled")
        if run.target_points is not None and cfg.region_weight > 0:
            run.region = RegionLoss(target, run.target_points, cfg.region_blurs, cfg.region_pad)
        return run

    def close(self) -> None:
        if self.detector is not None:
            self.detector.close()

    def stop_requested(self) -> bool:
        return requested(self.cancel)

    def report(self, step: int, loss: float) -> None:
        """Progress: ``step`` of ``total`` units done, the current data loss."""
        if self.progress is not None:
            self.progress(step, self.total, loss)

    def detect(self, ws: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Render ``ws`` [1, num_ws, w_dim] without gradient and detect its landmarks -> (image, detection)."""
        import torch

        with torch.no_grad():
            img = self.generator.synthesis(ws, noise_mode="const")
        return img, self.detector.detect(to_uint8(img)[0])

    def nme(self, detection: Any) -> float:
        """NME of a (found) detection's points to the target's."""
        from engine.landmarks.geometry import nme

        return nme(np.asarray(detection.points, np.float32), self.target_points)
