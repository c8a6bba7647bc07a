"""Optional backends: dlib (when installed) agrees with mediapipe's iBUG-68 view; face-alignment fails fast offline."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from engine.landmarks import create_detector, schema
from engine.landmarks.base import BackendUnavailable
from engine.landmarks.geometry import nme


def _dlib_ready() -> bool:
    from engine.landmarks.dlib_backend import find_predictor

    try:
        import dlib  # noqa: F401

        find_predictor()
    except (ImportError, BackendUnavailable):
        return False
    return True


@pytest.mark.skipif(not _dlib_ready(), reason="optional dlib extra not installed (pip install 'd2a-desktop[dlib]')")
def test_dlib_matches_mediapipe_ibug68(astronaut) -> None:
    with create_detector("dlib") as det:
        d = det.detect(astronaut)
        assert not det.detect(np.full((120, 160, 3), 90, np.uint8)).found
    assert d.found and d.points.shape == (68, 2) and 0.5 < d.confidence <= 1.0
    assert schema.to_ibug68(d.points) is d.points
    with create_detector("mediapipe") as mp_det:
        m = mp_det.detect(astronaut)
    err = float(nme(schema.to_ibug68(m.points), d.points))
    assert err < 0.06, err  # the 68-point mapping makes the backends interchangeable
    per_point = np.linalg.norm(schema.to_ibug68(m.points) - d.points, axis=1)
    assert np.median(per_point[17:]) < np.median(per_point[:17])  # inner face agrees better than the jaw


def test_dlib_bad_predictor_path_is_a_clear_error() -> None:
    pytest.importorskip("dlib")
    with pytest.raises(BackendUnavailable, match="predictor_path"):
        create_detector("dlib", predictor_path="/nonexistent/shape_predictor.dat")


def test_face_alignment_fails_fast_without_weights(monkeypatch, tmp_path) -> None:
    """No weights in the torch hub cache: a clear error naming the folder, and no network access attempted."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(*args, **kwargs):
        raise AssertionError("the face-alignment backend tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(BackendUnavailable) as info:
        create_detector("face-alignment")
    msg = str(info.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    assert "2DFAN4" in msg and "s3fd" in msg and "allow_download" in msg


def test_face_alignment_missing_weights_helper(tmp_path) -> None:
    from engine.landmarks.fa_backend import WEIGHTS, missing_weights

    assert set(missing_weights(tmp_path)) == set(WEIGHTS)
    for name in WEIGHTS:
        (tmp_path / name).write_bytes(b"x")
    assert missing_weights(tmp_path) == {}
