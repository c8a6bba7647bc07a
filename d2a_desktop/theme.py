"""A dark Fusion palette: frames and faces read better on a dark surround."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = QColor(64, 156, 255)


def apply_dark_theme(app: QApplication) -> None:
    """Switch ``app`` to the Fusion style with a dark palette and a blue accent."""
    app.setStyle("Fusion")
    p = QPalette()
    base, window, text = QColor(30, 32, 36), QColor(42, 45, 50), QColor(222, 224, 228)
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: window,
        QPalette.ColorRole.ToolTipBase: base,
        QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: QColor(52, 56, 62),
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.BrightText: QColor(255, 90, 90),
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.Link: ACCENT,
        QPalette.ColorRole.PlaceholderText: QColor(140, 144, 150),
    }
    for role, color in roles.items():
        p.setColor(role, color)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 124, 130))
    app.setPalette(p)
    app.setStyleSheet(
        "QGroupBox { font-weight: bold; border: 1px solid #4a4f57; border-radius: 4px; margin-top: 10px;"
        " padding-top: 4px; }"
        "QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 4px; }"
        "QPushButton:checked { background-color: #b03a3a; color: white; }"
        "QStatusBar QLabel { color: #c8cbd0; }"
    )
