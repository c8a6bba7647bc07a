"""Inversion on a real FaceWorld render with real mediapipe (FaceWorld's decode is the ground truth)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def fw():
    from engine.generators import load_generator

    return load_generator("faceworld")


@pytest.fixture(scope="module")
def target(fw):
    from engine.generators import to_uint8

    z = torch.randn(1, fw.z_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ws = fw.mapping(z, None, truncation_psi=0.7)
        return ws, to_uint8(fw.synthesis(ws))[0]


def test_inversion_converges_on_a_render(fw, target) -> None:
    from engine.inversion import InversionConfig, invert
    from engine.metrics import param_error

    ws_true, image = target
    calls: list[tuple[int, int, float]] = []
    cfg = InversionConfig(init_candidates=8, lm_gn_iters=3, lm_basis=12, landmark_every=10)
    res = invert(fw, image, steps=40, config=cfg, progress=lambda i, n, loss: calls.append((i, n, loss)))
    assert res.ws.shape == (1, fw.num_ws, fw.w_dim)
    assert res.image.shape == image.shape and res.image.dtype == np.uint8
    assert [c[0] for c in calls] == list(range(1, 41)) and calls[0][1] == 40
    assert res.losses[-1] < res.losses[0]
    # landmarks close to the target's, pose recovered much better than the average face
    assert res.landmark_nme is not None and res.landmark_nme < 0.05
    w_avg = fw.w_avg.expand(1, fw.num_ws, fw.w_dim)
    pose = ("yaw", "pitch", "roll")
    assert param_error(fw, res.ws, ws_true, pose) < 0.5 * param_error(fw, w_avg, ws_true, pose)
    assert param_error(fw, res.ws, ws_true, pose) < 0.08
    # pixels: far closer to the target than the average face
    err = np.abs(res.image.astype(int) - image).mean()
    with torch.no_grad():
        from engine.generators import to_uint8

        avg = to_uint8(fw.synthesis(w_avg))[0]
    assert err < 0.5 * np.abs(avg.astype(int) - image).mean()


def test_inversion_cancel_and_bad_input(fw, target) -> None:
    from engine.inversion import InversionConfig, invert

    _, image = target
    stop = threading.Event()

    def progress(i: int, n: int, loss: float) -> None:
        if i == 3:
            stop.set()

    cfg = InversionConfig(init_candidates=0, lm_gn_iters=0)
    res = invert(fw, image, steps=50, config=cfg, landmarks=False, progress=progress, cancel=stop)
    assert res.cancelled and res.steps_run == 3 and len(res.losses) == 3
    with pytest.raises(ValueError, match="RGB uint8"):
        invert(fw, image.astype(np.float32), steps=1)


def test_pivotal_tuning_on_faceworld_is_a_clear_no_op(fw, target) -> None:
    from engine.inversion import InversionConfig, invert

    _, image = target
    cfg = InversionConfig(init_candidates=0, lm_gn_iters=0)
    res = invert(fw, image, steps=2, config=cfg, landmarks=False, pivotal_tuning=True)
    assert res.generator is None
    assert any("pivotal tuning skipped" in n for n in res.notes)
