"""The Animator on the real default bundle, real FaceWorld and real mediapipe (FaceWorld's decode is the judge)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.resources import default_bundle_dir, samples_dir

pytestmark = pytest.mark.skipif(
    not (default_bundle_dir() / "bundle.json").is_file(),
    reason="the embedded default bundle (resources/models/faceworld) has not been trained yet",
)


@pytest.fixture(scope="module")
def anim():
    from engine.animate import Animator

    a = Animator()  # the embedded default bundle
    yield a
    a.close()


@pytest.fixture(scope="module")
def drivers() -> dict[str, np.ndarray]:
    """Driver landmarks from the bundled FaceWorld clip: neutral, head turned, mouth open."""
    import json

    from engine.landmarks import create_detector
    from engine.media import read_frames

    frames = read_frames(samples_dir() / "driving.mp4")
    plan = json.loads((samples_dir() / "driving.json").read_text())["script"]
    yaw_t = int(np.argmax([p.get("yaw", 0.0) for p in plan]))
    jaw_t = int(np.argmax([p.get("jaw_open", 0.0) for p in plan]))
    det = create_detector("mediapipe")
    out = {name: det.detect(frames[t]).points for name, t in (("neutral", 0), ("yaw", yaw_t), ("jaw", jaw_t))}
    det.close()
    return out


@pytest.fixture(scope="module")
def source_ws() -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(samples_dir() / "source_ws.safetensors"))["ws"]


def _params(anim) -> dict[str, float]:
    with torch.no_grad():
        return {k: float(v[0]) for k, v in anim.generator.decode(anim.last_ws).items()}


def _reset(anim, source_ws, drivers, **cfg) -> None:
    from engine.animate import AnimatorConfig

    anim.config = AnimatorConfig(**cfg)
    anim.reset_sliders()
    anim.set_source(source_ws)
    anim.calibrate(drivers["neutral"])


def test_output_follows_the_driver(anim, source_ws, drivers) -> None:
    _reset(anim, source_ws, drivers)
    neutral = anim.step(drivers["neutral"])
    p0 = _params(anim)
    assert neutral.shape == anim.source_image.shape and neutral.dtype == np.uint8
    jaw = anim.step(drivers["jaw"])
    p_jaw = _params(anim)
    assert np.abs(jaw.astype(int) - neutral).mean() > 0.5
    assert p_jaw["jaw_open"] - p0["jaw_open"] > 0.2
    anim.step(drivers["yaw"])
    assert abs(_params(anim)["yaw"] - p0["yaw"]) > 0.15


def test_none_keeps_the_last_output(anim, source_ws, drivers) -> None:
    _reset(anim, source_ws, drivers)
    last = anim.step(drivers["jaw"])
    assert np.array_equal(anim.step(None), last)
    frame, timings = anim.step_timed(None)
    assert np.array_equal(frame, last)
    _, timings = anim.step_timed(drivers["neutral"])
    assert set(timings) >= {"align+heatmaps", "fan", "generator", "convert", "total"}


def test_calibration_changes_the_output(anim, source_ws, drivers) -> None:
    _reset(anim, source_ws, drivers)
    a = anim.step(drivers["jaw"])
    anim.calibrate(drivers["jaw"])  # the open mouth becomes "neutral": no motion left
    b = anim.step(drivers["jaw"])
    assert np.abs(a.astype(int) - b).mean() > 0.5
    assert np.abs(b.astype(int) - anim.source_image).mean() < np.abs(a.astype(int) - anim.source_image).mean()


def test_auto_calibrate_prefers_a_neutral_frame(anim, source_ws, drivers) -> None:
    _reset(anim, source_ws, drivers)
    anim.auto_calibrate([drivers["jaw"], drivers["neutral"], drivers["yaw"]])
    assert np.array_equal(anim.reference_points, drivers["neutral"])


def test_region_toggle_freezes_that_region(anim, source_ws, drivers) -> None:
    _reset(anim, source_ws, drivers)
    src = {k: float(v[0]) for k, v in anim.generator.decode(anim.source_ws).items()}
    anim.step(drivers["jaw"])
    on = _params(anim)["jaw_open"] - src["jaw_open"]
    anim.config.regions["mouth"] = False
    anim.step(drivers["jaw"])
    off = _params(anim)["jaw_open"] - src["jaw_open"]
    assert on > 0.2 and abs(off) < 0.25 * on
    anim.config.regions["mouth"] = True
    anim.config.regions["pose"] = False
    anim.step(drivers["yaw"])
    yaw_off = abs(_params(anim)["yaw"] - src["yaw"])
    anim.config.regions["pose"] = True
    anim.step(drivers["yaw"])
    yaw_on = abs(_params(anim)["yaw"] - src["yaw"])
    # head-turn cues survive partly in the unposed eyes/lips (parallax): 34-50 % of the turn was left on this clip
    # before dw_expr lost the bank's top pose axes; now 2.7 % (embedded bundle, RESULTS.md, 'Pose split'), 18 % without
    assert yaw_on > 0.15 and yaw_off < 0.25 * yaw_on


def test_gains_scale_the_motion(anim, source_ws, drivers) -> None:
    _reset(anim, source_ws, drivers, expr_gain=0.0)
    src = float(anim.generator.decode(anim.source_ws)["jaw_open"][0])
    anim.step(drivers["jaw"])
    zero = _params(anim)["jaw_open"] - src
    anim.config.expr_gain = 1.0
    anim.step(drivers["jaw"])
    one = _params(anim)["jaw_open"] - src
    assert one > 0.2 and abs(zero) < 0.25 * one


def test_sliders_move_the_output(anim, source_ws, drivers) -> None:
    _reset(anim, source_ws, drivers)
    base = anim.step(drivers["neutral"])
    anim.sliders[0] = 1.0
    moved = anim.step(drivers["neutral"])
    assert np.abs(moved.astype(int) - base).mean() > 0.5
    anim.reset_sliders()
    assert np.array_equal(anim.step(drivers["neutral"]), base)


def test_localised_sliders_move_only_their_region(anim, source_ws, drivers) -> None:
    """The brow sliders, localised around the source (default), raise the brows as much as the raw directions but
    change the face's identity shape far less (FaceWorld's decode scores it). The embedded bank is distilled with
    --localise already, so each brow direction is given the face-shape change that a plain centroid difference
    carries (one natural std of face width, outside the brows) before it is used."""
    fw = anim.generator
    names = fw.IDENTITY_GEOMETRY_PARAMS
    brows = [i for i, d in enumerate(anim.bundle.directions_info) if d.get("region") == "brows"]
    assert brows
    # one std of face width along its read-out axis (score(ws) = <ws - w_avg, proj> / score_std); unlike
    # test_inversion's _shift_scores it does not hold the other scores fixed, as a centroid difference would not
    j = fw.PARAM_NAMES.index("face_width")
    axis = fw.proj[j]  # [num_ws, w_dim]
    pollution = (axis / axis.pow(2).sum() * fw.score_std[j]).to(anim.directions.dtype)
    original = anim.directions.clone()
    change = {}
    try:
        anim.directions[brows] = anim.directions[brows] + pollution
        for localise in (False, True):
            _reset(anim, source_ws, drivers, localise_sliders=localise)
            anim.step(drivers["neutral"])
            p0 = _params(anim)
            ident = brow = 0.0
            for i in brows:
                anim.sliders = {i: 1.0}
                anim.step(drivers["neutral"])
                p = _params(anim)
                ident += float(np.mean([abs(p[k] - p0[k]) for k in names]))
                brow += abs(p["brow_raise"] - p0["brow_raise"])
            change[localise] = (ident, brow)
    finally:
        anim.directions.copy_(original)
        anim.reset_sliders()
    # measured (embedded bundle, summed over its 5 brow sliders): identity 0.496 -> 0.340, brow raise 1.73 -> 1.76;
    # without the added face width 0.116 -> 0.107 (the bank is localised already). On a bank whose brow directions
    # are not localised the same test gave 0.239 -> 0.085 (RESULTS.md, 'Per-region sliders')
    assert change[True][0] < 0.8 * change[False][0], change
    assert change[True][1] > 0.8 * change[False][1], change


def test_relative_and_absolute_differ(anim, source_ws, drivers) -> None:
    _reset(anim, source_ws, drivers, mode="relative")
    rel = anim.step(drivers["jaw"])
    anim.config.mode = "absolute"
    ab = anim.step(drivers["jaw"])
    assert np.abs(rel.astype(int) - ab).mean() > 0.5


def test_disentangled_driving(anim, source_ws, drivers) -> None:
    _reset(anim, source_ws, drivers)
    src = {k: float(v[0]) for k, v in anim.generator.decode(anim.source_ws).items()}
    anim.drive_disentangled(drivers["yaw"], drivers["jaw"])  # pose from one driver, expression from the other
    p = _params(anim)
    assert abs(p["yaw"] - src["yaw"]) > 0.15
    assert p["jaw_open"] - src["jaw_open"] > 0.2
    anim.drive_disentangled(drivers["neutral"], drivers["jaw"])
    assert abs(_params(anim)["yaw"] - src["yaw"]) < 0.1


def test_interpolation_yields_in_between_frames(anim, source_ws, drivers) -> None:
    _reset(anim, source_ws, drivers, interpolate=2)
    anim.step(drivers["neutral"])
    frames = anim.step_frames(drivers["jaw"])
    assert len(frames) == 3
    d1 = np.abs(frames[0].astype(int) - frames[2]).mean()
    d2 = np.abs(frames[1].astype(int) - frames[2]).mean()
    assert d1 > d2 > 0


def test_bad_input_is_rejected(anim, source_ws) -> None:
    from engine.animate import AnimatorConfig

    with pytest.raises(ValueError):
        AnimatorConfig(mode="sideways").validate()
    anim.config = AnimatorConfig()
    anim.set_source(source_ws)
    with pytest.raises(ValueError):
        anim.step(np.zeros((5, 2), np.float32))
    with pytest.raises(ValueError):
        anim.set_source(np.zeros((10, 10), np.uint8))
