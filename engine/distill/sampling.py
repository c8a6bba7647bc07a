"""Rendering + landmark detection in batches, and resumable sample shards (the CluDistiller's first two steps).

A :class:`LandmarkRenderer` turns latents into landmarks: ``ws [N, num_ws, w_dim] -> points [N, 78, 2], found [N]``
(the 78-point face set of ``engine.landmarks.schema``: iBUG-68 + 10 iris points, in pixels of the detection
image). :func:`sample_shards` draws z ~ N(0, I) batch by batch, keeps ws (as z, re-mapped on load) and landmarks,
and writes one safetensors shard per batch so an interrupted run resumes at the first missing shard.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.latent.mapping import generator_device, map_z, shard_z

if TYPE_CHECKING:  # pragma: no cover
    from engine.landmarks.base import LandmarkDetector


@dataclass
class SamplingConfig:
    """How the CluDistiller samples the generator."""

    samples: int = 4000  # number of z drawn (undetected ones are dropped afterwards)
    batch: int = 64  # samples per shard
    seed: int = 0
    truncation_psi: float = 1.0
    detect_size: int = 0  # downsample renders to this side before detection (0 = native resolution)
    keep_images: bool = False  # also keep the (detection-size) images in the shards


class LandmarkRenderer:
    """Render latents and detect the 78-point face set with mediapipe.

    Args:
        generator: any generator with the StyleGAN2 interface.
        detect_size: side of the image given to the detector (0 = the generator's output resolution).
        detector: a ``engine.landmarks`` detector (default: a static-image mediapipe detector, owned and closed here).
    """

    def __init__(
        self, generator: torch.nn.Module, detect_size: int = 0, detector: LandmarkDetector | None = None
    ) -> None:
        self.generator = generator
        self.detect_size = int(detect_size)
        self._own = detector is None
        if detector is None:
            from engine.landmarks import create_detector

            detector = create_detector("mediapipe", video_mode=False)
        self.detector: LandmarkDetector = detector
        self.device = generator_device(generator)

    @torch.no_grad()
    def render(self, ws: torch.Tensor) -> np.ndarray:
        """ws [N, num_ws, w_dim] -> uint8 RGB [N, s, s, 3] at the detection size."""
        from engine.media import to_uint8

        img = self.generator.synthesis(ws.to(self.device), noise_mode="const")
        if self.detect_size and img.shape[-1] > self.detect_size:
            img = torch.nn.functional.interpolate(
                img.float(), size=(self.detect_size, self.detect_size), mode="bilinear", antialias=True
            )
        return to_uint8(img)

    def detect(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images [N, H, W, 3] -> (points [N, 78, 2] float32 pixels, found [N] bool)."""
        from engine.landmarks import schema

        pts = np.zeros((len(images), schema.NUM_FACE_POINTS, 2), np.float32)
        found = np.zeros(len(images), bool)
        for i, d in enumerate(self.detector.detect_many(list(images))):
            if d.found:
                pts[i] = schema.to_face(np.asarray(d.points, np.float32))
                found[i] = True
        return pts, found

    def mesh(self, ws: torch.Tensor, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """ws [N, num_ws, w_dim] -> (the detector's whole point set with depth [N, K, 3] (x, y, z in detection
        pixels), found [N]). Needs a detector that estimates depth (mediapipe); raises RuntimeError otherwise."""
        k = int(self.detector.num_points)
        pts = np.zeros((len(ws), k, 3), np.float32)
        found = np.zeros(len(ws), bool)
        for start in range(0, len(ws), batch):
            for i, d in enumerate(self.detector.detect_many(list(self.render(ws[start : start + batch])))):
                if not d.found:
                    continue
                if d.depth is None:
                    raise RuntimeError(f"the {self.detector.name} detector estimates no depth")
                pts[start + i] = np.concatenate([d.points, d.depth[:, None]], 1)
                found[start + i] = True
        return pts, found

    def landmarks(self, ws: torch.Tensor, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """ws [N, num_ws, w_dim] -> (points [N, 78, 2], found [N]) rendered and detected in batches."""
        pts, found = [], []
        for i in range(0, ws.shape[0], batch):
            p, f = self.detect(self.render(ws[i : i + batch]))
            pts.append(p)
            found.append(f)
        if not pts:
            return np.zeros((0, 78, 2), np.float32), np.zeros(0, bool)
        return np.concatenate(pts), np.concatenate(found)

    def close(self) -> None:
        if self._own:
            self.detector.close()

    def __enter__(self) -> LandmarkRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Samples:
    """Kept samples: ws [N, num_ws, w_dim], points [N, 78, 2] (detected only), plus how many were dropped."""

    ws: torch.Tensor
    points: np.ndarray
    drawn: int
    dropped: int
    images: np.ndarray | None = None


def sample_shards(
    generator: torch.nn.Module, out_dir: str | Path, config: SamplingConfig, renderer: LandmarkRenderer | None = None,
    progress: bool = True,
) -> Samples:
    """Draw ``config.samples`` latents, render, detect; shards in ``out_dir/samples/`` (resumable).

    Returns the kept (detected) samples.
    """
    from safetensors.numpy import load_file, save_file
    from tqdm import tqdm

    folder = Path(out_dir) / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    cfg_file = folder / "sampling.json"
    cfg_doc = asdict(config)
    if cfg_file.exists():
        old = json.loads(cfg_file.read_text())
        for key in ("seed", "batch", "truncation_psi", "detect_size"):
            if old.get(key) != cfg_doc[key]:
                raise ValueError(f"{folder} was sampled with {key}={old.get(key)}, not {cfg_doc[key]}: use a new --out")
    cfg_file.write_text(json.dumps(cfg_doc, indent=1))
    n_shards = (config.samples + config.batch - 1) // config.batch
    own = renderer is None
    renderer = renderer or LandmarkRenderer(generator, detect_size=config.detect_size)
    zs, pts, found, imgs = [], [], [], []
    try:
        for s in tqdm(range(n_shards), desc="sampling", unit="shard", disable=not progress):
            n = min(config.batch, config.samples - s * config.batch)
            path = folder / f"shard_{s:05d}.safetensors"
            z = shard_z(generator, config.seed, s, n)
            if path.exists():
                data = load_file(str(path))
            else:
                ws = map_z(generator, z, config.truncation_psi)
                images = renderer.render(ws)
                p, f = renderer.detect(images)
                data = {"z": z.numpy(), "points": p, "found": f.astype(np.uint8)}
                if config.keep_images:
                    data["images"] = images
                tmp = path.with_suffix(".tmp")
                save_file(data, str(tmp))
                tmp.replace(path)
            zs.append(torch.from_numpy(data["z"]))
            pts.append(data["points"])
            found.append(data["found"].astype(bool))
            if config.keep_images and "images" in data:
                imgs.append(data["images"])
    finally:
        if own:
            renderer.close()
    z = torch.cat(zs)
    ok = np.concatenate(found)
    ws = map_z(generator, z[torch.from_numpy(ok)], config.truncation_psi)
    images = np.concatenate(imgs)[ok] if imgs else None
    return Samples(ws=ws, points=np.concatenate(pts)[ok], drawn=int(len(ok)), dropped=int((~ok).sum()), images=images)
