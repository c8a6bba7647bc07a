"""Controls panel: camera, calibration, motion settings, output (record, virtual camera) and fine-tuning."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from engine.animate.animator import REGION_NAMES as REGIONS


def _camera_indices() -> list[str]:
    """Device indices to offer: the /dev/video* nodes on Linux, else 0..2."""
    import glob
    import re
    import sys

    if sys.platform.startswith("linux"):
        found = sorted({int(m.group(1)) for p in glob.glob("/dev/video*") if (m := re.search(r"(\d+)$", p))})
        return [str(i) for i in found] or ["0"]
    return ["0", "1", "2"]


def _slider(lo: int, hi: int, value: int, tip: str) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(lo, hi)
    s.setValue(value)
    s.setToolTip(tip)
    return s


class ControlsPanel(QWidget):
    """All live controls; emits intent signals, knows nothing about threads or models."""

    camera_toggled = Signal(bool)  # start (True) / stop (False)
    browse_requested = Signal()
    calibrate_requested = Signal()
    auto_calibrate_requested = Signal()
    config_changed = Signal(dict)  # AnimatorConfig fields that changed
    overlay_toggled = Signal(bool)
    record_toggled = Signal(bool)
    virtualcam_toggled = Signal(bool)
    finetune_requested = Signal()
    finetune_cancel = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addWidget(self._camera_group())
        layout.addWidget(self._calibration_group())
        layout.addWidget(self._motion_group())
        layout.addWidget(self._output_group())
        layout.addWidget(self._finetune_group())
        layout.setContentsMargins(0, 0, 0, 0)

    # -- groups ---------------------------------------------------------------------------------------------------
    def _camera_group(self) -> QGroupBox:
        box = QGroupBox("Camera")
        self.camera = QComboBox()
        self.camera.setEditable(True)
        self.camera.addItems(_camera_indices())
        self.camera.setToolTip("Camera device index, or the path of a video file used as the camera")
        self.camera.setMinimumContentsLength(12)
        browse = QPushButton("Video…")
        browse.setToolTip("Use a video file as the camera")
        browse.clicked.connect(self.browse_requested)
        self.start_button = QPushButton("Start")
        self.start_button.setCheckable(True)
        self.start_button.setToolTip("Start/stop the live session (Ctrl+Space)")
        self.start_button.toggled.connect(self._on_start)
        self.overlay = QCheckBox("Landmark overlay")
        self.overlay.setToolTip("Draw the detected driver landmarks (L)")
        self.overlay.toggled.connect(self.overlay_toggled)
        row = QHBoxLayout()
        row.addWidget(self.camera, 1)
        row.addWidget(browse)
        v = QVBoxLayout(box)
        v.addLayout(row)
        row2 = QHBoxLayout()
        row2.addWidget(self.start_button)
        row2.addWidget(self.overlay)
        v.addLayout(row2)
        return box

    def _calibration_group(self) -> QGroupBox:
        box = QGroupBox("Calibration")
        self.calibrate_button = QPushButton("Calibrate neutral  [C]")
        self.calibrate_button.setToolTip("Look straight with a neutral face and press C (or Space)")
        self.calibrate_button.clicked.connect(self.calibrate_requested)
        self.auto_button = QPushButton("Auto  [A]")
        self.auto_button.setToolTip("Pick the most neutral of the recent frames as the reference")
        self.auto_button.clicked.connect(self.auto_calibrate_requested)
        self.mode = QComboBox()
        self.mode.addItems(["relative", "absolute"])
        self.mode.setToolTip("relative: driver motion vs the calibrated neutral; absolute: driver shape (paper)")
        self.mode.currentTextChanged.connect(lambda m: self.config_changed.emit({"mode": m}))
        g = QGridLayout(box)
        g.addWidget(self.calibrate_button, 0, 0)
        g.addWidget(self.auto_button, 0, 1)
        g.addWidget(QLabel("Mode"), 1, 0)
        g.addWidget(self.mode, 1, 1)
        return box

    def _motion_group(self) -> QGroupBox:
        box = QGroupBox("Motion")
        self.smoothing = _slider(0, 100, 50, "One-Euro smoothing of the driver landmarks (0 = off)")
        self.pose_gain = _slider(0, 200, 100, "Head-pose gain (100% = as driven)")
        self.expr_gain = _slider(0, 200, 100, "Expression gain (100% = as driven)")
        self.smoothing.valueChanged.connect(lambda v: self.config_changed.emit({"smoothing": v / 100.0}))
        self.pose_gain.valueChanged.connect(lambda v: self.config_changed.emit({"pose_gain": v / 100.0}))
        self.expr_gain.valueChanged.connect(lambda v: self.config_changed.emit({"expr_gain": v / 100.0}))
        form = QFormLayout(box)
        for label, slider, unit in (
            ("Smoothing", self.smoothing, ""),
            ("Pose gain", self.pose_gain, "%"),
            ("Expression", self.expr_gain, "%"),
        ):
            value = QLabel()
            value.setMinimumWidth(36)
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            slider.valueChanged.connect(lambda v, lab=value, u=unit: lab.setText(f"{v}{u}"))
            value.setText(f"{slider.value()}{unit}")
            row = QHBoxLayout()
            row.addWidget(slider, 1)
            row.addWidget(value)
            form.addRow(label, row)
        self.region_boxes: dict[str, QCheckBox] = {}
        row = QHBoxLayout()
        for name in REGIONS:
            cb = QCheckBox(name)
            cb.setChecked(True)
            cb.setToolTip(f"Let the driver control the {name}")
            cb.toggled.connect(lambda _on: self.config_changed.emit({"regions": self.regions()}))
            self.region_boxes[name] = cb
            row.addWidget(cb)
        form.addRow("Regions", row)
        return box

    def _output_group(self) -> QGroupBox:
        box = QGroupBox("Output")
        self.record_button = QPushButton("● Record")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Record the animated output to H.264 mp4 (R)")
        self.record_button.toggled.connect(self.record_toggled)
        self.record_label = QLabel("not recording")
        self.record_label.setWordWrap(True)
        self.virtualcam = QCheckBox("Virtual camera")
        self.virtualcam.setToolTip("Send the output to a system virtual camera (v4l2loopback / OBS Virtual Camera)")
        self.virtualcam.toggled.connect(self.virtualcam_toggled)
        g = QGridLayout(box)
        g.addWidget(self.record_button, 0, 0)
        g.addWidget(self.virtualcam, 0, 1)
        g.addWidget(self.record_label, 1, 0, 1, 2)
        return box

    def _finetune_group(self) -> QGroupBox:
        box = QGroupBox("Fine-tune")
        self.finetune_button = QPushButton("Fine-tune on this source")
        self.finetune_button.setToolTip("Adapt the FAN to the current source in the background (kept per source)")
        self.finetune_button.clicked.connect(self.finetune_requested)
        self.finetune_progress = QProgressBar()
        self.finetune_progress.setRange(0, 1000)
        self.finetune_cancel_button = QPushButton("Cancel")
        self.finetune_cancel_button.clicked.connect(self.finetune_cancel)
        self.finetune_label = QLabel("using the bundle's FAN")
        self.finetune_label.setWordWrap(True)
        v = QVBoxLayout(box)
        v.addWidget(self.finetune_button)
        row = QHBoxLayout()
        row.addWidget(self.finetune_progress, 1)
        row.addWidget(self.finetune_cancel_button)
        v.addLayout(row)
        v.addWidget(self.finetune_label)
        self.set_finetune_busy(None)
        return box

    # -- state -----------------------------------------------------------------------------------------------------
    def _on_start(self, on: bool) -> None:
        self.start_button.setText("Stop" if on else "Start")
        self.camera.setEnabled(not on)
        self.camera_toggled.emit(on)

    def regions(self) -> dict[str, bool]:
        """Region toggles as AnimatorConfig.regions."""
        return {name: cb.isChecked() for name, cb in self.region_boxes.items()}

    def camera_text(self) -> str:
        """The camera field (device index or video path)."""
        return self.camera.currentText().strip()

    def set_camera_text(self, text: str) -> None:
        """Put a device index or video path into the camera field."""
        if self.camera.findText(text) < 0:
            self.camera.addItem(text)
        self.camera.setCurrentText(text)

    def set_finetune_busy(self, fraction: float | None) -> None:
        """Show fine-tuning progress (None: idle)."""
        busy = fraction is not None
        self.finetune_progress.setVisible(busy)
        self.finetune_cancel_button.setVisible(busy)
        self.finetune_button.setEnabled(not busy)
        if busy:
            self.finetune_progress.setValue(int(round(fraction * 1000)))

    def values(self) -> dict[str, Any]:
        """Everything worth remembering between runs."""
        return {
            "camera": self.camera_text(),
            "mode": self.mode.currentText(),
            "smoothing": self.smoothing.value() / 100.0,
            "pose_gain": self.pose_gain.value() / 100.0,
            "expr_gain": self.expr_gain.value() / 100.0,
            "regions": self.regions(),
            "overlay": self.overlay.isChecked(),
        }

    def set_values(self, values: dict[str, Any]) -> None:
        """Restore :meth:`values` (unknown or missing keys are ignored)."""
        if "camera" in values and values["camera"]:
            self.set_camera_text(str(values["camera"]))
        if values.get("mode") in ("relative", "absolute"):
            self.mode.setCurrentText(values["mode"])
        for key, slider in (("smoothing", self.smoothing), ("pose_gain", self.pose_gain),
                            ("expr_gain", self.expr_gain)):
            if key in values:
                slider.setValue(int(round(float(values[key]) * 100)))
        for name, on in dict(values.get("regions") or {}).items():
            if name in self.region_boxes:
                self.region_boxes[name].setChecked(bool(on))
        if "overlay" in values:
            self.overlay.setChecked(bool(values["overlay"]))
