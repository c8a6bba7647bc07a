"""FaceWorld: interface, determinism, latent semantics, real mediapipe on renders, gradients and ONNX export."""

from __future__ import annotations

import pytest
import torch

from engine.generators import load_generator, to_uint8
from engine.generators.faceworld import FaceWorld


@pytest.fixture(scope="module")
def fw() -> FaceWorld:
    return load_generator("faceworld", resolution=128)


def test_interface_shapes(fw: FaceWorld) -> None:
    assert (fw.z_dim, fw.w_dim, fw.num_ws, fw.c_dim, fw.img_resolution) == (512, 512, 14, 0, 128)
    assert fw.w_avg.shape == (512,)
    z = torch.randn(3, 512, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ws = fw.mapping(z)
        img = fw.synthesis(ws, noise_mode="const")
    assert ws.shape == (3, 14, 512)
    assert img.shape == (3, 3, 128, 128)
    assert img.min() >= -1 and img.max() <= 1
    assert to_uint8(img).shape == (3, 128, 128, 3)
    params = fw.decode(ws)
    assert set(fw.ACTION_PARAMS) <= set(params) and set(fw.IDENTITY_PARAMS) <= set(params)
    assert all(v.shape == (3,) for v in params.values())
    kp = fw.keypoints(ws)
    assert {"eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right", "chin"} <= set(kp)
    assert all(v.shape == (3, 2) for v in kp.values())


def test_deterministic_across_instances(fw: FaceWorld) -> None:
    other = FaceWorld(resolution=128, seed=0)
    assert torch.equal(other.w_avg, fw.w_avg)
    assert torch.equal(other.proj, fw.proj)
    different = FaceWorld(resolution=128, seed=1)
    assert not torch.allclose(different.proj, fw.proj)


def test_bad_input_is_rejected(fw: FaceWorld) -> None:
    with pytest.raises(ValueError, match="z of shape"):
        fw.mapping(torch.zeros(2, 7))
    with pytest.raises(ValueError, match="ws of shape"):
        fw.synthesis(torch.zeros(2, 3, 512))
