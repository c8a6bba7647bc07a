"""A faster, numerically equivalent StyleGAN2 synthesis network for inference (CPU first, exports to ONNX).

``FastSynthesis(generator)`` reads the weights of an ``engine.generators.stylegan2.Generator`` (architecture
``"skip"``, the StyleGAN2 generator) and computes the same image, ``ws [N, num_ws, w_dim] -> img [N, 3, H, W]``,
up to float rounding, with these rewrites (every one exact in real arithmetic):

* **Activation modulation** (no per-sample weights, dynamic batch): ``conv(x * s, W) * d`` with the
  demodulation ``d = rsqrt(s^2 @ sum_kk(W^2)^T + 1e-8)`` from a precomputed ``[O, I]`` table.
* **Fused epilogue**: noise, bias, leaky ReLU gain and clamp become ``clamp(lrelu(conv * d' + nb'))`` with
  ``d' = d * sqrt(2)`` and a precomputed constant ``nb' = (noise_const * strength + bias) * sqrt(2)`` (lrelu is
  positively homogeneous, the gain is > 0).
* **Polyphase upsampling**: the 2x transposed 3x3 convolution followed by the [1,3,3,1] FIR filter is one linear,
  stride-2 operator; its four output phases are four 3x3 convolutions at the *input* resolution, stacked as one
  convolution with ``4 * O`` output channels followed by a pixel shuffle. The same holds for the 2x FIR upsampling
  of the skip image (a depthwise version).
* **Winograd F(4x4, 3x3)** (Lavin & Gray 2016) for 3x3 convolutions with constant weights from a chosen
  resolution on: 2.25 multiplications per output instead of 9, using weight transforms precomputed in float64.
  Input tiles are cut with reshapes and slices only (no ``unfold``), so the graph exports to ONNX.
* ToRGB as a batched matrix product with per-sample modulated 1x1 weights ``[N, 3, I]``.

Per-layer choices are explicit (``FastSynthesisConfig``); nothing falls back silently: an unsupported generator
(``architecture != "skip"``, kernel size != 3, activation != lrelu, FaceWorld) raises ``ValueError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.generators.stylegan2 import Generator as StyleGAN2
from engine.generators.stylegan2 import SynthesisNetwork

UP_MODES = ("phase", "phase-winograd", "transpose")


@dataclass(frozen=True)
class FastSynthesisConfig:
    """How each layer is computed (all choices are exact up to float rounding)."""

    winograd_min_res: int = 32  # 3x3 convs at this output resolution and above use Winograd F(4,3); 0 = never
    winograd_max_res: int = 64  # ... and at most this resolution (large, thin layers are faster as direct convs)
    up_mode: str = "transpose"  # up-convs: "transpose" (+ FIR), "phase" (4 phase convs + pixel shuffle; 4x the
    #                             multiply-adds), "phase-winograd" (phase kernels through Winograd F(4,3))
    up_winograd_min_res: int = 32  # "phase-winograd" only for up-layers whose *input* res >= this/2 ...
    up_winograd_max_res: int = 64  # ... and whose output res <= this; "phase" elsewhere

    def validate(self) -> None:
        """Raise ValueError on an invalid setting."""
        if self.up_mode not in UP_MODES:
            raise ValueError(f"up_mode must be one of {UP_MODES}, got {self.up_mode!r}")
        if self.winograd_min_res < 0 or self.winograd_max_res < 0:
            raise ValueError("winograd resolutions must be >= 0")


# ------------------------------------------------------------------------------------------------ Winograd F(4,3)

_BT = [
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
]
_G = [
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
]
_AT = [
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0],
    [0, 1, -1, 8, -8, 1],
]


def winograd_weight(weight: torch.Tensor) -> torch.Tensor:
    """3x3 kernels [O, I, 3, 3] -> transformed kernels U [36, O, I] (``G g G^T`` per pair, float64 -> float32)."""
    g = torch.tensor(_G, dtype=torch.float64)
    u = g @ weight.double() @ g.t()  # [O, I, 6, 6]
    return u.permute(2, 3, 0, 1).reshape(36, weight.shape[0], weight.shape[1]).float().contiguous()


def winograd_transforms() -> tuple[torch.Tensor, torch.Tensor]:
    """(BB [36, 36], AA [16, 36]): the 2-D input and output transforms as Kronecker products."""
    bt = torch.tensor(_BT, dtype=torch.float64)
    at = torch.tensor(_AT, dtype=torch.float64)
    return torch.kron(bt, bt).float(), torch.kron(at, at).float()


def winograd_tiles(x: torch.Tensor) -> torch.Tensor:
    """x [N, C, H, W] (H, W multiples of 4) -> overlapping 6x6 tiles with stride 4, zero padding 1,
    laid out as [36, C * N * (H/4) * (W/4)] (tile position major). Only pad/reshape/slice/cat/permute."""
    n, c, h, w = x.shape
    th, tw = h // 4, w // 4
    xp = F.pad(x, (1, 3, 1, 3))  # [N, C, 4th+4, 4tw+4]; the extra zero rows/cols are never used
    rows = xp.reshape(n, c, th + 1, 4, w + 4)
    rows = torch.cat([rows[:, :, :th], rows[:, :, 1:, :2]], dim=3)  # [N, C, th, 6, W+4]
    cols = rows.reshape(n, c, th, 6, tw + 1, 4)
    d = torch.cat([cols[..., :tw, :], cols[..., 1:, :2]], dim=5)  # [N, C, th, 6, tw, 6]
    return d.permute(3, 5, 1, 0, 2, 4).reshape(36, -1)


def winograd_conv3x3(x: torch.Tensor, u: torch.Tensor, bb: torch.Tensor, aa: torch.Tensor) -> torch.Tensor:
    """'Same' 3x3 cross-correlation by Winograd F(4x4, 3x3).

    x [N, C, H, W] (H, W multiples of 4); u [36, O, C] from ``winograd_weight`` -> y [36->16, ...] returned as
    the *tile-major* output [4, 4, O, N, H/4, W/4] (the caller interleaves it, see ``untile``).
    """
    n, c, h, w = x.shape
    v = (bb @ winograd_tiles(x)).reshape(36, c, -1)  # [36, C, N*T]
    m = torch.bmm(u, v)  # [36, O, N*T]
    o = u.shape[1]
    return (aa @ m.reshape(36, -1)).reshape(4, 4, o, n, h // 4, w // 4)


def untile(y: torch.Tensor) -> torch.Tensor:
    """[4, 4, O, N, th, tw] -> [N, O, 4th, 4tw]."""
    _, _, o, n, th, tw = y.shape
    return y.permute(3, 2, 4, 0, 5, 1).reshape(n, o, th * 4, tw * 4)


def untile_phases(y: torch.Tensor) -> torch.Tensor:
    """Winograd output of a phase conv [4, 4, O*4, N, th, tw] (channels (o, a, b)) -> [N, O, 8th, 8tw]."""
    _, _, o4, n, th, tw = y.shape
    o = o4 // 4
    y = y.reshape(4, 4, o, 2, 2, n, th, tw)  # (iy, ix, o, a, b, n, ty, tx)
    return y.permute(5, 2, 6, 0, 3, 7, 1, 4).reshape(n, o, th * 8, tw * 8)


# ------------------------------------------------------------------------------------------------ polyphase kernels


def _phase_selector(k: int, fk: int, p0: int) -> torch.Tensor:
    """S[a, e, m, q] = 1 when kernel tap m and filter tap q send input offset e-1 to output phase a.

    1-D model of the official up path: t[2i + m] += x[i] w[m] (transposed conv, stride 2), then
    out[o] = sum_q t[o + q - p0] f'[q] with f' the flipped filter. For o = 2j + a: i = j + (a + q - p0 - m) / 2.
    """
    s = torch.zeros(2, 3, k, fk, dtype=torch.float64)
    for a in range(2):
        for m in range(k):
            for q in range(fk):
                num = a + q - p0 - m
                if num % 2:
                    continue
                e = num // 2 + 1
                if not 0 <= e <= 2:
                    raise ValueError("polyphase rewrite: support exceeds 3 taps for this kernel/filter")
                s[a, e, m, q] = 1.0
    return s


def phase_kernels_up(weight: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Kernels of the 4 output phases of (transposed conv 2x, then FIR with gain 4).

    weight [O, I, 3, 3]; f [fk, fk] the normalised resample filter -> [O*4, I, 3, 3] (channel order (o, a, b)),
    to be used as ``pixel_shuffle(conv2d(x, K, padding=1), 2)``.
    """
    k, fk = int(weight.shape[-1]), int(f.shape[-1])
    p0 = (fk + 1) // 2 + k // 2 - (k - 1)
    p1 = (fk - 2) // 2 + k // 2 - (k - 2)
    if p0 != p1 or k != 3:
        raise ValueError(f"polyphase rewrite supports 3x3 kernels with a symmetric FIR padding (k={k}, f={fk})")
    sel = _phase_selector(k, fk, p0)
    ff = f.double().flip([0, 1]) * 4.0
    kern = torch.einsum("aemq,bfnr,oimn,qr->oabief", sel, sel, weight.double(), ff)  # [O, 2, 2, I, 3, 3]
    o, i = weight.shape[0], weight.shape[1]
    return kern.reshape(o * 4, i, 3, 3).float().contiguous()


def phase_kernels_upsample2d(f: torch.Tensor, channels: int) -> torch.Tensor:
    """Depthwise kernels [C*4, 1, 3, 3] of the official ``upsample2d`` (zero insertion, pad, FIR, gain 4)."""
    fk = int(f.shape[-1])
    pad0 = (fk + 1) // 2  # (fw + up - 1) // 2
    start = fk - 1 - pad0
    # 1-D: y[2i + m] += x[i] f4[m]; out[o] = y[o + start]; o = 2j + a -> i = j + (a + start - m) / 2.
    sel = torch.zeros(2, 3, fk, dtype=torch.float64)
    for a in range(2):
        for m in range(fk):
            num = a + start - m
            if num % 2:
                continue
            e = num // 2 + 1
            if not 0 <= e <= 2:
                raise ValueError("polyphase rewrite of upsample2d: support exceeds 3 taps")
            sel[a, e, m] = 1.0
    kern = torch.einsum("aem,bfn,mn->abef", sel, sel, f.double() * 4.0)  # [2, 2, 3, 3]
    return kern.reshape(1, 4, 3, 3).repeat(channels, 1, 1, 1).reshape(channels * 4, 1, 3, 3).float()


# ------------------------------------------------------------------------------------------------ layers


class _Affine(nn.Module):
    """Equalised linear layer folded to plain weights: w [N, w_dim] -> styles [N, C]."""

    def __init__(self, fc: nn.Module, scale: float = 1.0) -> None:
        super().__init__()
        w = fc.weight.detach().float() * float(fc.weight_gain) * scale
        b = fc.bias.detach().float() * float(fc.bias_gain) * scale
        self.register_buffer("weight_t", w.t().contiguous())  # [w_dim, C]
        self.register_buffer("bias", b)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, w, self.weight_t)


class _FastConv(nn.Module):
    """One SynthesisLayer: x [N, I, r/up, r/up], w [N, w_dim] -> [N, O, r, r]."""

    def __init__(self, layer: nn.Module, cfg: FastSynthesisConfig, bb: torch.Tensor, aa: torch.Tensor) -> None:
        super().__init__()
        weight = layer.weight.detach().float()  # [O, I, 3, 3]
        if weight.shape[-1] != 3 or layer.activation != "lrelu":
            raise ValueError("FastSynthesis supports 3x3 lrelu synthesis layers only")
        self.up = int(layer.up)
        self.res = int(layer.resolution)
        gain = math.sqrt(2.0)  # act_gain of lrelu (the layer's extra gain is 1 in 'skip' generators)
        self.clamp = float(layer.conv_clamp) if layer.conv_clamp is not None else None
        self.affine = _Affine(layer.affine)
        self.register_buffer("wsq", weight.square().sum(dim=[2, 3]))  # [O, I]
        self.gain = gain
        nb = layer.bias.detach().float()[:, None, None].expand(-1, self.res, self.res)
        if layer.use_noise:
            nb = nb + (layer.noise_const.detach().float() * layer.noise_strength.detach().float())[None]
        self.register_buffer("nb", (nb * gain).contiguous())  # [O, r, r]
        self.register_buffer("bb", bb, persistent=False)
        self.register_buffer("aa", aa, persistent=False)
        if self.up == 1:
            wino = cfg.winograd_min_res and cfg.winograd_min_res <= self.res <= cfg.winograd_max_res
            self.mode = "winograd" if wino and self.res % 4 == 0 else "direct"
            if self.mode == "winograd":
                self.register_buffer("u", winograd_weight(weight))
            else:
                self.register_buffer("w", weight.contiguous())
        else:
            mode = cfg.up_mode
            if mode == "phase-winograd" and not (cfg.up_winograd_min_res <= self.res <= cfg.up_winograd_max_res):
                mode = "phase"
            if mode == "phase-winograd" and (self.res // 2) % 4:
                mode = "phase"
            self.mode = "up-" + mode
            if mode == "transpose":
                self.register_buffer("w", weight.transpose(0, 1).contiguous())  # [I, O, 3, 3]
                f = layer.resample_filter.detach().float()
                if f.shape[-1] != 4:
                    raise ValueError("up_mode='transpose' expects a 4-tap resample filter")
                fir = (f * 4.0).flip([0, 1])[None, None].repeat(weight.shape[0], 1, 1, 1)
                self.register_buffer("fir", fir.contiguous())  # [O, 1, 4, 4] depthwise, true convolution
            else:
                k = phase_kernels_up(weight, layer.resample_filter.detach().float())
                if mode == "phase-winograd":
                    self.register_buffer("u", winograd_weight(k))
                else:
                    self.register_buffer("w", k)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)  # [N, I]
        d = torch.rsqrt(styles.square() @ self.wsq.t() + 1e-8) * self.gain  # [N, O]
        x = x * styles[:, :, None, None]
        if self.mode == "direct":
            y = F.conv2d(x, self.w, padding=1)
        elif self.mode == "winograd":
            y = untile(winograd_conv3x3(x, self.u, self.bb, self.aa))
        elif self.mode == "up-phase":
            y = F.pixel_shuffle(F.conv2d(x, self.w, padding=1), 2)
        elif self.mode == "up-phase-winograd":
            y = untile_phases(winograd_conv3x3(x, self.u, self.bb, self.aa))
        else:  # up-transpose: the reference formulation
            y = F.conv_transpose2d(x, self.w, stride=2)
            y = F.conv2d(y, self.fir, padding=1, groups=self.fir.shape[0])
        y = torch.addcmul(self.nb, y, d[:, :, None, None])
        y = F.leaky_relu(y, 0.2)
        if self.clamp is not None:
            y = y.clamp(-self.clamp, self.clamp)
        return y


class _FastToRGB(nn.Module):
    """ToRGB: x [N, I, r, r], w [N, w_dim] -> [N, 3, r, r] (modulated 1x1, no demodulation, bias, clamp)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.affine = _Affine(layer.affine, scale=float(layer.weight_gain))
        self.register_buffer("w", layer.weight.detach().float()[:, :, 0, 0].contiguous())  # [3, I]
        self.register_buffer("b", layer.bias.detach().float()[None, :, None])  # [1, 3, 1]
        self.clamp = float(layer.conv_clamp) if layer.conv_clamp is not None else None

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        n, c, h, wd = x.shape
        wmod = self.w[None] * self.affine(w)[:, None, :]  # [N, 3, I]
        y = torch.baddbmm(self.b, wmod, x.reshape(n, c, h * wd))  # [N, 3, HW]
        if self.clamp is not None:
            y = y.clamp(-self.clamp, self.clamp)
        return y.reshape(n, -1, h, wd)


class FastSynthesis(nn.Module):
    """ws [N, num_ws, w_dim] -> img [N, 3, R, R] float32, equal to ``generator.synthesis(ws, noise_mode="const")``
    up to float rounding (PSNR well above 60 dB; see tests). Inference only: weights are copied and folded."""

    def __init__(self, generator: nn.Module, config: FastSynthesisConfig | None = None) -> None:
        super().__init__()
        cfg = config or FastSynthesisConfig()
        cfg.validate()
        self.config = cfg
        syn = generator.synthesis if isinstance(generator, StyleGAN2) else generator
        if not isinstance(syn, SynthesisNetwork):
            raise ValueError("FastSynthesis needs an engine StyleGAN2 generator (FaceWorld and others: use torch)")
        self.num_ws = int(syn.num_ws)
        self.w_dim = int(syn.w_dim)
        self.img_resolution = int(syn.img_resolution)
        bb, aa = winograd_transforms()
        self.resolutions = list(syn.block_resolutions)
        self.layers = nn.ModuleList()
        self.torgbs = nn.ModuleList()
        self.num_img_up = 0
        self.ws_index: list[tuple[int, ...]] = []  # per block: ws indices of (conv0?, conv1, torgb)
        w_idx = 0
        for res in self.resolutions:
            block = getattr(syn, f"b{res}")
            if block.architecture != "skip":
                raise ValueError(f"FastSynthesis supports architecture='skip' only, got {block.architecture!r}")
            if res == self.resolutions[0]:
                self.register_buffer("const", block.const.detach().float()[None].contiguous())  # [1, C, 4, 4]
                self.layers.append(_FastConv(block.conv1, cfg, bb, aa))
                self.ws_index.append((w_idx, w_idx + 1))
            else:
                self.layers.append(_FastConv(block.conv0, cfg, bb, aa))
                self.layers.append(_FastConv(block.conv1, cfg, bb, aa))
                self.ws_index.append((w_idx, w_idx + 1, w_idx + 2))
                kern = phase_kernels_upsample2d(block.resample_filter.detach().float(), int(block.img_channels))
                self.register_buffer(f"img_up{self.num_img_up}", kern)  # [3*4, 1, 3, 3]
                self.num_img_up += 1
            w_idx += block.num_conv
            self.torgbs.append(_FastToRGB(block.torgb))
        if w_idx + 1 != self.num_ws:
            raise ValueError(f"ws bookkeeping mismatch: {w_idx + 1} != {self.num_ws}")
        self.eval()

    def layer_modes(self) -> list[str]:
        """The computation chosen for each synthesis layer, e.g. ['direct', 'up-phase', 'winograd', ...]."""
        return [m.mode for m in self.layers]

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        """ws [N, num_ws, w_dim] -> img [N, 3, R, R] float32."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"expected ws [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws = ws.float()
        n = ws.shape[0]
        x = self.const.expand(n, -1, -1, -1)
        img: Any = None
        li = 0
        for bi, idx in enumerate(self.ws_index):
            if bi == 0:
                x = self.layers[li](x, ws[:, idx[0]])
                li += 1
            else:
                x = self.layers[li](x, ws[:, idx[0]])
                x = self.layers[li + 1](x, ws[:, idx[1]])
                li += 2
            y = self.torgbs[bi](x, ws[:, idx[-1]])
            if img is None:
                img = y
            else:
                kern = getattr(self, f"img_up{bi - 1}")
                img = F.pixel_shuffle(F.conv2d(img, kern, padding=1, groups=img.shape[1]), 2) + y
        return img

