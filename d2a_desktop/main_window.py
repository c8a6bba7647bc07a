"""The main window: source panel | live view | controls, a status bar with FPS and per-stage latency.

The window owns a :class:`LiveSession` (threads) and only ever talks to workers through signals, thread-safe
``post``-ed commands and the newest-result slot, which a 16 ms timer pulls and paints.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from d2a_desktop import finetune_cache
from d2a_desktop.about import show_about
from d2a_desktop.config import CaptureConfig, InferenceConfig, RecordingConfig
from d2a_desktop.finetune_controller import FinetuneController
from d2a_desktop.session import LiveSession
from d2a_desktop.settings import AppSettings
from d2a_desktop.stats import RateMeter, StageMeter
from d2a_desktop.virtualcam import VirtualCamera, VirtualCameraUnavailable
from d2a_desktop.widgets.controls_panel import ControlsPanel
from d2a_desktop.widgets.direction_sliders import DirectionSliders
from d2a_desktop.widgets.live_view import LiveView
from d2a_desktop.widgets.performance import PerformancePanel
from d2a_desktop.widgets.source_panel import SourcePanel

log = logging.getLogger(__name__)

VIDEO_FILTER = "Videos (*.mp4 *.mov *.avi *.mkv *.webm);;All files (*)"
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.webp);;All files (*)"
GALLERY_SEEDS = tuple(range(12))
FINETUNE_STEPS = 300
ENGINE_KEYS = ("mode", "smoothing", "pose_gain", "expr_gain", "regions")  # controls that are AnimatorConfig fields


class MainWindow(QMainWindow):
    """D2A Desktop's window; see the module docstring."""

    status_changed = Signal(str)

    def __init__(
        self,
        settings: AppSettings,
        inference_config: InferenceConfig | None = None,
        initial_source: int | str | None = None,  # seed, image path, or None for the bundle's sample
        gallery: bool = True,  # render the identity gallery thumbnails in the background
    ) -> None:
        super().__init__()
        self.setWindowTitle("D2A Desktop — live portrait animation")
        self.settings = settings
        self.session = LiveSession(inference_config or InferenceConfig())
        self.virtualcam = VirtualCamera()
        self.info: dict[str, Any] = {}
        self.fps = RateMeter()
        self.stages = StageMeter()
        self.last_result: Any = None
        self._perf_t = 0.0
        self._seen = 0
        self.last_error = ""  # the model/inference error that stopped the live pipeline, if any
        self._source_key: str | None = None
        self._pending_key: str | None = None
        self._gallery = gallery
        self._build_ui()
        self._build_actions()
        self._wire_inference()
        self.controls.set_values(settings.controls())
        values = self.controls.values()  # the controls (restored settings) are the truth: push them to the engine
        self.session.inference.update_config(**{k: values[k] for k in ENGINE_KEYS})
        self._set_overlay(values["overlay"])
        geometry = settings.geometry()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1480, 900)
        self.timer = QTimer(self)
        self.timer.setInterval(16)
        self.timer.timeout.connect(self.pull_result)
        self.timer.start()
        self._set_initial_source(initial_source)
        self.session.start()

    # -- layout ----------------------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.source_panel = SourcePanel()
        self.live = LiveView()
        self.controls = ControlsPanel()
        self.sliders = DirectionSliders()
        self.performance = PerformancePanel()
        page = QWidget()
        column = QVBoxLayout(page)
        column.addWidget(self.controls)
        column.addWidget(self.performance)
        column.addStretch(1)
        tabs = QTabWidget()
        tabs.addTab(page, "Controls")
        tabs.addTab(self.sliders, "Directions")
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.source_panel)
        splitter.addWidget(self.live)
        splitter.addWidget(tabs)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setStretchFactor(2, 0)
        splitter.setSizes([270, 860, 350])
        self.setCentralWidget(splitter)
        self.status_label = QLabel("loading the model…")
        self.fps_label = QLabel("— fps")
        self.latency_label = QLabel("")
        self.rec_label = QLabel("")
        bar = self.statusBar()
        bar.addWidget(self.status_label, 1)
        for lab in (self.rec_label, self.latency_label, self.fps_label):
            lab.setContentsMargins(8, 0, 8, 0)
            bar.addPermanentWidget(lab)
        c = self.controls
        c.camera_toggled.connect(self.set_camera_running)
        c.browse_requested.connect(self.browse_video)
        c.calibrate_requested.connect(self.calibrate)
        # The inference worker lives in its own (busy) thread: never connect signals to its methods directly
        # (Qt would queue them to that thread's event loop, which never runs); call them from here instead.
        inf = self.session.inference
        c.auto_calibrate_requested.connect(lambda: inf.auto_calibrate())
        c.config_changed.connect(lambda changes: self.session.inference.update_config(**changes))
        c.overlay_toggled.connect(self._set_overlay)
        c.record_toggled.connect(self._on_record_toggled)
        c.virtualcam_toggled.connect(self.set_virtualcam)
        c.finetune_requested.connect(lambda: self.start_finetune())
        self.finetuner = FinetuneController(self.session, c, self.set_status)
        self.sliders.slider_changed.connect(lambda i, v: inf.set_slider(i, v))
        self.sliders.reset_requested.connect(lambda: inf.reset_sliders())
        sp = self.source_panel
        sp.open_requested.connect(self.open_portrait)
        sp.image_chosen.connect(self.load_portrait)
        sp.seed_chosen.connect(self.load_seed)
        sp.cancel_requested.connect(lambda: inf.cancel_job())

    def _build_actions(self) -> None:
        def action(menu: Any, text: str, keys: list[str], slot: Any, checkable: bool = False) -> QAction:
            a = QAction(text, self)
            a.setShortcuts([QKeySequence(k) for k in keys])
            a.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
            a.setCheckable(checkable)
            a.triggered.connect(slot)
            menu.addAction(a)
            return a

        mb = self.menuBar()
        f = mb.addMenu("&File")
        action(f, "Open portrait…", ["Ctrl+O"], self.open_portrait)
        action(f, "Use a video as the camera…", ["Ctrl+Shift+O"], self.browse_video)
        action(f, "Recording folder…", [], self.choose_record_folder)
        f.addSeparator()
        action(f, "Quit", ["Ctrl+Q"], self.close)
        live = mb.addMenu("&Live")
        action(live, "Start / stop", ["Ctrl+Space"], self.controls.start_button.toggle)
        action(live, "Calibrate neutral", ["C", "Space"], self.calibrate)
        action(live, "Auto-calibrate", ["A"], lambda: self.session.inference.auto_calibrate())
        action(live, "Record start/stop", ["R"], self.controls.record_button.toggle)
        action(live, "Virtual camera on/off", ["V"], self.controls.virtualcam.toggle)
        action(live, "Landmark overlay", ["L"], self.controls.overlay.toggle)
        action(live, "Reset sliders", ["Ctrl+R"], self.sliders.reset)
        h = mb.addMenu("&Help")
        action(h, "About D2A Desktop", ["F1"], lambda: show_about(self, self.info))

    def _wire_inference(self) -> None:
        inf = self.session.inference
        inf.ready.connect(self._on_ready)
        inf.message.connect(self.set_status)
        inf.errored.connect(self._on_inference_error)
        inf.face_changed.connect(lambda found: self.set_status("tracking" if found else "no face"))
        inf.source_ready.connect(self._on_source_ready)
        inf.job_progress.connect(lambda name, frac: self.source_panel.set_busy(name, frac))
        inf.job_done.connect(self._on_job_done)

    @property
    def has_source(self) -> bool:
        """True once the model is loaded and a source is being animated."""
        return self._source_key is not None

    # -- status ----------------------------------------------------------------------------------------------------
    def set_status(self, text: str) -> None:
        """Show ``text`` in the status line (and emit ``status_changed``)."""
        self.status_label.setText(text)
        self.status_changed.emit(text)

    def status_text(self) -> str:
        """The current status line."""
        return self.status_label.text()

    def _on_inference_error(self, message: str) -> None:
        self.last_error = message
        self.set_status(f"error: {message}")
        self.live.placeholder = f"the model could not run:\n{message}"
        self.live.update()

    # -- the GUI timer: newest result -> screen, virtual camera ----------------------------------------------------
    def pull_result(self) -> None:
        """Paint the newest result if there is one (called every 16 ms)."""
        result, counter = self.session.results.get()
        if result is None or counter == self._seen:
            self._update_recording_label()
            return
        self._seen = counter
        self.last_result = result
        self.live.set_output(result.output)
        if result.driver is not None:
            self.live.set_driver(result.driver, result.points)
            self.fps.tick(result.t)
            self.stages.add(result.stages_ms)
            self.fps_label.setText(f"{self.fps.fps:4.1f} fps · {result.dropped} dropped")
            self.latency_label.setText(self.stages.summary())
            if result.t - self._perf_t > 0.25:
                self._perf_t = result.t
                self.performance.update_stats(
                    self.fps.fps, self.session.inference.processed, result.dropped, self.stages.means()
                )
        h, w = result.output.shape[:2]
        live = f" · {self.fps.fps:.1f} fps" if self.session.capturing else ""
        self.live.set_hud(f"OUTPUT {w}×{h}{live}", self.session.recording)
        if self.virtualcam.is_open:
            try:
                self.virtualcam.send(result.output)
            except Exception as exc:  # a vanished device switches the output off, never the app
                self.controls.virtualcam.setChecked(False)
                self.set_status(f"virtual camera stopped: {exc}")
        self._update_recording_label()

    # -- model / sources -------------------------------------------------------------------------------------------
    def _on_ready(self, info: dict) -> None:
        self.info = info
        self.finetuner.base_bundle = self.session.inference.bundle
        self.sliders.set_directions(info.get("directions", []))
        self.set_status(f"model ready: {info.get('generator', '')}")
        if self._gallery:
            self._render_gallery()

    def _set_initial_source(self, source: int | str | None) -> None:
        if isinstance(source, str) and not source.isdigit():
            self.load_portrait(source)
        elif source is not None:
            self.load_seed(int(source))
        else:
            self.load_sample()

    def load_sample(self) -> None:
        """The bundled sample portrait: its shipped W+ code (no inversion), else the image, else seed 0."""
        from engine.resources import samples_dir

        samples = samples_dir()
        ws_file, image = samples / "source_ws.safetensors", samples / "source.png"
        if ws_file.is_file():
            from safetensors.torch import load_file

            ws = load_file(str(ws_file))["ws"]
            self._pending_key = finetune_cache.source_key(ws.numpy())
            self.source_panel.set_busy("loading", 0.0)
            self.session.inference.set_source(ws, f"sample portrait ({image.name})")
        elif image.is_file():
            self.load_portrait(str(image))
        else:
            self.load_seed(0)

    def load_seed(self, seed: int) -> None:
        """Animate the generator identity of ``seed``."""
        self._pending_key = finetune_cache.source_key(int(seed))
        self.source_panel.set_busy("rendering", 0.0)
        self.session.inference.set_source(int(seed), f"FaceWorld identity, seed {seed}")

    def load_portrait(self, path: str) -> None:
        """Invert the portrait at ``path`` in the inference thread (progress in the source panel)."""
        from engine.media import load_image

        try:
            image = np.array(load_image(path))  # a writable copy (the loader may return a read-only view)
        except (OSError, ValueError) as exc:
            self.set_status(f"cannot open portrait: {exc}")
            return
        self.settings.set_path(AppSettings.LAST_DIR, str(Path(path).parent))
        self._pending_key = finetune_cache.source_key(image)
        self.source_panel.set_busy("inversion", 0.0)
        self.set_status(f"inverting {Path(path).name}…")
        self.session.inference.set_source(image, f"portrait {Path(path).name} (inverted)")

    def open_portrait(self) -> None:
        """File dialog for a portrait."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Open portrait", self.settings.path(AppSettings.LAST_DIR), IMAGE_FILTER
        )
        if path:
            self.load_portrait(path)

    def _on_source_ready(self, image: np.ndarray, label: str) -> None:
        self.source_panel.set_source(image, label)

    def _on_job_done(self, name: str, ok: bool, message: str) -> None:
        self.source_panel.set_busy(None)
        if not ok:
            self.set_status(f"{name} {message}" if message == "cancelled" else f"{name} failed: {message}")
            return
        self._source_key = self._pending_key
        self.set_status(f"source: {message}")
        self.finetuner.source_changed(self._source_key)

    def _render_gallery(self) -> None:
        from d2a_desktop.gallery import render_thumbnails

        bundle = self.finetuner.base_bundle

        def run(progress: Any, cancel: Any) -> list[tuple[int, np.ndarray]]:
            return render_thumbnails(bundle, GALLERY_SEEDS, progress=progress, cancel=cancel)

        def connect(worker: Any) -> None:
            worker.result.connect(lambda items: [self.source_panel.add_identity(s, t) for s, t in items])
            worker.errored.connect(lambda msg: self.set_status(f"gallery: {msg}"))

        self.session.run_task("gallery", run, connect)

    # -- camera ----------------------------------------------------------------------------------------------------
    def set_camera_running(self, on: bool) -> None:
        """Start or stop the capture thread on the camera field's source."""
        if not on:
            self.session.stop_capture()
            self.fps.reset()
            self.live.set_driver(None, None)
            self.set_status("camera stopped")
            return
        text = self.controls.camera_text() or "0"
        config = CaptureConfig(source=CaptureConfig.parse_source(text))

        def connect(worker: Any) -> None:
            worker.message.connect(self.set_status)
            worker.errored.connect(self._on_capture_error)
            worker.opened.connect(lambda desc: self.set_status(f"camera: {desc}"))

        self.session.start_capture(config, connect)

    def _on_capture_error(self, message: str) -> None:
        self.set_status(f"camera error: {message.split(': ', 1)[-1]}")
        self.controls.start_button.setChecked(False)

    def start_camera(self, source: str) -> None:
        """Put ``source`` (device index or video path) in the camera field and start (restarting if running)."""
        self.controls.set_camera_text(source)
        if self.controls.start_button.isChecked():
            self.set_camera_running(True)
        else:
            self.controls.start_button.setChecked(True)

    def browse_video(self) -> None:
        """Choose a video file to use as the camera."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Video as camera", self.settings.path(AppSettings.LAST_DIR), VIDEO_FILTER
        )
        if path:
            self.start_camera(path)

    def calibrate(self) -> None:
        """Take the current driver face as the neutral reference (key C or Space)."""
        self.session.inference.calibrate()

    def _set_overlay(self, on: bool) -> None:
        self.live.driver.overlay = on
        self.live.driver.update()

    # -- recording -------------------------------------------------------------------------------------------------
    def _on_record_toggled(self, on: bool) -> None:
        if on:
            self.start_recording(self.record_folder() / time.strftime("d2a-%Y%m%d-%H%M%S.mp4"))
        else:
            self.stop_recording()

    def record_folder(self) -> Path:
        """Where GUI recordings go (remembered; default ~/Videos)."""
        return Path(self.settings.path(AppSettings.RECORD_DIR, str(Path.home() / "Videos")))

    def choose_record_folder(self) -> None:
        """Pick the recording folder."""
        folder = QFileDialog.getExistingDirectory(self, "Recording folder", str(self.record_folder()))
        if folder:
            self.settings.set_path(AppSettings.RECORD_DIR, folder)
            self.set_status(f"recordings go to {folder}")

    def start_recording(self, path: str | Path) -> None:
        """Record the output to ``path`` (H.264 mp4, real frame timestamps)."""
        def connect(worker: Any) -> None:
            worker.errored.connect(lambda msg: self.set_status(f"recording failed: {msg}"))
            worker.saved.connect(lambda p: self.set_status(f"saved {p}"))

        self.session.start_recording(RecordingConfig(path=Path(path)), connect)
        blocker = self.controls.record_button.blockSignals(True)
        self.controls.record_button.setChecked(True)
        self.controls.record_button.blockSignals(blocker)
        self.set_status(f"recording to {path}")

    def stop_recording(self) -> tuple[int, int, int] | None:
        """Finalise the recording; returns (produced, written, dropped) or None when not recording."""
        rec = self.session.stop_recording()
        blocker = self.controls.record_button.blockSignals(True)
        self.controls.record_button.setChecked(False)
        self.controls.record_button.blockSignals(blocker)
        if rec is None:
            return None
        counts = (rec.produced, rec.written, rec.dropped)
        self.controls.record_label.setText(
            f"saved {Path(rec.config.path).name}: {rec.written} frames written, {rec.dropped} dropped"
        )
        self.rec_label.setText("")
        return counts

    def _update_recording_label(self) -> None:
        rec = self.session.recorder
        if rec is None:
            return
        s = int(rec.elapsed_s)
        text = f"● REC {Path(rec.config.path).name}  {s // 60:02d}:{s % 60:02d}  ({rec.dropped} dropped)"
        self.controls.record_label.setText(text)
        self.rec_label.setText(text)

    # -- virtual camera --------------------------------------------------------------------------------------------
    def set_virtualcam(self, on: bool) -> None:
        """Open/close the virtual camera; a missing device is a status message, never a crash."""
        if not on:
            self.virtualcam.close()
            return
        frame = self.last_result.output if self.last_result is not None else None
        h, w = frame.shape[:2] if frame is not None else (512, 512)
        try:
            device = self.virtualcam.open(w, h)
        except VirtualCameraUnavailable as exc:
            self.set_status(str(exc))
            blocker = self.controls.virtualcam.blockSignals(True)
            self.controls.virtualcam.setChecked(False)
            self.controls.virtualcam.blockSignals(blocker)
            return
        self.set_status(f"virtual camera on: {device}")

    # -- fine-tuning ---------------------------------------------------------------------------------------------
    def start_finetune(self, steps: int = FINETUNE_STEPS, **options: Any) -> None:
        """Fine-tune the FAN on the current source in the background; the result is cached per source.

        ``options`` go to ``engine.distill.finetune.finetune`` (e.g. ``config=FinetuneConfig(...)``).
        """
        self.finetuner.start(self._source_key, steps, **options)

    # -- shutdown --------------------------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        """Save settings, finalise any recording, stop and join every thread."""
        self.timer.stop()
        self.settings.set_controls(self.controls.values())
        self.settings.set_geometry(self.saveGeometry())
        self.settings.sync()
        self.session.shutdown()
        self.virtualcam.close()
        super().closeEvent(event)
