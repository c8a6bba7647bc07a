"""Virtual camera output through pyvirtualcam, failing with a clear message instead of crashing."""

from __future__ import annotations

import logging
import sys
from typing import Any

import numpy as np

from d2a_desktop.config import VirtualCameraConfig

log = logging.getLogger(__name__)


class VirtualCameraUnavailable(RuntimeError):
    """No virtual camera device on this system (message says what to install)."""


def _install_hint() -> str:
    if sys.platform.startswith("linux"):
        return "install and load v4l2loopback (sudo modprobe v4l2loopback exclusive_caps=1)"
    if sys.platform == "darwin":
        return "install OBS Studio and start its Virtual Camera once"
    return "install OBS Studio (it provides the OBS Virtual Camera)"


class VirtualCamera:
    """Sends RGB frames to a system virtual camera; open lazily at the first frame size."""

    def __init__(self, config: VirtualCameraConfig | None = None) -> None:
        self.config = config or VirtualCameraConfig()
        self._cam: Any = None
        self.device: str = ""

    @property
    def is_open(self) -> bool:
        """True while a device is open."""
        return self._cam is not None

    def open(self, width: int, height: int) -> str:
        """Open the device for ``width``×``height`` frames; returns its name.

        Raises :class:`VirtualCameraUnavailable` with an actionable message when the OS lacks a device.
        """
        try:
            import pyvirtualcam
        except ImportError as exc:
            raise VirtualCameraUnavailable(f"pyvirtualcam is not installed ({exc})") from exc
        try:
            self._cam = pyvirtualcam.Camera(
                width=width, height=height, fps=self.config.fps, backend=self.config.backend
            )
        except Exception as exc:  # pyvirtualcam raises RuntimeError/ValueError with backend details
            self._cam = None
            raise VirtualCameraUnavailable(f"virtual camera unavailable: {_install_hint()} ({exc})") from exc
        self.device = str(getattr(self._cam, "device", "virtual camera"))
        return self.device

    def send(self, frame: np.ndarray) -> None:
        """Send one uint8 RGB frame [H, W, 3] (resized to the device size if needed)."""
        if self._cam is None:
            return
        h, w = frame.shape[:2]
        if (w, h) != (self._cam.width, self._cam.height):
            import cv2

            frame = cv2.resize(frame, (self._cam.width, self._cam.height), interpolation=cv2.INTER_AREA)
        self._cam.send(np.ascontiguousarray(frame))

    def close(self) -> None:
        """Close the device (idempotent)."""
        if self._cam is not None:
            try:
                self._cam.close()
            except Exception:  # closing a half-broken device must never take the app down
                log.warning("virtual camera close failed", exc_info=True)
            self._cam = None
