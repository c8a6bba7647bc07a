"""Live view: the animated output large, the driver camera as a small picture-in-picture."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize
from PySide6.QtWidgets import QWidget

from d2a_desktop.widgets.frame_view import FrameView


class LiveView(FrameView):
    """The output fills the widget; the driver (with optional landmarks) sits in the bottom-right corner."""

    PIP_FRACTION = 0.26  # driver inset width relative to the view

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("loading the model…", QSize(480, 360), parent)
        self.driver = FrameView("camera off", QSize(96, 72), self)
        self.driver.setToolTip("Driver camera")
        self.driver.setStyleSheet("border: 1px solid #555;")

    def set_output(self, frame: np.ndarray | None) -> None:
        """Show the animated output (uint8 RGB [H, W, 3])."""
        self.set_frame(frame)

    def set_driver(self, frame: np.ndarray | None, points: np.ndarray | None) -> None:
        """Show the driver frame and its landmarks (drawn when ``driver.overlay`` is on)."""
        self.driver.set_frame(frame, points)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        w = max(96, int(self.width() * self.PIP_FRACTION))
        h = int(w * 3 / 4)
        margin = 10
        self.driver.setGeometry(self.width() - w - margin, self.height() - h - margin, w, h)
