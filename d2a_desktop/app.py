"""``d2a-desktop``: start the window, or run a scripted session for tests and headless machines.

Examples::

    d2a-desktop                                   # the app (camera 0, the default bundle)
    d2a-desktop --camera clip.mp4                 # a video file as the camera
    d2a-desktop --camera clip.mp4 --frames 60 --screenshot app.png --record out.mp4 --source me.jpg
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PySide6.QtCore import QObject, QTimer


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(
        prog="d2a-desktop",
        description="Live portrait animation from a webcam (D²Animator). With --frames the session is scripted: "
        "process N frames, optionally record and take a screenshot, then exit.",
        epilog="example: d2a-desktop --camera clip.mp4 --frames 60 --screenshot app.png --record out.mp4",
    )
    p.add_argument("--camera", help="camera device index or a video file used as the camera (starts at once)")
    p.add_argument("--source", help="portrait image to animate (inverted at start) or a FaceWorld seed number")
    p.add_argument("--bundle", help="model bundle folder (default: the embedded FaceWorld bundle)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"],
                   help="generator runtime (default: torch; onnxruntime exports the generator once into the cache)")
    p.add_argument("--frames", type=int, default=0, help="scripted: process N driver frames, then exit")
    p.add_argument("--screenshot", help="scripted: save a screenshot of the main window (PNG) at the end")
    p.add_argument("--record", help="scripted: record the output to this mp4 while processing the frames")
    p.add_argument("--timeout", type=float, default=600.0, help="scripted: give up after this many seconds")
    p.add_argument("--settings", help="settings file (INI) instead of the platform's store")
    p.add_argument("--no-gallery", action="store_true", help="do not render the identity gallery")
    p.add_argument("--native-style", action="store_true", help="use the platform's style instead of the dark theme")
    return p


class ScriptedRun(QObject):
    """Drives a window through ``--frames N``: start the camera, record, wait for N frames, screenshot, close."""

    def __init__(self, window, frames: int, screenshot: str | None, record: str | None, timeout: float) -> None:
        super().__init__(window)
        self.window = window
        self.frames = frames
        self.screenshot = screenshot
        self.record = record
        self.deadline = time.monotonic() + timeout
        self.exit_code: int | None = None
        self._recording = False
        self._timer = QTimer(self)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._poll)

    def start(self) -> None:
        self._timer.start()

    def _poll(self) -> None:
        w = self.window
        inf = w.session.inference
        if self.record and not self._recording and w.info:
            w.start_recording(self.record)
            self._recording = True
        if inf.processed >= self.frames and (self._recording or not self.record):
            self._finish(0)
        elif w.session.inference_ended:
            print(f"d2a-desktop: the inference thread stopped ({w.last_error or w.status_text()})", file=sys.stderr)
            self._finish(3)
        elif time.monotonic() > self.deadline:
            print(f"d2a-desktop: timed out after {inf.processed}/{self.frames} frames "
                  f"(status: {w.status_text()})", file=sys.stderr)
            self._finish(3)

    def _finish(self, code: int) -> None:
        from PySide6.QtWidgets import QApplication

        self._timer.stop()
        w = self.window
        w.pull_result()
        if self.screenshot:  # taken while still live (and recording), as a user would see the window
            QApplication.processEvents()
            Path(self.screenshot).parent.mkdir(parents=True, exist_ok=True)
            if w.grab().save(self.screenshot):
                print(f"screenshot {self.screenshot}")
            else:
                print(f"d2a-desktop: could not write {self.screenshot}", file=sys.stderr)
                code = code or 4
        if self._recording:
            counts = w.stop_recording()
            if counts:
                print(f"recorded {self.record}: produced {counts[0]}, written {counts[1]}, dropped {counts[2]}")
        print(f"processed {w.session.inference.processed} frames ({w.session.inference.dropped} dropped); "
              f"{w.fps_label.text()}; {w.latency_label.text()}")
        self.exit_code = code
        QApplication.instance().exit(code)  # main() closes the window once the event loop has returned


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``d2a-desktop``; returns the process exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.frames < 0:
        print("d2a-desktop: --frames must be >= 0", file=sys.stderr)
        return 2
    if args.frames and not args.camera:
        print("d2a-desktop: --frames needs --camera (a device index or a video file)", file=sys.stderr)
        return 2
    from PySide6.QtWidgets import QApplication

    from d2a_desktop.config import InferenceConfig
    from d2a_desktop.main_window import MainWindow
    from d2a_desktop.settings import APPLICATION, ORGANIZATION, AppSettings, open_settings

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "d2a-desktop"])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    if not args.native_style:
        from d2a_desktop.theme import apply_dark_theme

        apply_dark_theme(app)
    source: int | str | None = None
    if args.source:
        source = int(args.source) if args.source.isdigit() else args.source
    window = MainWindow(
        AppSettings(open_settings(args.settings)),
        InferenceConfig(bundle=args.bundle, device=args.device, backend=args.backend),
        initial_source=source,
        gallery=not args.no_gallery,
    )
    window.show()
    if args.camera:
        window.start_camera(args.camera)
    if not args.frames:
        return int(app.exec())
    # Scripted: closing the window inside the loop would post a deferred "quit" (last window closed) that could
    # stop a later event loop of the same process (tests); so the window is closed after the loop returned.
    quit_on_close = app.quitOnLastWindowClosed()
    app.setQuitOnLastWindowClosed(False)
    run = ScriptedRun(window, args.frames, args.screenshot, args.record, args.timeout)
    run.start()
    try:
        code = app.exec()
    finally:
        window.close()  # stops and joins every thread, finalises any recording
        app.setQuitOnLastWindowClosed(quit_on_close)
    return run.exit_code if run.exit_code is not None else int(code)


if __name__ == "__main__":
    sys.exit(main())
