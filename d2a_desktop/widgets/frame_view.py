"""A widget that paints the newest RGB frame scaled to fit, with an optional landmark overlay."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


def to_qimage(frame: np.ndarray) -> QImage:
    """uint8 RGB [H, W, 3] -> an owning QImage (the numpy buffer may be reused afterwards)."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected uint8 RGB [H, W, 3], got {frame.dtype} {frame.shape}")
    frame = np.ascontiguousarray(frame)
    h, w = frame.shape[:2]
    return QImage(frame.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class FrameView(QWidget):
    """Shows one frame keeping its aspect ratio; draws landmarks (pixel coords of the frame) on top if enabled."""

    def __init__(self, placeholder: str = "", min_size: QSize | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._points: np.ndarray | None = None
        self.placeholder = placeholder
        self.overlay = False
        self.setMinimumSize(min_size or QSize(160, 120))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def set_frame(self, frame: np.ndarray | None, points: np.ndarray | None = None) -> None:
        """Show ``frame`` (uint8 RGB [H, W, 3]) and optionally its landmarks (float [K, 2] pixels)."""
        self._image = None if frame is None else to_qimage(frame)
        self._points = points
        self.update()

    def has_frame(self) -> bool:
        """True once a frame is shown."""
        return self._image is not None

    def _target(self) -> QRectF:
        assert self._image is not None
        iw, ih = self._image.width(), self._image.height()
        scale = min(self.width() / iw, self.height() / ih)
        w, h = iw * scale, ih * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(24, 26, 30))
        if self._image is None:
            p.setPen(QColor(150, 155, 165))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            p.end()
            return
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        target = self._target()
        p.drawImage(target, self._image)
        if self.overlay and self._points is not None and len(self._points):
            sx = target.width() / self._image.width()
            sy = target.height() / self._image.height()
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.setPen(QPen(QColor(80, 230, 140), 1.6))
            for x, y in self._points[:, :2]:
                p.drawPoint(QPointF(target.x() + x * sx, target.y() + y * sy))
        p.end()
