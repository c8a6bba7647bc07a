"""Live view: the animated output large, the driver camera as a small picture-in-picture."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import QWidget

from d2a_desktop.widgets.frame_view import FrameView


class LiveView(FrameView):
    """The output fills the widget; the driver (with optional landmarks) sits in the bottom-right corner."""

    PIP_FRACTION = 0.26  # driver inset width relative to the view

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("loading the model…", QSize(480, 360), parent)
        self.driver = FrameView("camera off", QSize(96, 72), self)
        self.driver.setToolTip("Driver camera")
        self.hud = ""  # top-left caption (resolution, fps)
        self.recording = False  # draws a red REC badge

    def set_output(self, frame: np.ndarray | None) -> None:
        """Show the animated output (uint8 RGB [H, W, 3])."""
        self.set_frame(frame)

    def set_driver(self, frame: np.ndarray | None, points: np.ndarray | None) -> None:
        """Show the driver frame and its landmarks (drawn when ``driver.overlay`` is on)."""
        self.driver.set_frame(frame, points)

    def set_hud(self, text: str, recording: bool) -> None:
        """Caption and REC badge drawn over the output."""
        if (text, recording) != (self.hud, self.recording):
            self.hud, self.recording = text, recording
            self.update()

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if not self.has_frame():
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 0.95)
        font.setBold(True)
        p.setFont(font)
        if self.hud:
            box = QRectF(10, 10, p.fontMetrics().horizontalAdvance(self.hud) + 16, 22)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(0, 0, 0, 150))
            p.drawRoundedRect(box, 4, 4)
            p.setPen(QColor(235, 238, 242))
            p.drawText(box, Qt.AlignmentFlag.AlignCenter, self.hud)
        if self.recording:
            box = QRectF(self.width() - 74, 10, 64, 22)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(200, 30, 30, 220))
            p.drawRoundedRect(box, 4, 4)
            p.setPen(QColor(255, 255, 255))
            p.drawText(box, Qt.AlignmentFlag.AlignCenter, "● REC")
        p.end()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        w = max(96, int(self.width() * self.PIP_FRACTION))
        h = int(w * 3 / 4)
        margin = 10
        self.driver.setGeometry(self.width() - w - margin, self.height() - h - margin, w, h)
