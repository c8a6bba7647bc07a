"""Workers without the model: capture from a video file, a missing device, recorder counting, virtual camera."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from d2a_desktop.config import CaptureConfig, RecordingConfig
from d2a_desktop.slots import LatestSlot
from d2a_desktop.virtualcam import VirtualCamera, VirtualCameraUnavailable
from d2a_desktop.workers.base import WorkerThread
from d2a_desktop.workers.capture import CaptureWorker
from d2a_desktop.workers.recorder import RecorderWorker


@pytest.fixture
def threads():
    """Start workers through this list; every thread is stopped and joined even when a test fails."""
    started: list[WorkerThread] = []

    def start(worker, name: str) -> WorkerThread:
        t = WorkerThread(worker, name)
        started.append(t)
        t.start()
        return t

    yield start
    for t in started:
        assert t.stop(timeout_ms=10_000)


def _decoded_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_video_file_as_camera_fills_the_latest_slot(qtbot, clips, threads) -> None:
    slot = LatestSlot()
    worker = CaptureWorker(CaptureConfig(source=str(clips["face"]), loop=False, realtime=False), slot)
    messages: list[str] = []
    worker.message.connect(messages.append)
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        thread = threads(worker, "test-capture")
    assert thread.stop()
    frame, counter = slot.get()
    assert counter == worker.frames_read == 40  # every frame of the clip went through the slot
    assert frame.image.shape == (256, 256, 3) and frame.image.dtype == np.uint8
    assert frame.index == 39
    assert "end of the driving video" in messages


def test_missing_camera_device_is_reported_and_retried_without_spinning(qtbot, threads) -> None:
    worker = CaptureWorker(CaptureConfig(source=57, retry_initial_s=0.05, retry_max_s=0.2), LatestSlot())
    with qtbot.waitSignal(worker.source_missing, timeout=20_000) as blocker:
        thread = threads(worker, "test-missing")
    assert "camera 57 not found" in blocker.args[0]
    assert thread.is_running()  # still waiting for the device (backoff), not dead
    assert thread.stop(timeout_ms=5_000)


def test_missing_video_file_is_an_error(qtbot, tmp_path, threads) -> None:
    worker = CaptureWorker(CaptureConfig(source=str(tmp_path / "nope.mp4")), LatestSlot())
    with qtbot.waitSignal(worker.errored, timeout=10_000) as blocker:
        thread = threads(worker, "test-nofile")
    assert "video file not found" in blocker.args[0]
    assert thread.stop()


def test_recorder_counts_drops_and_writes_a_playable_file(qtbot, tmp_path, threads) -> None:
    out = tmp_path / "rec.mp4"
    rec = RecorderWorker(RecordingConfig(path=out, queue_size=4))
    t0 = 100.0
    # offered before the encoder thread runs: the FIFO holds 4, the other 16 must be dropped and counted
    accepted = [rec.offer(np.full((64, 96, 3), 10 * i, np.uint8), t0 + i / 20) for i in range(20)]
    assert accepted.count(True) == 4
    thread = threads(rec, "test-recorder")
    qtbot.waitUntil(lambda: rec.written == 4, timeout=20_000)
    for i in range(20, 26):  # one at a time, the queue always has room: these get through
        assert rec.offer(np.full((64, 96, 3), 5 * i, np.uint8), t0 + i / 20)
        qtbot.waitUntil(lambda n=i: rec.written == n - 15, timeout=20_000)
    assert thread.stop()
    assert (rec.produced, rec.written, rec.dropped) == (26, 10, 16)
    assert rec.written + rec.dropped == rec.produced
    assert _decoded_frames(out) == 10
    assert not rec.offer(np.zeros((64, 96, 3), np.uint8), t0 + 2)  # closed: nothing is counted any more
    assert rec.produced == 26


def test_recorder_uses_real_timestamps(qtbot, tmp_path, threads) -> None:
    out = tmp_path / "ts.mp4"
    rec = RecorderWorker(RecordingConfig(path=out, nominal_fps=30))
    times = [0.0, 0.1, 0.2, 0.5, 0.6]  # irregular: the file must keep these instants, not 30 fps
    for t in times:
        rec.offer(np.zeros((32, 32, 3), np.uint8), 50.0 + t)
    thread = threads(rec, "test-ts")
    qtbot.waitUntil(lambda: rec.written == len(times), timeout=20_000)
    assert thread.stop()
    with av.open(str(out)) as c:
        stamps = [float(f.time) for f in c.decode(video=0)]
    assert np.allclose(stamps, times, atol=0.002)


def test_virtual_camera_without_a_device_raises_a_clear_error() -> None:
    cam = VirtualCamera()
    try:
        cam.open(128, 128)
    except VirtualCameraUnavailable as exc:
        assert "virtual camera unavailable" in str(exc)
        assert not cam.is_open
    else:  # a machine with v4l2loopback/OBS: the device works, close it again
        assert cam.is_open
        cam.send(np.zeros((64, 64, 3), np.uint8))
        cam.close()
        pytest.skip("a virtual camera device exists on this machine")
