"""Inference thread: owns the Animator and the landmark detector, takes only the newest driver frame.

Live loop per frame: detect landmarks → Animator.step_timed (One-Euro smoothing, relative motion, FAN,
generator) → newest-result slot (the GUI pulls it on a timer) → recorder FIFO if recording.
Everything the GUI asks for (calibrate, gains, sliders, a new source) is posted as a command and run here,
between frames, so the models are only ever touched by this thread.
"""

from __future__ import annotations

import collections
import copy
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Signal

from d2a_desktop.config import InferenceConfig
from d2a_desktop.slots import LatestSlot
from d2a_desktop.workers.base import Worker
from d2a_desktop.workers.capture import CapturedFrame

if TYPE_CHECKING:  # pragma: no cover
    from engine.animate import Animator
    from engine.landmarks.base import LandmarkDetector

Command = Callable[["Animator"], None]  # receives the Animator, runs in the inference thread


@dataclass(frozen=True)
class LiveResult:
    """One output of the live loop (all arrays uint8 RGB [H, W, 3] unless noted)."""

    output: np.ndarray  # the animated frame
    driver: np.ndarray | None  # the driver frame it was computed from (None for a re-render without camera)
    points: np.ndarray | None  # float32 [478, 2] driver landmarks in driver pixels, None when no face
    found: bool  # a face was found in the driver frame
    stages_ms: dict[str, float] = field(default_factory=dict)  # per-stage latency of this frame
    index: int = 0  # running number of results produced
    t: float = 0.0  # time.monotonic() when produced
    dropped: int = 0  # driver frames skipped so far because a newer one had arrived


class InferenceWorker(Worker):
    """Runs the Animator on the newest captured frame; see the module docstring."""

    ready = Signal(dict)  # model/backend info once the Animator is built in this thread
    job_progress = Signal(str, float)  # (job name, fraction 0..1) for long jobs such as inversion
    job_done = Signal(str, bool, str)  # (job name, success, message)
    face_changed = Signal(bool)  # a face appeared (True) or was lost (False)
    source_ready = Signal(object, str)  # (rendered source uint8 [H, W, 3], label) after a source change

    def __init__(
        self,
        config: InferenceConfig,
        frames: LatestSlot[CapturedFrame],
        results: LatestSlot[LiveResult],
    ) -> None:
        super().__init__()
        self.config = config
        self.frames = frames
        self.results = results
        self._commands: queue.Queue[tuple[str, Command]] = queue.Queue()
        self._recorder_lock = threading.Lock()
        self._recorder: Any = None
        self._cancel = threading.Event()
        self._recent: collections.deque[np.ndarray] = collections.deque(maxlen=config.auto_calibrate_frames)
        self._last_points: np.ndarray | None = None
        self._points_shape: tuple[int, ...] | None = None  # (H, W) of the driver frame the last points came from
        self._face: bool | None = None
        self.processed = 0  # driver frames turned into outputs
        self.dropped = 0  # driver frames skipped because a newer one had arrived
        self.idle = True  # waiting for a frame (nothing in progress)
        self.seen = 0  # counter of the last driver frame taken from the slot
        self.bundle: Any = None
        self._anim: Animator | None = None  # the Animator; created, used and replaced only in this thread
        self._count_lock = threading.Lock()
        self._last_error = ""
        self._posted = 0  # commands posted
        self._done = 0  # commands finished (including the re-render that shows their effect)

    # -- API for other threads ---------------------------------------------------------------------------------------
    def post(self, name: str, command: Command) -> None:
        """Run ``command(animator)`` in the inference thread before the next frame (thread-safe)."""
        with self._count_lock:
            self._posted += 1
        self._commands.put((name, command))
        self.frames.wake()

    def is_idle(self) -> bool:
        """True when every posted command has run (and re-rendered) and the newest driver frame is processed."""
        with self._count_lock:
            settled = self._done == self._posted
        return settled and self.idle and self.seen == self.frames.counter

    def set_recorder(self, recorder: Any) -> None:
        """Send every produced output to ``recorder.offer(frame, t)`` (None: stop sending)."""
        with self._recorder_lock:
            self._recorder = recorder

    def cancel_job(self) -> None:
        """Cancel the running long job (inversion, ...) cooperatively."""
        self._cancel.set()

    def wake(self) -> None:
        """Wake the loop if it waits for a frame (used by stop)."""
        self._cancel.set()
        self.frames.wake()

    # -- commands (built here, executed in the thread) ------------------------------------------------------------
    def calibrate(self) -> None:
        """Use the latest driver landmarks as the neutral reference."""

        def run(anim: Animator) -> None:
            if self._last_points is None:
                self.message.emit("calibrate: no face in view")
                return
            anim.calibrate(self._last_points)
            self.message.emit("calibrated: current face is the neutral reference")

        self.post("calibrate", run)

    def auto_calibrate(self) -> None:
        """Pick the most neutral recent frame as the reference."""

        def run(anim: Animator) -> None:
            if not self._recent:
                self.message.emit("auto-calibrate: no face seen yet")
                return
            anim.auto_calibrate(list(self._recent))
            self.message.emit(f"auto-calibrated from {len(self._recent)} recent frames")

        self.post("auto_calibrate", run)

    def update_config(self, **changes: Any) -> None:
        """Change AnimatorConfig fields (mode, pose_gain, expr_gain, smoothing, regions, ...)."""

        def run(anim: Animator) -> None:
            for key, value in changes.items():
                setattr(anim.config, key, dict(value) if key == "regions" else value)
            anim.config.validate()

        self.post("config", run)

    def set_slider(self, index: int, value: float) -> None:
        """Offset along direction ``index`` of the bank."""
        self.post("slider", lambda anim: anim.sliders.__setitem__(index, float(value)))

    def reset_sliders(self) -> None:
        """All slider offsets back to zero."""
        self.post("reset_sliders", lambda anim: anim.reset_sliders())

    def set_source(self, source: Any, label: str) -> None:
        """New source: an image (uint8 RGB [H, W, 3], inverted here with progress), a seed, or ws."""

        def run(anim: Animator) -> None:
            self._cancel.clear()
            name = "inversion" if isinstance(source, np.ndarray) else "source"

            def progress(*args: Any) -> None:
                self.job_progress.emit(name, _fraction(args))

            previous = anim.source_ws
            try:
                anim.set_source(source, progress=progress, cancel=self._cancel)
                failure = "cancelled" if self._cancel.is_set() else None
            except Exception as exc:  # reported; the previous source stays
                failure = "cancelled" if self._cancel.is_set() else f"{type(exc).__name__}: {exc}"
            if failure is not None:
                if previous is not None and not self.stopping and anim.source_ws is not previous:
                    anim.set_source(previous)  # a cancelled inversion returns a partial code: drop it
                self.job_done.emit(name, False, failure)
                return
            self.source_ready.emit(anim.source_image, label)
            self.job_done.emit(name, True, label)

        self.post("source", run)

    def set_bundle(self, bundle: Any, label: str) -> None:
        """Swap the bundle (e.g. a fine-tuned FAN), keeping generator, source, calibration, sliders and settings."""

        def run(anim: Animator) -> None:
            from engine.animate import Animator

            new = Animator(bundle, device=self.config.device, generator=anim.generator, config=anim.config,
                           backend=anim.backend)
            if anim.source_ws is not None:
                new.set_source(anim.source_ws)
            if anim.reference_points is not None:
                new.calibrate(anim.reference_points)
            new.sliders.update(anim.sliders)
            anim.close()
            self._anim = new
            self.bundle = bundle
            self.message.emit(f"using {label}")

        self.post("bundle", run)

    # -- the thread --------------------------------------------------------------------------------------------------
    def _make_animator(self) -> Animator:
        """The Animator on the configured runtime (the torch default, or a backend from ``engine.runtime``)."""
        from engine.animate import Animator

        config = copy.deepcopy(self.config.animator)  # live changes go to the Animator's copy, not to the app config
        if self.config.backend == "torch":
            return Animator(bundle=self.config.bundle, device=self.config.device, config=config)
        from engine.bundle import load_bundle
        from engine.runtime import RuntimeConfig, create_backend

        bundle = load_bundle(self.config.bundle)
        generator = bundle.generator(self.config.device)
        backend = create_backend(RuntimeConfig(backend=self.config.backend), generator)
        return Animator(bundle, device=self.config.device, generator=generator, backend=backend, config=config)

    def _build(self) -> LandmarkDetector:
        import torch

        from engine.landmarks import create_detector

        anim = self._make_animator()
        self._anim = anim
        detector = create_detector(self.config.detector, video_mode=True)
        self.bundle = anim.bundle
        g = anim.generator
        info = {
            "bundle": str(anim.bundle.path or "default"),
            "generator": f"{anim.bundle.generator_ref} {g.img_resolution}px, {g.num_ws}×{g.w_dim} W+",
            "directions": list(anim.bundle.directions_info),
            "fan": type(anim.fan).__name__,
            "device": self.config.device,
            "backend": str(getattr(anim.backend, "name", None) or type(anim.backend).__name__),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "detector": self.config.detector,
        }
        self.ready.emit(info)
        return detector

    def work(self) -> None:
        detector = self._build()
        try:
            ran = self._drain()
            if self._anim.source_ws is not None:
                self._render(None, None, {})
            self._finished(ran)
            seen = self.seen = self.frames.counter  # frames from before the model was ready are skipped
            while not self.stopping:
                ran = self._drain()
                if ran and self._anim.source_ws is not None:
                    self._render(None, self._last_points, {})
                self._finished(ran)
                self.idle = True
                item = self.frames.wait_newer(seen, self.config.idle_poll_s)
                if item is None or self.stopping:
                    continue
                self.idle = False
                frame, counter = item
                if counter - seen > 1 and self.processed > 0:
                    self.dropped += counter - seen - 1
                seen = self.seen = counter
                if self._anim.source_ws is None:
                    continue
                try:
                    self._process(detector, frame)
                except Exception as exc:  # one bad frame must not end the session: report it, go on
                    text = f"frame failed: {type(exc).__name__}: {exc}"
                    if text != self._last_error:
                        self._last_error = text
                        self.message.emit(text)
        finally:
            detector.close()
            if self._anim is not None:
                self._anim.close()

    def _process(self, detector: LandmarkDetector, frame: CapturedFrame) -> None:
        """Detect landmarks on one driver frame and render the output."""
        t0 = time.perf_counter()
        det = detector.detect(frame.image)
        t_det = (time.perf_counter() - t0) * 1000.0
        points = np.asarray(det.points, dtype=np.float32) if det.found else None
        if points is not None:
            self._points_shape = frame.image.shape[:2]
        self._note_face(points)
        self._render(frame.image, points, {"detect": t_det}, frame.t)
        self._last_error = ""

    def _finished(self, n: int) -> None:
        with self._count_lock:
            self._done += n

    def _drain(self) -> int:
        """Run pending commands; returns how many ran (non-zero: the output may have changed)."""
        ran = 0
        while True:
            try:
                name, command = self._commands.get_nowait()
            except queue.Empty:
                return ran
            ran += 1
            if self.stopping:
                continue
            try:
                command(self._anim)
            except Exception as exc:  # a bad command (e.g. invalid setting) is reported, the loop goes on
                self.message.emit(f"{name} failed: {exc}")

    def _note_face(self, points: np.ndarray | None) -> None:
        found = points is not None
        if found:
            self._last_points = points
            self._recent.append(points)
        if found != self._face:
            self._face = found
            self.face_changed.emit(found)
            if not found:
                self.message.emit("no face")

    def _render(
        self,
        driver: np.ndarray | None,
        points: np.ndarray | None,
        stages: dict[str, float],
        t_capture: float | None = None,
    ) -> None:
        # always one clock (monotonic) for the One-Euro filter, also for re-renders after a command
        t_filter = t_capture if t_capture is not None else time.monotonic()
        # the driver frame's size, as `d2a animate` gives it: absolute mode stretches the points onto the source
        out, anim_stages = self._anim.step_timed(points, t_filter, frame_shape=self._points_shape)
        stages_ms = {**stages, **{k: float(v) for k, v in dict(anim_stages).items() if k != "total"}}
        stages_ms["total"] = sum(stages_ms.values())
        if t_capture is not None:
            stages_ms["latency"] = (time.monotonic() - t_capture) * 1000.0  # capture -> result
        now = time.monotonic()
        result = LiveResult(
            output=np.asarray(out),
            driver=driver,
            points=points,
            found=points is not None,
            stages_ms=stages_ms,
            index=self.processed,
            t=now,
            dropped=self.dropped,
        )
        if driver is not None:
            self.processed += 1
        self.results.put(result)
        with self._recorder_lock:
            recorder = self._recorder
        if recorder is not None and driver is not None:
            recorder.offer(result.output, now)


def _fraction(args: tuple[Any, ...]) -> float:
    """Progress callbacks may pass (fraction), (done, total) or (done, total, info...): map to 0..1."""
    nums = [a for a in args if isinstance(a, (int, float))]
    if len(nums) >= 2 and nums[1]:
        return max(0.0, min(1.0, float(nums[0]) / float(nums[1])))
    if nums:
        return max(0.0, min(1.0, float(nums[0])))
    return 0.0
