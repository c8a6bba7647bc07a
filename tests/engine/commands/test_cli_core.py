"""d2a animate / eval / demo / invert end to end: real FaceWorld, real mediapipe, the real default bundle, real mp4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.resources import default_bundle_dir, samples_dir

DRIVING = samples_dir() / "driving.mp4"
needs_bundle = pytest.mark.skipif(
    not (default_bundle_dir() / "bundle.json").is_file(),
    reason="the embedded default bundle (resources/models/faceworld) has not been trained yet",
)


def _run(args: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    return res.exit_code, res.output


@needs_bundle
def test_animate_writes_decodable_mp4(tmp_path: Path) -> None:
    from engine.media import VideoReader

    out = tmp_path / "out.mp4"
    code, text = _run(["animate", "--source", "seed:3", "--driving", str(DRIVING), "--out", str(out),
                       "--max-frames", "12", "--side-by-side"])
    assert code == 0, text
    with VideoReader(out) as r:
        frames = list(r)
    assert len(frames) == 12
    assert frames[0].shape == (256, 512, 3)  # driver | output
    # the output half moves with the driver: the clip holds still for 6 frames, then turns the head
    diffs = [np.abs(f[:, 256:].astype(int) - frames[0][:, 256:]).mean() for f in frames[1:]]
    assert max(diffs[5:]) > 1.0 and max(diffs[5:]) > 2 * max(diffs[:5]), diffs  # measured 3.86 vs 0.55


@needs_bundle
def test_animate_image_folder_and_interpolation(tmp_path: Path) -> None:
    from engine.media import read_frames, save_image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(read_frames(DRIVING, 3)):
        save_image(folder / f"{i:03d}.png", f)
    out = tmp_path / "out.mp4"
    code, text = _run(["animate", "--source", "seed:5", "--driving", str(folder), "--out", str(out),
                       "--interpolate", "1", "--mode", "absolute"])
    assert code == 0, text
    assert len(read_frames(out)) == 6  # one in-between per frame


def test_animate_unreadable_driving_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    code, text = _run(["animate", "--source", "seed:3", "--driving", str(bad), "--out", str(tmp_path / "o.mp4")])
    assert code != 0
    assert "broken.mp4" in text and "not a readable video" in text


def test_animate_missing_driving_file(tmp_path: Path) -> None:
    code, text = _run(["animate", "--source", "seed:3", "--driving", str(tmp_path / "nope.mp4"),
                       "--out", str(tmp_path / "o.mp4")])
    assert code != 0 and "no such file" in text


@needs_bundle
def test_animate_no_face_video(tmp_path: Path) -> None:
    from engine.media import VideoWriter

    clip = tmp_path / "wall.mp4"
    with VideoWriter(clip, 25, (128, 128)) as w:
        for i in range(6):
            w.write(np.full((128, 128, 3), 90 + 10 * i, np.uint8))
    out = tmp_path / "o.mp4"
    code, text = _run(["animate", "--source", "seed:3", "--driving", str(clip), "--out", str(out)])
    assert code != 0
    assert "no face found in the first 6 frames" in text
    assert not out.exists()


@needs_bundle
def test_eval_json_keys_and_self_driving_beats_baseline(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    code, text = _run(["eval", "--json", str(out), "--pairs", "3", "--sequence-frames", "6"])
    assert code == 0, text
    res = json.loads(out.read_text())
    for group, keys in {
        "self_driving": ("nme", "nme_no_motion"),
        "cross_identity": ("nme", "nme_no_motion", "appearance_error"),
        "sequence": ("nme", "jitter"),
    }.items():
        for k in keys:
            assert isinstance(res[group][k], float), (group, k, res[group])
    sd = res["self_driving"]
    assert sd["n"] >= 2
    assert sd["nme"] < 0.5 * sd["nme_no_motion"]
    assert res["cross_identity"]["appearance_error"] < 0.05


@needs_bundle
def test_demo_writes_video(tmp_path: Path) -> None:
    from engine.media import read_frames

    out = tmp_path / "demo.mp4"
    code, text = _run(["demo", "--out", str(out), "--max-frames", "4"])
    assert code == 0, text
    assert read_frames(out).shape == (4, 256, 512, 3)


@pytest.mark.slow
def test_invert_command(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "ws.safetensors"
    code, text = _run(["invert", "--image", str(samples_dir() / "source.png"), "--out", str(out),
                       "--steps", "5", "--candidates", "0", "--no-landmarks"])
    assert code == 0, text
    assert tuple(load_file(str(out))["ws"].shape) == (1, 14, 512)
