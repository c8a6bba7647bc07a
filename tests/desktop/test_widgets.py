"""Panels and settings without the model: control values, settings round trip, drag and drop, sliders."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from d2a_desktop.settings import AppSettings, open_settings
from d2a_desktop.widgets.controls_panel import ControlsPanel
from d2a_desktop.widgets.direction_sliders import DirectionSliders
from d2a_desktop.widgets.frame_view import FrameView, to_qimage
from d2a_desktop.widgets.source_panel import SourcePanel

VALUES = {
    "camera": "/videos/me.mp4",
    "mode": "absolute",
    "smoothing": 0.8,
    "pose_gain": 1.25,
    "expr_gain": 0.4,
    "regions": {"pose": False, "eyes": True, "mouth": True, "brows": False},
    "overlay": True,
}


def test_controls_and_settings_round_trip(qtbot, tmp_path) -> None:
    panel = ControlsPanel()
    qtbot.addWidget(panel)
    changes: list[dict] = []
    panel.config_changed.connect(changes.append)
    panel.set_values(VALUES)
    assert panel.values() == VALUES
    assert {"mode": "absolute"} in changes and {"pose_gain": 1.25} in changes  # the engine hears every change
    path = str(tmp_path / "settings.ini")
    stored = AppSettings(open_settings(path))
    stored.set_controls(panel.values())
    stored.sync()
    restored = ControlsPanel()
    qtbot.addWidget(restored)
    restored.set_values(AppSettings(open_settings(path)).controls())  # a new run reads the same file
    assert restored.values() == VALUES


def test_corrupt_settings_fall_back_to_defaults(tmp_path) -> None:
    q = open_settings(str(tmp_path / "bad.ini"))
    q.setValue(AppSettings.CONTROLS, "{not json")
    assert AppSettings(q).controls() == {}


def test_dropping_a_portrait_requests_it(qtbot, tmp_path) -> None:
    panel = SourcePanel()
    qtbot.addWidget(panel)
    image = tmp_path / "me.png"
    image.write_bytes(b"")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "notes.txt")), QUrl.fromLocalFile(str(image))])
    event = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(panel.image_chosen) as blocker:
        panel.dropEvent(event)
    assert blocker.args == [str(image)]


def test_gallery_click_chooses_a_seed(qtbot) -> None:
    panel = SourcePanel()
    qtbot.addWidget(panel)
    panel.add_identity(7, np.zeros((32, 32, 3), np.uint8))
    with qtbot.waitSignal(panel.seed_chosen) as blocker:
        panel.gallery.itemClicked.emit(panel.gallery.item(0))
    assert blocker.args == [7]


def test_direction_sliders_follow_the_bank_and_reset(qtbot) -> None:
    info = [{"group": "pose", "region": "pose"}, {"group": "expression", "region": "mouth"},
            {"group": "expression", "region": "eyes"}]
    sliders = DirectionSliders()
    qtbot.addWidget(sliders)
    sliders.set_directions(info)
    assert sorted(sliders.sliders) == [0, 1, 2]
    with qtbot.waitSignal(sliders.slider_changed) as blocker:
        sliders.sliders[1].setValue(150)
    assert blocker.args == [1, 1.5]
    with qtbot.waitSignal(sliders.reset_requested):
        sliders.reset()
    assert all(s.value() == 0 for s in sliders.sliders.values())


def test_frame_view_rejects_bad_frames(qtbot) -> None:
    view = FrameView("x")
    qtbot.addWidget(view)
    view.set_frame(np.zeros((48, 64, 3), np.uint8), np.array([[1.0, 2.0]], np.float32))
    assert view.has_frame() and to_qimage(np.zeros((4, 6, 3), np.uint8)).size().width() == 6
    with pytest.raises(ValueError, match="uint8 RGB"):
        view.set_frame(np.zeros((48, 64), np.float32))


def test_gallery_thumbnails_are_the_generator_identities(default_bundle_dir) -> None:
    from d2a_desktop.gallery import render_thumbnails
    from engine.bundle import load_bundle

    calls: list[tuple] = []
    items = render_thumbnails(load_bundle(default_bundle_dir), [1, 2], size=64, progress=lambda *a: calls.append(a))
    assert [s for s, _ in items] == [1, 2] and calls == [(1, 2), (2, 2)]
    (_, a), (_, b) = items
    assert a.shape == b.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5  # two different faces
