"""The generator contracts: StyleGAN2 and FaceWorld are Generators, only FaceWorld has ground truth."""

from __future__ import annotations

import pytest
import torch

from engine.generators import Generator, GroundTruth, require_ground_truth
from engine.generators.faceworld import FaceWorld, FaceWorldConfig
from engine.generators.stylegan2 import Generator as StyleGAN2


@pytest.fixture(scope="module")
def stylegan2() -> StyleGAN2:
    return StyleGAN2(z_dim=32, c_dim=0, w_dim=32, img_resolution=16, channel_base=256, channel_max=32).eval()


@pytest.fixture(scope="module")
def faceworld() -> FaceWorld:
    return FaceWorld(config=FaceWorldConfig(resolution=64, stats_samples=4096, cache_stats=False))


def test_both_generators_satisfy_the_protocol(stylegan2: StyleGAN2, faceworld: FaceWorld) -> None:
    assert isinstance(stylegan2, Generator)
    assert isinstance(faceworld, Generator)
    assert isinstance(faceworld, GroundTruth)
    assert not isinstance(stylegan2, GroundTruth)


def test_an_object_without_synthesis_is_no_generator(stylegan2: StyleGAN2) -> None:
    class MappingOnly:
        z_dim = w_dim = num_ws = img_resolution = 1
        c_dim = 0
        w_avg = torch.zeros(1)

        def mapping(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0) -> torch.Tensor:
            return z

    assert not isinstance(MappingOnly(), Generator)
    assert not isinstance(stylegan2.mapping, Generator)


def test_require_ground_truth(stylegan2: StyleGAN2, faceworld: FaceWorld) -> None:
    assert require_ground_truth(faceworld, "the check") is faceworld
    with pytest.raises(TypeError, match=r"the check needs a generator with ground truth \(FaceWorld\); Generator has"):
        require_ground_truth(stylegan2, "the check")


def test_ground_truth_stages_refuse_stylegan2(stylegan2: StyleGAN2) -> None:
    from engine.evaluation.directions import CheckConfig, check_directions
    from engine.evaluation.faceworld import appearance_error

    ws = stylegan2.mapping(torch.randn(2, 32), None)
    with pytest.raises(TypeError, match="appearance error needs a generator with ground truth"):
        appearance_error(stylegan2, ws, ws)
    with pytest.raises(TypeError, match="needs a generator with ground truth"):
        check_directions(stylegan2, torch.zeros(1, stylegan2.num_ws, 32), CheckConfig(sources=2, stats_samples=8))
