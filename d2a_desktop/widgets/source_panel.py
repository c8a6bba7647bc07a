"""Source panel: the current portrait, open/drag-and-drop a portrait, a FaceWorld identity gallery, progress."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QIcon, QPixmap
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from d2a_desktop.widgets.frame_view import FrameView, to_qimage

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class SourcePanel(QGroupBox):
    """Shows the source being animated and lets the user choose another one.

    Emits ``image_chosen(path)`` for a portrait file (dialog or drop) and ``seed_chosen(seed)`` for a gallery
    identity; the window runs the (slow) inversion in the inference thread and reports progress back here.
    """

    image_chosen = Signal(str)
    seed_chosen = Signal(int)
    open_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Source", parent)
        self.setAcceptDrops(True)
        self.preview = FrameView("drop a portrait here", QSize(220, 220))
        self.preview.setMaximumHeight(260)
        self.preview.setToolTip("The portrait being animated (rendered by the generator). Drop an image to change it.")
        self.label = QLabel("—")
        self.label.setWordWrap(True)
        self.open_button = QPushButton("Open portrait…")
        self.open_button.setToolTip("Invert a portrait photo into the generator (Ctrl+O)")
        self.open_button.clicked.connect(self.open_requested)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        self.gallery = QListWidget()
        self.gallery.setViewMode(QListWidget.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(64, 64))
        self.gallery.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.gallery.setMovement(QListWidget.Movement.Static)
        self.gallery.setSpacing(3)
        self.gallery.setToolTip("FaceWorld identities (seeds): click to animate one")
        self.gallery.itemActivated.connect(self._pick)
        self.gallery.itemClicked.connect(self._pick)
        layout = QVBoxLayout(self)
        layout.addWidget(self.preview)
        layout.addWidget(self.label)
        layout.addWidget(self.open_button)
        layout.addLayout(row)
        layout.addWidget(QLabel("Identity gallery"))
        layout.addWidget(self.gallery, 1)
        self.set_busy(None)

    # -- state --------------------------------------------------------------------------------------------------------
    def set_source(self, image: np.ndarray | None, label: str) -> None:
        """Show the rendered source and its description."""
        self.preview.set_frame(image)
        self.label.setText(label)

    def set_busy(self, text: str | None, fraction: float = 0.0) -> None:
        """Show a running job with its progress (None hides the progress row)."""
        busy = text is not None
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.open_button.setEnabled(not busy)
        self.gallery.setEnabled(not busy)
        if busy:
            self.progress.setValue(int(round(fraction * 1000)))
            self.progress.setFormat(f"{text} %p%")

    def add_identity(self, seed: int, thumbnail: np.ndarray) -> None:
        """Append one gallery entry (thumbnail uint8 RGB [H, W, 3])."""
        item = QListWidgetItem(QIcon(QPixmap.fromImage(to_qimage(thumbnail))), f"seed {seed}")
        item.setData(Qt.ItemDataRole.UserRole, int(seed))
        self.gallery.addItem(item)

    def _pick(self, item: QListWidgetItem) -> None:
        self.seed_chosen.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    # -- drag and drop ----------------------------------------------------------------------------------------------
    @staticmethod
    def _dropped_image(event: QDragEnterEvent | QDropEvent) -> str | None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        for url in urls:
            path = url.toLocalFile()
            if path and Path(path).suffix.lower() in IMAGE_SUFFIXES:
                return path
        return None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_image(event) and self.open_button.isEnabled():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        path = self._dropped_image(event)
        if path:
            event.acceptProposedAction()
            self.image_chosen.emit(path)
