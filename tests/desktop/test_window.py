"""The main window on the real engine (default bundle), a video file as the camera, pytest-qt offscreen.

One window is shared by the tests of this module (building the Animator is the slow part); they run in file
order and the last one closes the window mid-recording and checks that nothing is left running.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from d2a_desktop.config import InferenceConfig
from d2a_desktop.main_window import MainWindow
from d2a_desktop.settings import AppSettings, open_settings


@dataclass
class Live:
    window: MainWindow
    settings_path: Path
    python_threads: int  # non-dummy Python threads before the window existed


def _python_threads() -> int:
    """Live Python threads, without Qt threads seen by Python (dummies) and tqdm's self-ending monitor."""
    return sum(
        1
        for t in threading.enumerate()
        if t.is_alive() and not isinstance(t, threading._DummyThread) and type(t).__name__ != "TMonitor"
    )


@pytest.fixture(scope="module")
def live(qapp, default_bundle_dir, tmp_path_factory) -> Live:
    settings_path = tmp_path_factory.mktemp("settings") / "d2a.ini"
    baseline = _python_threads()
    window = MainWindow(AppSettings(open_settings(str(settings_path))), InferenceConfig(),
                        initial_source=None, gallery=False)
    window.controls.smoothing.setValue(0)  # no One-Euro state: a re-render of the same face is identical
    window.show()
    yield Live(window, settings_path, baseline)
    if window.isVisible():
        window.close()


def _wait_processed(qtbot, window: MainWindow, n: int, timeout: int = 60_000) -> None:
    inf = window.session.inference
    target = inf.processed + n
    qtbot.waitUntil(lambda: inf.processed >= target, timeout=timeout)


def _wait_idle(qtbot, window: MainWindow) -> None:
    """The inference thread has run every posted command and processed the newest driver frame."""
    qtbot.waitUntil(window.session.inference.is_idle, timeout=60_000)


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_starts_on_the_default_bundle_sample(qtbot, live: Live) -> None:
    w = live.window
    qtbot.waitUntil(lambda: w.has_source or "error" in w.status_text(), timeout=120_000)
    assert w.has_source, w.status_text()
    assert w.info["directions"], "the direction bank should be listed (sliders)"
    assert len(w.sliders.sliders) == len(w.info["directions"])
    qtbot.waitUntil(lambda: w.live.has_frame(), timeout=10_000)
    assert w.source_panel.preview.has_frame()
    assert "sample portrait" in w.source_panel.label.text()


def test_frames_flow_and_the_output_follows_the_driver(qtbot, live: Live, clips) -> None:
    w = live.window
    source = w.session.inference._anim.source_image.copy()
    outputs: list[np.ndarray] = []
    drivers: list[np.ndarray] = []

    def collect() -> bool:
        r, _ = w.session.results.get()
        if r is not None and r.driver is not None and (not drivers or r.driver is not drivers[-1]):
            outputs.append(r.output)
            drivers.append(r.driver)
        return len(outputs) >= 6

    w.start_camera(str(clips["face"]))
    qtbot.waitUntil(collect, timeout=90_000)
    assert w.session.inference.processed >= 6
    assert w.live.driver.has_frame()
    assert "fps" in w.fps_label.text() and "generator" in w.latency_label.text()
    # the driver moves (head turn + mouth) and so must the output: it leaves the source and varies over time
    assert max(_diff(o, source) for o in outputs) > 1.0
    assert max(_diff(o, outputs[0]) for o in outputs[1:]) > 1.0


def test_calibrate_neutral_changes_the_output(qtbot, live: Live) -> None:
    w = live.window
    w.controls.start_button.setChecked(False)  # stop the camera: the output is re-rendered from the last face
    _wait_idle(qtbot, w)
    before, _ = w.session.results.get()
    w.calibrate()  # the last driver face becomes the neutral: no relative motion left
    qtbot.waitUntil(lambda: "calibrated" in w.status_text(), timeout=30_000)
    _wait_idle(qtbot, w)
    after, _ = w.session.results.get()
    source = w.session.inference._anim.source_image
    assert _diff(after.output, before.output) > 0.5
    assert _diff(after.output, source) < _diff(before.output, source)


def test_keyboard_shortcut_calibrates_and_about_names_the_model(qtbot, live: Live) -> None:
    from PySide6.QtCore import Qt

    from d2a_desktop.about import about_text

    w = live.window
    w.activateWindow()
    w.set_status("")
    qtbot.keyClick(w.live, Qt.Key.Key_C)
    qtbot.waitUntil(lambda: "calibrated" in w.status_text(), timeout=30_000)
    text = about_text(w.info)
    assert w.info["generator"] in text and "torch" in text and "directions" in text


def test_direction_sliders_and_reset_reach_the_engine(qtbot, live: Live) -> None:
    w = live.window
    _wait_idle(qtbot, w)
    before, _ = w.session.results.get()
    first = min(w.sliders.sliders)
    w.sliders.sliders[first].setValue(150)  # the widget's signal, as a user drag would send it
    _wait_idle(qtbot, w)
    moved, _ = w.session.results.get()
    assert _diff(moved.output, before.output) > 1.0
    assert w.session.inference._anim.sliders[first] == 1.5
    w.sliders.reset()
    _wait_idle(qtbot, w)
    back, _ = w.session.results.get()
    assert not any(w.session.inference._anim.sliders.values())
    assert _diff(back.output, before.output) < 0.05 * _diff(moved.output, before.output)


def test_finetune_runs_in_the_background_and_is_kept_per_source(qtbot, live: Live) -> None:
    from d2a_desktop import finetune_cache

    w = live.window
    label = w.controls.finetune_label
    from engine.distill.train import FinetuneConfig

    # a small fine-tune (few jittered sources, 2 steps): the flow, not the quality, is under test here
    w.start_finetune(steps=2, config=FinetuneConfig(sources=3, targets_per_source=12, batch=32, val_pairs=8))
    assert not w.controls.finetune_progress.isHidden()
    qtbot.waitUntil(lambda: "fine-tuned" in label.text(), timeout=120_000)
    qtbot.waitUntil(w.controls.finetune_progress.isHidden, timeout=10_000)  # the task's finished signal
    folder = finetune_cache.cache_dir(w.finetuner.base_bundle, w._source_key)
    assert (folder / "bundle.json").is_file() and (folder / "fan.safetensors").is_file()
    qtbot.waitUntil(lambda: w.session.inference.bundle is not w.finetuner.base_bundle, timeout=30_000)
    w.load_seed(4)  # another source: back to the bundle's FAN
    qtbot.waitUntil(lambda: "bundle's FAN" in label.text(), timeout=60_000)
    w.load_sample()  # the first source again: its fine-tuned FAN comes from the cache
    qtbot.waitUntil(lambda: "fine-tuned" in label.text(), timeout=60_000)
    qtbot.waitUntil(lambda: w.session.inference.bundle.path == folder, timeout=30_000)


def test_auto_calibrate_uses_recent_frames(qtbot, live: Live) -> None:
    w = live.window
    w.controls.auto_button.click()
    qtbot.waitUntil(lambda: "auto-calibrated from" in w.status_text(), timeout=30_000)


def test_recording_has_the_expected_frame_count(qtbot, live: Live, clips, tmp_path) -> None:
    w = live.window
    out = tmp_path / "session.mp4"
    w.start_camera(str(clips["face"]))
    w.start_recording(out)
    _wait_processed(qtbot, w, 6)
    assert "REC" in w.rec_label.text()
    produced, written, dropped = w.stop_recording()
    assert produced >= 6
    assert written + dropped == produced
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in c.decode(video=0)) == written


def test_record_button_writes_into_the_recording_folder(qtbot, live: Live, tmp_path) -> None:
    w = live.window
    w.settings.set_path(AppSettings.RECORD_DIR, str(tmp_path))
    w.controls.record_button.click()
    assert w.session.recording
    _wait_processed(qtbot, w, 2)
    w.controls.record_button.click()
    assert not w.session.recording and "saved" in w.controls.record_label.text()
    files = list(tmp_path.glob("d2a-*.mp4"))
    assert len(files) == 1
    with av.open(str(files[0])) as c:
        assert sum(1 for _ in c.decode(video=0)) >= 2


def test_no_face_shows_the_status_and_keeps_the_last_good_output(qtbot, live: Live, clips) -> None:
    w = live.window
    w.controls.start_button.setChecked(False)
    _wait_idle(qtbot, w)
    last_good, _ = w.session.results.get()
    w.start_camera(str(clips["plain"]))
    qtbot.waitUntil(lambda: w.status_text() == "no face", timeout=60_000)
    _wait_processed(qtbot, w, 3)
    r, _ = w.session.results.get()
    assert not r.found and r.driver is not None
    assert np.array_equal(r.output, last_good.output)


def test_portrait_inversion_shows_progress_and_cancel_keeps_the_source(qtbot, live: Live) -> None:
    from engine.resources import samples_dir

    w = live.window
    before = w.session.inference._anim.source_image.copy()
    w.controls.start_button.setChecked(False)
    w.load_portrait(str(samples_dir() / "source.png"))
    progress = w.source_panel.progress
    qtbot.waitUntil(lambda: not progress.isHidden() and progress.value() > 0, timeout=90_000)
    assert not w.source_panel.open_button.isEnabled()  # one source job at a time
    w.source_panel.cancel_button.click()
    qtbot.waitUntil(lambda: "inversion cancelled" in w.status_text(), timeout=60_000)
    assert progress.isHidden() and w.source_panel.open_button.isEnabled()
    _wait_idle(qtbot, w)
    assert np.array_equal(w.session.inference._anim.source_image, before)


def test_missing_camera_device_is_reported(qtbot, live: Live) -> None:
    w = live.window
    w.start_camera("57")
    qtbot.waitUntil(lambda: "camera 57 not found" in w.status_text(), timeout=30_000)
    assert w.isVisible()
    w.controls.start_button.setChecked(False)


def test_virtual_camera_failure_is_a_message(qtbot, live: Live) -> None:
    w = live.window
    w.controls.virtualcam.setChecked(True)
    if w.virtualcam.is_open:  # pragma: no cover - a machine with a virtual camera device
        w.controls.virtualcam.setChecked(False)
        pytest.skip("a virtual camera device exists here")
    assert "virtual camera unavailable" in w.status_text()
    assert not w.controls.virtualcam.isChecked()
    w.pull_result()  # painting goes on
    assert w.isVisible()


def test_closing_mid_recording_finalises_the_file_and_stops_every_thread(qtbot, live: Live, clips, tmp_path) -> None:
    w = live.window
    w.controls.mode.setCurrentText("absolute")
    w.controls.pose_gain.setValue(150)
    w.controls.region_boxes["mouth"].setChecked(False)
    out = tmp_path / "closed.mp4"
    w.start_camera(str(clips["face"]))
    w.start_recording(out)
    _wait_processed(qtbot, w, 3)
    rec = w.session.recorder
    workers = [w.session._inference_thread, w.session._capture_thread, w.session._recorder_thread]
    w.close()
    # the file is complete and playable, and every frame is accounted for
    assert rec.written >= 1 and rec.written + rec.dropped == rec.produced
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == rec.written
    # no thread left running
    assert w.session.threads_running() == []
    assert all(t.thread.isFinished() for t in workers)
    assert _python_threads() == live.python_threads
    # the settings were written and come back in a new run
    stored = AppSettings(open_settings(str(live.settings_path))).controls()
    assert stored["mode"] == "absolute" and stored["pose_gain"] == 1.5
    assert stored["regions"]["mouth"] is False and stored["regions"]["eyes"] is True
    assert stored["camera"] == str(clips["face"])
