"""Image and video I/O with real files written and read back, plus broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.media import MediaError, VideoReader, VideoWriter, load_image, read_frames, save_image


def _pattern(h: int = 48, w: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], -1).astype(np.uint8)


def test_image_round_trips(tmp_path: Path) -> None:
    img = _pattern()
    assert np.array_equal(load_image(save_image(tmp_path / "a.png", img)), img)
    for ext in ("jpg", "webp"):
        back = load_image(save_image(tmp_path / f"a.{ext}", img))
        assert back.shape == img.shape and back.dtype == np.uint8
        assert np.abs(back.astype(int) - img).mean() < 6


def test_image_modes_are_converted(tmp_path: Path) -> None:
    from PIL import Image

    gray = _pattern()[:, :, 0]
    Image.fromarray(gray).save(tmp_path / "g.png")
    g = load_image(tmp_path / "g.png")
    assert g.shape == (48, 64, 3) and np.array_equal(g[:, :, 1], gray)
    rgba = np.concatenate([_pattern(), np.full((48, 64, 1), 80, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.array_equal(load_image(tmp_path / "a.png"), rgba[:, :, :3])
    Image.fromarray(_pattern()).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (48, 64, 3)
    deep = (gray.astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    np.testing.assert_allclose(load_image(tmp_path / "d.png")[:, :, 0], gray, atol=1)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    from PIL import Image

    img = np.zeros((40, 80, 3), np.uint8)
    img[:, :40] = 255  # white on the left half of a landscape image
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(img).save(tmp_path / "r.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "r.jpg")
    assert out.shape == (80, 40, 3)  # displayed as portrait
    assert out[:40].mean() > 200 and out[40:].mean() < 50  # left half ends up on top


def test_bad_images(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no such file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "junk.png").write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match="not a readable image"):
        load_image(tmp_path / "junk.png")
    good = save_image(tmp_path / "good.jpg", _pattern(128, 128)).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    with pytest.raises(MediaError, match="corrupt or truncated"):
        load_image(tmp_path / "cut.jpg")
    with pytest.raises(MediaError, match="directory"):
        load_image(tmp_path)
    assert issubclass(MediaError, ValueError)
    with pytest.raises(MediaError, match="extension"):
        save_image(tmp_path / "x.gifx", _pattern())


def _moving_square(n: int, h: int, w: int) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        f = np.full((h, w, 3), 30, np.uint8)
        f[10:26, 4 + 3 * i : 20 + 3 * i] = (230, 60, 40)
        frames.append(f)
    return frames


def test_video_round_trip(tmp_path: Path) -> None:
    frames = _moving_square(12, 64, 96)
    path = tmp_path / "sub" / "clip.mp4"
    with VideoWriter(path, 25, (96, 64)) as w:
        for f in frames:
            w.write(f)
    assert w.frames_written == 12 and path.stat().st_size > 0
    with VideoReader(path) as r:
        assert r.fps == pytest.approx(25.0) and r.size == (96, 64) and r.frame_count == 12
        back = list(r)
    assert len(back) == 12
    for a, b in zip(frames, back):
        assert b.shape == a.shape and np.abs(a.astype(int) - b).mean() < 6
    # the square is where it was written (colour survives yuv420p within a few levels)
    assert back[5][18, 25:30].mean(0) == pytest.approx([230, 60, 40], abs=25)
    assert read_frames(path, max_frames=4).shape == (4, 64, 96, 3)
    with VideoReader(path) as r:
        one = [r.read() for _ in range(13)]
    assert all(f is not None for f in one[:12]) and one[12] is None
    np.testing.assert_array_equal(one[3], back[3])


def test_video_writer_odd_size_and_fractional_fps(tmp_path: Path) -> None:
    frames = _moving_square(5, 33, 47)
    with VideoWriter(tmp_path / "odd.mp4", 29.97, (47, 33)) as w:
        for f in frames:
            w.write(f)
        with pytest.raises(ValueError, match="expects uint8"):
            w.write(np.zeros((32, 47, 3), np.uint8))
        with pytest.raises(ValueError, match="expects uint8"):
            w.write(frames[0].astype(np.float32))
    with pytest.raises(RuntimeError, match="closed"):
        w.write(frames[0])
    with VideoReader(tmp_path / "odd.mp4") as r:
        assert r.size == (48, 34) and r.fps == pytest.approx(29.97, abs=0.01)
        back = list(r)
    assert len(back) == 5 and np.abs(back[2][:33, :47].astype(int) - frames[2]).mean() < 6


def test_bad_videos(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no such file"):
        VideoReader(tmp_path / "nope.mp4")
    (tmp_path / "junk.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError):
        VideoReader(tmp_path / "junk.mp4")
    save_image(tmp_path / "still.png", _pattern())
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    with pytest.raises(MediaError):
        read_frames(tmp_path / "text.mp4")
    # a truncated real file: either refused on open or yields only what survived, never garbage shapes
    with VideoWriter(tmp_path / "full.mp4", 25, (64, 48)) as w:
        for f in _moving_square(20, 48, 64):
            w.write(f)
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    try:
        frames = read_frames(tmp_path / "cut.mp4")
    except MediaError as exc:
        assert "cut.mp4" in str(exc)
    else:
        assert frames.shape[1:] == (48, 64, 3) and len(frames) < 20
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "x.mp4", 0, (64, 48))


def test_camera_index_that_does_not_exist() -> None:
    with pytest.raises(MediaError, match="camera 57"):
        VideoReader(57)


@pytest.mark.shared
def test_real_clip(shared_dir: Path) -> None:
    path = shared_dir / "data" / "driving" / "d3.mp4"
    with VideoReader(path) as r:
        assert r.size == (512, 512) and r.fps == pytest.approx(30.0) and r.frame_count > 100
        first = next(iter(r))
    assert first.shape == (512, 512, 3) and first.dtype == np.uint8 and first.std() > 10
    assert read_frames(path, max_frames=3).shape == (3, 512, 512, 3)
