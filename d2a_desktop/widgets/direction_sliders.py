"""Sliders along the bundle's direction bank (manual pose/expression offsets), grouped by region, with reset."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from engine.latent.bank import Direction, as_directions

SCALE = 100  # slider units per 1.0 of offset
RANGE = 2.0  # offsets in [-RANGE, RANGE] times each bank direction (1.0 = the direction as discovered)


class DirectionSliders(QWidget):
    """One slider per bank direction; emits ``slider_changed(index, value)`` and ``reset_requested``."""

    slider_changed = Signal(int, float)
    reset_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sliders: dict[int, QSlider] = {}
        self._inner = QWidget()
        self._form = QVBoxLayout(self._inner)
        self._form.addWidget(QLabel("loading the direction bank…"))
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self._inner)
        reset = QPushButton("Reset sliders")
        reset.setToolTip("All offsets back to zero (Ctrl+R)")
        reset.clicked.connect(self.reset)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(reset)

    def set_directions(self, info: Iterable[Direction | Mapping[str, Any]]) -> None:
        """Build the sliders from ``bundle.directions_info`` (one record per direction: group, region, ...)."""
        while self._form.count():
            item = self._form.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.sliders.clear()
        groups: dict[str, list[tuple[int, Direction]]] = {}
        for i, d in enumerate(as_directions(info)):
            key = "pose" if d.group == "pose" else str(d.region or "expression")
            groups.setdefault(key, []).append((i, d))
        for key in sorted(groups, key=lambda k: (k != "pose", k)):
            box = QGroupBox(key)
            form = QFormLayout(box)
            for i, d in groups[key]:
                s = QSlider(Qt.Orientation.Horizontal)
                s.setRange(int(-RANGE * SCALE), int(RANGE * SCALE))
                s.setValue(0)
                s.setToolTip(_describe(i, d))
                s.valueChanged.connect(lambda v, idx=i: self.slider_changed.emit(idx, v / SCALE))
                self.sliders[i] = s
                form.addRow(_short_name(i, d), s)
            self._form.addWidget(box)
        if not groups:
            self._form.addWidget(QLabel("this bundle has no direction bank"))
        self._form.addStretch(1)

    def reset(self) -> None:
        """Zero every slider (without emitting per-slider changes) and ask for an engine reset."""
        for s in self.sliders.values():
            s.blockSignals(True)
            s.setValue(0)
            s.blockSignals(False)
        self.reset_requested.emit()


def _short_name(i: int, d: Direction) -> str:
    """``#07 mouth``: the index and the landmark region the direction moves most (from the bank's effect map)."""
    label = d.extra.get("label") or d.extra.get("name")
    if not label:
        effect = d.effect
        if isinstance(effect, dict):
            parts = {k: float(v) for k, v in effect.items() if k not in ("face", "expression") and v is not None}
            label = max(parts, key=parts.get) if parts else ""
    return f"#{i:02d} {label}".strip()


def _describe(i: int, d: Direction) -> str:
    keys = ("group", "region", "label", "k", "origin", "effect")
    parts = [f"{k}: {d[k]}" for k in keys if k in d and not isinstance(d[k], (dict, list))]
    return f"direction {i}" + ("\n" + "\n".join(parts) if parts else "")
