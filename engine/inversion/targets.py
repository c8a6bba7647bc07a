"""The target and the data terms every phase scores against.

* **Pixel pyramid**: mean squared error at full resolution and at 2x-16x average-pooled ones; the coarse levels
  give a wide basin for head pose and face shape, the fine levels the details.
* **Region loss**: the expressive features are small (an eye is ~10 px wide at 256²) and hardly count in a
  full-image MSE, so a pixel loss on boxes around the target's eyes, brows and mouth, each weighted equally and
  compared at several blur levels so that a feature off by more than its size still gets a gradient.
* **Regularisers** toward w̄ and toward the mean of the layer codes keep the code in the well-behaved part of W+.

No perceptual loss: LPIPS/VGG weights are not available offline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from engine.inversion.config import InversionConfig


def prepare_target(image: np.ndarray, resolution: int, device: Any) -> torch.Tensor:
    """RGB uint8 [H, W, 3] -> [1, 3, resolution, resolution] in [-1, 1] (centre-cropped to a square, resized)."""
    import torch
    import torch.nn.functional as F

    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        kind = getattr(image, "dtype", type(image))
        raise ValueError(f"invert needs an RGB uint8 image [H, W, 3], got {kind} {shape}")
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    h, w = x.shape[-2:]
    if h != w:
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        x = x[..., top : top + s, left : left + s]
    if x.shape[-1] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
    return x


def pyramid_loss(img: torch.Tensor, target: torch.Tensor, scales: tuple[int, ...],
                 weights: tuple[float, ...]) -> torch.Tensor:
    """Sum over pyramid levels of the MSE between average-pooled images [N, 3, H, W]."""
    return pyramid_residuals(img, target, scales, weights).pow(2).sum(1).mean()


def pyramid_residuals(img: torch.Tensor, target: torch.Tensor, scales: tuple[int, ...],
                      weights: tuple[float, ...]) -> torch.Tensor:
    """The pyramid loss as a residual vector per image: [N, R] whose squared norm is that image's pyramid loss."""
    import torch
    import torch.nn.functional as F

    parts = []
    for s, w in zip(scales, weights):
        a, b = (img, target) if s == 1 else (F.avg_pool2d(img, s), F.avg_pool2d(target, s))
        d = (a - b).flatten(1)
        parts.append(d * (w / d.shape[1]) ** 0.5)
    return torch.cat(parts, 1)


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of images [N, C, H, W] (std ``sigma`` pixels, reflect padding); sigma <= 0: identity."""
    import torch
    import torch.nn.functional as F

    if sigma <= 0:
        return img
    r = max(1, int(np.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=img.dtype, device=img.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = img.shape[1]
    out = F.pad(img, (r, r, r, r), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def region_boxes() -> dict[str, list[np.ndarray]]:
    """The boxes of the region loss by region: the points (indices into the 478-point mesh) of each box, one per
    eye (lids and iris), one per brow, one for the mouth."""
    from engine.landmarks import schema
    from engine.landmarks.schema import IBUG68, Region

    return {
        Region.EYE_RIGHT: [np.concatenate([IBUG68[schema.IBUG_RIGHT_EYE], schema.RIGHT_IRIS])],
        Region.EYE_LEFT: [np.concatenate([IBUG68[schema.IBUG_LEFT_EYE], schema.LEFT_IRIS])],
        Region.BROWS: [IBUG68[schema.IBUG_RIGHT_BROW], IBUG68[schema.IBUG_LEFT_BROW]],
        Region.MOUTH: [IBUG68[schema.IBUG_REGIONS[Region.MOUTH]]],
    }


class RegionLoss:
    """Pixel loss concentrated on the target's eyes, brows and mouth, at several blur levels.

    The regions are boxes around the target's detected landmarks (fixed during the optimisation), widened by
    ``pad`` inter-ocular distances plus 1.5 blur sigmas; every region weighs the same whatever its area, so a
    10-pixel eye counts as much as the mouth. Blurring both images widens the basin: an iris that is off by more
    than its radius still overlaps its blurred target. ``loss(img)``: img [1, 3, H, W] -> scalar (mean over regions
    and blur levels of the region-weighted mean squared error).
    """

    def __init__(self, target: torch.Tensor, points_478: np.ndarray, blurs: tuple[float, ...], pad: float) -> None:
        import torch

        from engine.landmarks.geometry import interocular

        res = target.shape[-1]
        pts = np.asarray(points_478, np.float64)
        iod = max(interocular(pts), 1.0)
        yy, xx = torch.meshgrid(torch.arange(res, dtype=torch.float32) + 0.5,
                                torch.arange(res, dtype=torch.float32) + 0.5, indexing="ij")
        boxes = [idx for group in region_boxes().values() for idx in group]
        self.levels: list[tuple[float, torch.Tensor, torch.Tensor]] = []  # (sigma px, weight map, blurred target)
        for b in blurs:
            sigma = float(b) * res / 256.0
            m = pad * iod + 1.5 * sigma
            total = torch.zeros(res, res)
            for idx in boxes:
                q = pts[idx]
                x0, y0 = q.min(0) - m
                x1, y1 = q.max(0) + m
                box = (torch.sigmoid(xx - float(x0)) * torch.sigmoid(float(x1) - xx)
                       * torch.sigmoid(yy - float(y0)) * torch.sigmoid(float(y1) - yy))
                total = total + box / box.sum().clamp(min=1e-6)
            wmap = (total / len(boxes)).to(target.device)[None, None]
            self.levels.append((sigma, wmap, gaussian_blur(target, sigma).detach()))

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return self.residuals(img).pow(2).sum(1).mean()

    def residuals(self, img: torch.Tensor) -> torch.Tensor:
        """The loss as a residual vector per image: [N, R] whose squared norm is that image's region loss."""
        import torch

        n = max(1, len(self.levels))
        return torch.cat([((gaussian_blur(img, sigma) - tb) * (wmap / (img.shape[1] * n)).sqrt()).flatten(1)
                          for sigma, wmap, tb in self.levels], 1)


def data_loss(
    img: torch.Tensor, x: torch.Tensor, target: torch.Tensor, region: RegionLoss | None, cfg: InversionConfig,
    w_avg: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixel pyramid + regularisers + region loss, pixel pyramid) of one rendering img [1, 3, H, W] of x."""
    pix = pyramid_loss(img, target, cfg.scales, cfg.scale_weights)
    loss = pix + cfg.w_reg * (x - w_avg).pow(2).mean()
    loss = loss + cfg.layer_reg * (x - x.mean(1, keepdim=True)).pow(2).mean()
    if region is not None:
        loss = loss + cfg.region_weight * region(img)
    return loss, pix


def pixel_residuals(img: torch.Tensor, target: torch.Tensor, region: RegionLoss | None,
                    cfg: InversionConfig) -> torch.Tensor:
    """The data terms without the regularisers (pixel pyramid + weighted region loss) as residuals [N, R]."""
    import torch

    r = pyramid_residuals(img, target, cfg.scales, cfg.scale_weights)
    if region is None:
        return r
    return torch.cat([r, region.residuals(img) * cfg.region_weight**0.5], 1)
