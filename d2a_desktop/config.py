"""Typed configuration of the app's subsystems (capture, inference, recording, virtual camera)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the engine (torch) is imported only when a config is built
    from engine.animate import AnimatorConfig


def live_animator_config() -> AnimatorConfig:
    """The app's Animator settings: the engine's defaults, with One-Euro smoothing 0.5. A live webcam's landmarks
    jitter from frame to frame and the viewer sees it at once; offline ``d2a animate``/``d2a eval`` keep 0, which
    tracks a clip more closely (docs/RESULTS.md, 'Smoothing')."""
    from engine.animate import AnimatorConfig

    return AnimatorConfig(smoothing=0.5)


@dataclass
class CaptureConfig:
    """Where driver frames come from and how the capture thread behaves."""

    source: int | str = 0  # camera device index, or the path of a video file used as the camera
    loop: bool = True  # video file: start again at the end (False: stop at the end)
    realtime: bool = True  # video file: pace frames at the file's fps (False: as fast as they decode)
    width: int = 640  # requested camera width (devices only; the driver may ignore it)
    height: int = 480  # requested camera height
    retry_initial_s: float = 0.25  # first reconnect delay after a failure
    retry_max_s: float = 2.0  # reconnect delays double up to this bound (never busy-spin)

    @property
    def is_file(self) -> bool:
        """True when the source is a video file rather than a device index."""
        return isinstance(self.source, str) and not self.source.isdigit()

    @staticmethod
    def parse_source(text: str) -> int | str:
        """``"0"`` -> device 0; anything else is a path to a video file."""
        text = text.strip()
        return int(text) if text.isdigit() else text


@dataclass
class InferenceConfig:
    """The inference thread: which bundle and device, and the live animation settings."""

    bundle: str | None = None  # bundle folder; None -> the embedded default (resources/models/faceworld)
    device: str = "cpu"  # torch device the Animator runs on
    detector: str = "mediapipe"  # landmark backend (engine.landmarks.create_detector name)
    backend: str = "torch"  # generator runtime: "torch" (the Animator's default) | "onnxruntime" (engine.runtime)
    animator: AnimatorConfig = field(default_factory=live_animator_config)  # mode, gains, smoothing, regions ...
    auto_calibrate_frames: int = 30  # recent frames kept for auto-calibration
    idle_poll_s: float = 0.05  # how long the thread waits for a new frame before checking for commands


@dataclass
class RecordingConfig:
    """The recorder thread: bounded FIFO and the H.264 encoder settings."""

    path: Path = Path("recording.mp4")  # output .mp4
    queue_size: int = 64  # bounded FIFO between inference and encoder; overflow is dropped and counted
    nominal_fps: int = 30  # the stream's nominal rate; real timestamps are written per frame
    crf: int = 20  # x264 quality (lower is better)
    preset: str = "veryfast"  # x264 speed/size trade-off


@dataclass
class VirtualCameraConfig:
    """Virtual camera output through pyvirtualcam."""

    fps: int = 30  # advertised frame rate
    backend: str | None = None  # pyvirtualcam backend name; None -> the platform default
