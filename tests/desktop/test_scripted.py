"""``d2a-desktop --camera VIDEO --frames N --screenshot PNG --record OUT.mp4`` in-process, on the real engine."""

from __future__ import annotations

import re
import threading

import av
from PySide6.QtGui import QImage

from d2a_desktop.app import main


def _python_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.is_alive() and not isinstance(t, threading._DummyThread))


def test_scripted_session_writes_screenshot_and_recording(qapp, default_bundle_dir, clips, tmp_path, capsys) -> None:
    shot, video = tmp_path / "app.png", tmp_path / "out.mp4"
    before = _python_threads()
    code = main([
        "--camera", str(clips["face"]), "--frames", "4", "--screenshot", str(shot), "--record", str(video),
        "--source", "5", "--settings", str(tmp_path / "s.ini"), "--no-gallery", "--timeout", "240",
    ])
    out = capsys.readouterr().out
    assert code == 0, out
    image = QImage(str(shot))
    assert not image.isNull() and image.width() >= 640 and image.height() >= 400
    m = re.search(r"produced (\d+), written (\d+), dropped (\d+)", out)
    assert m, out
    produced, written, dropped = map(int, m.groups())
    assert produced >= 4 and written + dropped == produced
    with av.open(str(video)) as c:
        assert sum(1 for _ in c.decode(video=0)) == written
    assert _python_threads() == before  # every worker thread was joined before main() returned


def test_bad_arguments_exit_with_a_message(capsys) -> None:
    assert main(["--frames", "3"]) == 2
    assert "--frames needs --camera" in capsys.readouterr().err


def test_a_broken_bundle_is_reported_not_hung(qapp, clips, tmp_path, capsys) -> None:
    code = main(["--bundle", str(tmp_path / "no-such-bundle"), "--camera", str(clips["plain"]), "--frames", "2",
                 "--settings", str(tmp_path / "s.ini"), "--no-gallery", "--timeout", "120"])
    err = capsys.readouterr().err
    assert code == 3
    assert "inference thread stopped" in err and "no-such-bundle" in err
