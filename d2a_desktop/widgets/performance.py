"""Performance panel: frame rate, drops and the rolling latency of every pipeline stage."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QProgressBar, QWidget


class PerformancePanel(QGroupBox):
    """One bar per stage (ms, scaled to the slowest stage) plus fps and frame counters."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Performance", parent)
        self._form = QFormLayout(self)
        self._fps = QLabel("—")
        self._frames = QLabel("—")
        self._form.addRow("Output rate", self._fps)
        self._form.addRow("Frames", self._frames)
        self._bars: dict[str, QProgressBar] = {}

    def update_stats(self, fps: float, processed: int, dropped: int, stages_ms: dict[str, float]) -> None:
        """Show the newest rolling numbers (``stages_ms``: mean ms per stage, including "total")."""
        self._fps.setText(f"{fps:.1f} fps")
        self._frames.setText(f"{processed} processed · {dropped} camera frames skipped")
        top = max([v for k, v in stages_ms.items() if k not in ("total", "latency")] or [1.0])
        for name, ms in stages_ms.items():
            bar = self._bars.get(name)
            if bar is None:
                bar = QProgressBar()
                bar.setRange(0, 1000)
                bar.setAlignment(Qt.AlignmentFlag.AlignCenter)
                bar.setMaximumHeight(16)
                self._bars[name] = bar
                self._form.addRow(name, bar)
            whole = name in ("total", "latency")
            bar.setValue(1000 if whole else int(1000 * min(ms / max(top, 1e-6), 1.0)))
            bar.setFormat(f"{ms:.1f} ms")
