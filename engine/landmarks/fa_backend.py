"""face-alignment backend (optional): S3FD face detector + 2D-FAN, 68 iBUG points (github.com/1adrianb/face-alignment).

The package downloads its weights from the internet on first use. This backend never does: it checks for the weight
files first and, when they are missing, fails at once with ``BackendUnavailable`` naming the files, their download
addresses and the folder to put them in (``<torch hub dir>/checkpoints``, i.e. ``$TORCH_HOME/hub/checkpoints``,
by default ``~/.cache/torch/hub/checkpoints``). Pass ``allow_download=True`` to let the package fetch them itself.

Install: ``pip install 'd2a-desktop[face-alignment]'``. Confidence: the mean of the per-point heatmap maxima.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import sys
from pathlib import Path

import numpy as np

from engine.landmarks.base import BackendUnavailable, DetectorConfig, LandmarkDetector
from engine.landmarks.schema import NUM_IBUG

INSTALL_HINT = "pip install 'd2a-desktop[face-alignment]'"
# File names and addresses used by face-alignment 1.4-1.5 (the package's own tables win when it is importable).
WEIGHTS = {
    "2DFAN4-11f355bf06.pth.tar": "https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
    "s3fd-619a316812.pth": "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth",
}


def checkpoint_dir() -> Path:
    """Where face-alignment looks for its weights: ``<torch.hub.get_dir()>/checkpoints``.

    Computed like torch does (``$TORCH_HOME/hub``, else ``$XDG_CACHE_HOME/torch/hub``, else ``~/.cache/torch/hub``)
    without importing torch; when torch is already imported, its ``torch.hub.get_dir()`` (which honours
    ``torch.hub.set_dir``) is used.
    """
    if "torch" in sys.modules:
        import torch.hub

        return Path(torch.hub.get_dir()) / "checkpoints"
    if os.environ.get("TORCH_HOME"):
        home = Path(os.environ["TORCH_HOME"])
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        home = Path(cache) / "torch"
    return home.expanduser() / "hub" / "checkpoints"


def required_weights() -> dict[str, str]:
    """Weight files (name -> download address) the installed face-alignment needs for 2D-FAN + S3FD.

    Read from the package's source files (without importing it, which would pull torch and numba); falls back to
    ``WEIGHTS`` when the package is absent or its tables cannot be found.
    """
    spec = importlib.util.find_spec("face_alignment")
    if spec is None or not spec.origin:
        return dict(WEIGHTS)
    root = Path(spec.origin).parent
    found: dict[str, str] = {}
    for rel, pattern in (("api.py", r"https?://[^'\"]*2DFAN4[^'\"]*"), ("detection/sfd/sfd_detector.py", r"https?://[^'\"]*s3fd[^'\"]*")):
        try:
            match = re.search(pattern, (root / rel).read_text(encoding="utf-8"))
        except OSError:
            match = None
        if match:
            url = match.group(0)
            found[url.rsplit("/", 1)[-1]] = url
    return found if len(found) == 2 else dict(WEIGHTS)


def missing_weights(folder: Path | None = None, weights: dict[str, str] | None = None) -> dict[str, str]:
    """The weight files (name -> download address) absent from ``folder`` (default: ``checkpoint_dir()``)."""
    folder = checkpoint_dir() if folder is None else Path(folder)
    weights = required_weights() if weights is None else weights
    return {name: url for name, url in weights.items() if not (folder / name).is_file()}


class FaceAlignmentDetector(LandmarkDetector):
    """68-point 2D-FAN landmarks. Options: ``device`` ("cpu"), ``allow_download`` (False)."""

    num_points = NUM_IBUG
    name = "face-alignment"

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__(config)
        problems = []
        if importlib.util.find_spec("face_alignment") is None:
            problems.append(f"the face_alignment package is not installed ({INSTALL_HINT})")
        missing = {} if config.extra.get("allow_download") else missing_weights()
        if missing:
            files = "; ".join(f"{name} from {url}" for name, url in missing.items())
            problems.append(
                f"its weights are missing and will not be downloaded here: put {files} into {checkpoint_dir()} "
                "(set TORCH_HOME to use another cache), or pass allow_download=True on a machine with internet access"
            )
        if problems:
            raise BackendUnavailable("face-alignment backend unavailable: " + "; and ".join(problems) + ".")
        try:
            import face_alignment
        except ImportError as exc:  # e.g. a missing dependency such as numba
            raise BackendUnavailable(f"face-alignment backend: import failed ({exc}); {INSTALL_HINT}") from exc
        kwargs = {"device": config.extra.get("device", "cpu"), "flip_input": False, "face_detector": "sfd"}
        if "compile" in inspect.signature(face_alignment.FaceAlignment.__init__).parameters:
            kwargs["compile"] = False  # 1.5+: torch.compile would spend minutes on a CPU
        two_d = getattr(face_alignment.LandmarksType, "TWO_D", None) or face_alignment.LandmarksType._2D
        self._fa = face_alignment.FaceAlignment(two_d, **kwargs)

    def _detect_all(self, rgb: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
        # returns (landmarks, scores, boxes), with None entries when no face is found
        landmarks, scores, _ = self._fa.get_landmarks_from_image(rgb, return_landmark_score=True)
        if not landmarks:
            return [], []
        out, conf = [], []
        for pts, sc in zip(landmarks, scores):
            out.append(np.asarray(pts, dtype=np.float32)[:, :2])
            conf.append(float(np.mean(sc)))
        return out, conf
