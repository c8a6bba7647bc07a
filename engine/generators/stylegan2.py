"""StyleGAN2 generator (Karras et al. 2020, configs E/F) in plain PyTorch.

Our own implementation of the official architecture. Parameter and buffer names follow the official NVlabs
``state_dict`` exactly, so an official ``G_ema`` state_dict loads with ``load_state_dict(strict=True)``::

    mapping.fc{i}.weight/bias, mapping.embed.*, mapping.w_avg
    synthesis.b{res}.const | conv0 | conv1 | torgb | skip | resample_filter
    synthesis.b{res}.conv{0,1}.{weight, bias, affine.weight, affine.bias, noise_const, noise_strength, resample_filter}

Only plain PyTorch ops are used (no custom CUDA kernels). Two modulation code paths, chosen explicitly with
``modulation=`` (never by silent fallback):

* ``"grouped"``: weights are modulated and demodulated per sample and run as one grouped convolution (the
  official ``fused_modconv=True`` inference path). The batch size is baked into reshapes of the weights.
* ``"activation"``: input activations are scaled by the styles, the convolution uses the shared weight, and the
  output is scaled by the demodulation coefficients (official ``fused_modconv=False``). No batch-dependent
  reshapes: exports to ONNX with a dynamic batch and keeps convolution weights constant (TensorRT friendly).

Computation is fp32 by default. Under ``torch.autocast`` (bf16/fp16) convolutions run in reduced precision while
z/label normalisation, styles and demodulation coefficients stay in fp32. The official ``num_fp16_res`` /
``use_fp16`` flags are accepted and recorded but do not switch precision (the official code also computes in fp32
on CPU); ``conv_clamp`` is always applied, as in the official code.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Modulation = Literal["grouped", "activation"]
MODULATIONS: tuple[str, ...] = ("grouped", "activation")
NOISE_MODES: tuple[str, ...] = ("const", "random", "none")
ARCHITECTURES: tuple[str, ...] = ("orig", "skip", "resnet")

# Activation functions of the official bias_act op: name -> (function, default gain).
_SQRT2 = math.sqrt(2.0)
_ACTIVATIONS: dict[str, tuple[Any, float]] = {
    "linear": (lambda x: x, 1.0),
    "relu": (F.relu, _SQRT2),
    "lrelu": (lambda x: F.leaky_relu(x, 0.2), _SQRT2),
    "tanh": (torch.tanh, 1.0),
    "sigmoid": (torch.sigmoid, 1.0),
    "elu": (F.elu, 1.0),
    "selu": (F.selu, 1.0),
    "softplus": (F.softplus, 1.0),
    "swish": (lambda x: torch.sigmoid(x) * x, _SQRT2),
}


def _check_activation(name: str) -> None:
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; supported: {', '.join(_ACTIVATIONS)}")


def _check_modulation(mode: str) -> None:
    if mode not in MODULATIONS:
        raise ValueError(f"modulation must be one of {MODULATIONS}, got {mode!r}")


# ----------------------------------------------------------------------------------------------------------------
# Functional helpers.


def setup_filter(taps: list[float] | tuple[float, ...]) -> torch.Tensor:
    """1-D FIR taps -> normalised separable 2-D filter [k, k] (sums to 1), as stored in ``resample_filter``."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim != 1 or f.numel() < 1:
        raise ValueError(f"resample_filter must be a 1-D list of taps, got {taps!r}")
    f = torch.outer(f, f)
    return f / f.sum()


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` to unit mean square along ``dim`` (always in fp32). x: [N, C] -> [N, C] float32."""
    x = x.float()
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    act: str = "linear",
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """Add a per-channel bias (dim 1), apply ``act``, scale by ``gain`` (default: the activation's own), clamp.

    x: [N, C] or [N, C, H, W]; b: [C].
    """
    fn, def_gain = _ACTIVATIONS[act]
    if b is not None:
        shape = [1, -1] + [1] * (x.ndim - 2)
        x = x + b.to(x.dtype).reshape(shape)
    x = fn(x)
    gain = def_gain if gain is None else float(gain)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def _fir_filter(x: torch.Tensor, f: torch.Tensor, pad: int, gain: float = 1.0) -> torch.Tensor:
    """Depthwise 2-D FIR filtering (true convolution) with zero padding ``pad`` on every side.

    x: [N, C, H, W]; f: [k, k] -> [N, C, H + 2*pad - k + 1, W + 2*pad - k + 1].
    """
    channels = int(x.shape[1])
    kernel = (f.to(x.dtype) * gain).flip([0, 1])
    kernel = kernel[None, None].repeat(channels, 1, 1, 1)
    return F.conv2d(x, kernel, padding=pad, groups=channels)


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """Upsample by ``up`` with the FIR filter ``f`` (official ``upfirdn2d.upsample2d``; gain up**2).

    Zero-insertion + padding + filtering, written as one depthwise transposed convolution and a crop.
    x: [N, C, H, W]; f: [k, k] -> [N, C, up*H, up*W].
    """
    channels, height, width = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
    fw = int(f.shape[-1])
    pad0 = (fw + up - 1) // 2
    kernel = (f.to(x.dtype) * (up * up))[None, None].repeat(channels, 1, 1, 1)
    start, end = fw - 1 - pad0, pad0 + 1 - up  # crop of the full transposed convolution, per side
    if start == end and start >= 0:
        return F.conv_transpose2d(x, kernel, stride=up, groups=channels, padding=start)
    y = F.conv_transpose2d(x, kernel, stride=up, groups=channels)
    return y[:, :, start : start + up * height, start : start + up * width]


def _conv_up2(x: torch.Tensor, weight_t: torch.Tensor, f: torch.Tensor, groups: int) -> torch.Tensor:
    """3x3 (or kxk) convolution with 2x upsampling: transposed conv stride 2, then FIR with gain 4.

    x: [N, I*groups, H, W]; weight_t: [I*groups, O, k, k] (already transposed) -> [N, O*groups, 2H, 2W].
    Matches the official ``conv2d_resample(up=2, padding=k//2, flip_weight=False)``.
    """
    k = int(weight_t.shape[-1])
    fw = int(f.shape[-1])
    x = F.conv_transpose2d(x, weight_t, stride=2, groups=groups)
    # Official padding bookkeeping for up=2: ((fw + 1)//2 + k//2 - (k - 1), (fw - 2)//2 + k//2 - (k - 2)).
    p0 = (fw + 1) // 2 + k // 2 - (k - 1)
    p1 = (fw - 2) // 2 + k // 2 - (k - 2)
    if p0 == p1:
        return _fir_filter(x, f, pad=p0, gain=4.0)
    x = F.pad(x, [p0, p1, p0, p1])
    return _fir_filter(x, f, pad=0, gain=4.0)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    mode: str = "grouped",
    demodulate: bool = True,
    up: int = 1,
    resample_filter: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Modulated convolution with optional demodulation, 2x upsampling and additive noise.

    x: [N, I, H, W]; weight: [O, I, k, k]; styles: [N, I] (fp32); noise: broadcastable to the output.
    Returns [N, O, H*up, W*up] in the dtype of the convolution (autocast-aware).
    """
    in_ch = int(styles.shape[1])  # never int() the batch size here: it must stay symbolic for ONNX export
    out_ch, w_in, kh, kw = (int(s) for s in weight.shape)
    if x.ndim != 4 or int(x.shape[1]) != in_ch or w_in != in_ch:
        shapes = f"x {tuple(x.shape)}, weight {tuple(weight.shape)}, styles {tuple(styles.shape)}"
        raise ValueError(f"modulated_conv2d: inconsistent shapes: {shapes}")
    if up not in (1, 2):
        raise ValueError(f"only up=1 or up=2 is supported, got {up}")
    if up == 2 and resample_filter is None:
        raise ValueError("up=2 needs a resample_filter")
    padding = kh // 2

    if mode == "activation":
        dcoefs = None
        if demodulate:
            with torch.autocast(device_type=x.device.type, enabled=False):
                # sum_{i,k,k} (W[o,i,k,k] * s[n,i])^2 = s^2 @ (sum_kk W^2)^T: no per-sample weights needed.
                wsq = weight.float().square().sum(dim=[2, 3])  # [O, I]
                dcoefs = (styles.float().square() @ wsq.t() + 1e-8).rsqrt()  # [N, O]
        x = x * styles.to(x.dtype)[:, :, None, None]
        if up == 1:
            x = F.conv2d(x, weight.to(x.dtype), padding=padding)
        else:
            x = _conv_up2(x, weight.to(x.dtype).transpose(0, 1), resample_filter, groups=1)
        if dcoefs is not None:
            x = x * dcoefs.to(x.dtype)[:, :, None, None]
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    if mode != "grouped":
        _check_modulation(mode)
    n = int(styles.shape[0])  # grouped convolution bakes the batch size into the weights
    with torch.autocast(device_type=x.device.type, enabled=False):
        w = weight.float().unsqueeze(0) * styles.float().reshape(n, 1, in_ch, 1, 1)  # [N, O, I, k, k]
        if demodulate:
            dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
            w = w * dcoefs.reshape(n, out_ch, 1, 1, 1)
    height, width = int(x.shape[2]), int(x.shape[3])
    x = x.reshape(1, n * in_ch, height, width)
    if up == 1:
        x = F.conv2d(x, w.reshape(n * out_ch, in_ch, kh, kw).to(x.dtype), padding=padding, groups=n)
    else:
        w_t = w.transpose(1, 2).reshape(n * in_ch, out_ch, kh, kw).to(x.dtype)
        x = _conv_up2(x, w_t, resample_filter, groups=n)
    x = x.reshape(n, out_ch, int(x.shape[2]), int(x.shape[3]))
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


# ----------------------------------------------------------------------------------------------------------------
# Layers.


class FullyConnectedLayer(nn.Module):
    """Equalised-learning-rate linear layer with fused bias + activation. [N, in] -> [N, out]."""

    def __init__(
        self,
        in_features: int,  # Number of input features.
        out_features: int,  # Number of output features.
        bias: bool = True,  # Learn an additive bias?
        activation: str = "linear",  # Activation after the bias: 'linear', 'lrelu', 'relu', ...
        lr_multiplier: float = 1.0,  # Learning-rate multiplier (scales weight and bias at run time).
        bias_init: float = 0.0,  # Initial bias value (only for freshly created layers).
    ) -> None:
        super().__init__()
        _check_activation(activation)
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, in_features] -> [N, out_features]."""
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """Plain (unmodulated) convolution, used only as the 1x1 ``skip`` of ``architecture='resnet'`` blocks.

    [N, in, H, W] -> [N, out, up*H, up*W].
    """

    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        out_channels: int,  # Number of output channels.
        kernel_size: int,  # Width and height of the convolution kernel.
        bias: bool = True,  # Learn an additive bias?
        activation: str = "linear",  # Activation after the bias.
        up: int = 1,  # Upsampling factor: 1 or 2.
        resample_filter: list[float] | tuple[float, ...] = (1, 3, 3, 1),  # FIR taps for resampling.
        conv_clamp: float | None = None,  # Clamp the output to +-X, None = no clamping.
    ) -> None:
        super().__init__()
        _check_activation(activation)
        if up not in (1, 2) or (up == 2 and kernel_size != 1):
            raise ValueError("Conv2dLayer supports up=1, or up=2 with a 1x1 kernel (the resnet skip)")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size**2)
        self.act_gain = _ACTIVATIONS[activation][1]
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """x: [N, in, H, W] -> [N, out, up*H, up*W]."""
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = F.conv2d(x, w, padding=self.padding)
        if self.up == 2:
            x = upsample2d(x, self.resample_filter)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class MappingNetwork(nn.Module):
    """z (+ optional label c) -> w, broadcast to ``num_ws`` copies, with optional truncation toward ``w_avg``.

    z: [N, z_dim], c: [N, c_dim] -> ws: [N, num_ws, w_dim] (or [N, w_dim] when num_ws is None).
    """

    def __init__(
        self,
        z_dim: int,  # Input latent (Z) dimensionality, 0 = no latent.
        c_dim: int,  # Conditioning label (C) dimensionality, 0 = unconditional.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        num_ws: int | None,  # Number of ws to broadcast to, None = return a single w.
        num_layers: int = 8,  # Number of fully connected layers.
        embed_features: int | None = None,  # Label embedding size, None = w_dim.
        layer_features: int | None = None,  # Hidden layer width, None = w_dim.
        activation: str = "lrelu",  # Activation of the hidden layers.
        lr_multiplier: float = 0.01,  # Learning-rate multiplier of the mapping layers.
        w_avg_beta: float | None = 0.998,  # Training-time EMA decay of w_avg, None = no w_avg buffer.
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """z: [N, z_dim], c: [N, c_dim] or None -> [N, num_ws, w_dim] (fp32)."""
        ref = z if z is not None else c
        if ref is None:
            raise ValueError("the mapping network needs z (and c for conditional networks)")
        with torch.autocast(device_type=ref.device.type, enabled=False):  # the mapping always runs in fp32
            return self._map(z, c, truncation_psi, truncation_cutoff)

    def _map(
        self, z: torch.Tensor | None, c: torch.Tensor | None, truncation_psi: float, truncation_cutoff: int | None
    ) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or int(z.shape[1]) != self.z_dim:
                raise ValueError(f"z must be [N, {self.z_dim}], got {None if z is None else tuple(z.shape)}")
            x = normalize_2nd_moment(z)
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or int(c.shape[1]) != self.c_dim:
                got = None if c is None else tuple(c.shape)
                raise ValueError(f"this generator is conditional: c must be [N, {self.c_dim}], got {got}")
            y = normalize_2nd_moment(self.embed(c.float()))
            x = torch.cat([x, y], dim=1) if x is not None else y
        if x is None:
            raise ValueError("mapping network has neither z nor c inputs")
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if self.num_ws is None:
            if truncation_psi != 1:
                raise ValueError("truncation needs num_ws and w_avg")
            return x
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if not hasattr(self, "w_avg"):
                raise ValueError("truncation needs w_avg, but this mapping network has none (w_avg_beta=None)")
            t = self.w_avg.lerp(x, float(truncation_psi))
            if truncation_cutoff is None:
                x = t
            else:
                keep = torch.arange(self.num_ws, device=x.device) < int(truncation_cutoff)
                x = torch.where(keep[None, :, None], t, x)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally 2x upsampling) + noise + bias + activation (+ clamp).

    x: [N, in, res/up, res/up], w: [N, w_dim] -> [N, out, res, res].
    """

    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        out_channels: int,  # Number of output channels.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        resolution: int,  # Output resolution of this layer.
        kernel_size: int = 3,  # Convolution kernel size.
        up: int = 1,  # Upsampling factor: 1 or 2.
        use_noise: bool = True,  # Add per-pixel noise?
        activation: str = "lrelu",  # Activation function.
        resample_filter: list[float] | tuple[float, ...] = (1, 3, 3, 1),  # FIR taps for upsampling.
        conv_clamp: float | None = None,  # Clamp the output to +-X, None = no clamping.
        channels_last: bool = False,  # Official memory-format flag; accepted, no effect here.
        modulation: Modulation = "grouped",  # Modulation code path: 'grouped' or 'activation'.
    ) -> None:
        super().__init__()
        _check_activation(activation)
        _check_modulation(modulation)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.modulation = modulation
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.act_gain = _ACTIVATIONS[activation][1]
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const", gain: float = 1.0) -> torch.Tensor:
        """x: [N, in, res/up, res/up], w: [N, w_dim] -> [N, out, res, res]."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        in_res = self.resolution // self.up
        if x.ndim != 4 or int(x.shape[1]) != self.in_channels or tuple(int(s) for s in x.shape[2:]) != (in_res, in_res):
            raise ValueError(f"expected x [N, {self.in_channels}, {in_res}, {in_res}], got {tuple(x.shape)}")
        with torch.autocast(device_type=w.device.type, enabled=False):
            styles = self.affine(w.float())  # [N, in]
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([int(x.shape[0]), 1, self.resolution, self.resolution], device=x.device)
            noise = noise * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(
            x, self.weight, styles, mode=self.modulation, up=self.up, resample_filter=self.resample_filter, noise=noise
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, resolution={self.resolution}, "
            f"up={self.up}, activation={self.activation}, modulation={self.modulation}"
        )


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to image channels, without demodulation. [N, in, H, W] -> [N, img_ch, H, W]."""

    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        out_channels: int,  # Number of image channels.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        kernel_size: int = 1,  # Convolution kernel size.
        conv_clamp: float | None = None,  # Clamp the output to +-X, None = no clamping.
        channels_last: bool = False,  # Official memory-format flag; accepted, no effect here.
        modulation: Modulation = "grouped",  # Modulation code path: 'grouped' or 'activation'.
    ) -> None:
        super().__init__()
        _check_modulation(modulation)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.modulation = modulation
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x: [N, in, H, W], w: [N, w_dim] -> [N, out, H, W]."""
        with torch.autocast(device_type=w.device.type, enabled=False):
            styles = self.affine(w.float()) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, mode=self.modulation, demodulate=False)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution level: (const | 2x-up conv0) + conv1 (+ ToRGB), accumulating the skip image.

    x: [N, in, res/2, res/2] (None for the first block), img: [N, img_ch, res/2, res/2] or None,
    ws: [N, num_conv + num_torgb, w_dim] -> (x [N, out, res, res], img [N, img_ch, res, res] float32).
    """

    def __init__(
        self,
        in_channels: int,  # Number of input channels, 0 = first block (constant input).
        out_channels: int,  # Number of output channels.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        resolution: int,  # Resolution of this block.
        img_channels: int,  # Number of image channels.
        is_last: bool,  # Is this the last (highest-resolution) block?
        architecture: str = "skip",  # 'skip' (StyleGAN2 G), 'orig' or 'resnet'.
        resample_filter: list[float] | tuple[float, ...] = (1, 3, 3, 1),  # FIR taps for upsampling.
        conv_clamp: float | None = 256,  # Clamp conv outputs to +-X, None = no clamping.
        use_fp16: bool = False,  # Official fp16 flag; recorded, computation stays fp32 (see module doc).
        fp16_channels_last: bool = False,  # Official memory-format flag; accepted, no effect here.
        fused_modconv_default: bool | str = True,  # Official training/inference switch; recorded only.
        modulation: Modulation = "grouped",  # Modulation code path: 'grouped' or 'activation'.
        **layer_kwargs: Any,  # Extra arguments for SynthesisLayer (kernel_size, use_noise, activation).
    ) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        common = dict(w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, modulation=modulation)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, up=2, resample_filter=resample_filter, **common, **layer_kwargs
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, **common, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(
                out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp, modulation=modulation
            )
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(
                in_channels, out_channels, kernel_size=1, bias=False, up=2, resample_filter=resample_filter
            )

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise_mode: str = "const"
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """See the class docstring for shapes."""
        expected = self.num_conv + self.num_torgb
        if ws.ndim != 3 or int(ws.shape[1]) != expected or int(ws.shape[2]) != self.w_dim:
            raise ValueError(f"b{self.resolution}: expected ws [N, {expected}, {self.w_dim}], got {tuple(ws.shape)}")
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)  # no int(): the batch stays dynamic
            if torch.is_autocast_enabled(x.device.type):
                x = x.to(torch.get_autocast_dtype(x.device.type))
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode, gain=np.sqrt(0.5))
            x = y.to(x.dtype) + x
        else:
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode)
            x = self.conv1(x, next(w_iter), noise_mode=noise_mode)
        if img is not None:
            with torch.autocast(device_type=img.device.type, enabled=False):  # the skip image stays fp32
                img = upsample2d(img.float(), self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter)).float()
            img = img + y if img is not None else y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, img_resolution, img_resolution] (float32, about [-1, 1])."""

    def __init__(
        self,
        w_dim: int,  # Intermediate latent (W) dimensionality.
        img_resolution: int,  # Output resolution (power of two, >= 4).
        img_channels: int,  # Number of image channels.
        channel_base: int = 32768,  # Channels at resolution r: min(channel_base // r, channel_max).
        channel_max: int = 512,  # Maximum number of channels.
        num_fp16_res: int = 4,  # Official: fp16 for the N highest resolutions; recorded, see module doc.
        channels: list[int] | None = None,  # Explicit channels per block (4, 8, ...); overrides base/max.
        **block_kwargs: Any,  # Extra arguments for SynthesisBlock.
    ) -> None:
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        if channels is not None:
            if len(channels) != len(self.block_resolutions):
                raise ValueError(f"channels needs {len(self.block_resolutions)} entries (4..{img_resolution})")
            channels_dict = dict(zip(self.block_resolutions, (int(c) for c in channels)))
        else:
            channels_dict = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        self.channels = [channels_dict[r] for r in self.block_resolutions]
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                channels_dict[res // 2] if res > 4 else 0,
                channels_dict[res],
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                is_last=res == img_resolution,
                use_fp16=res >= fp16_resolution,
                **block_kwargs,
            )
            self.num_ws += block.num_conv
            if res == img_resolution:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """ws: [N, num_ws, w_dim] -> img [N, img_channels, H, W] float32."""
        if ws.ndim != 3 or int(ws.shape[1]) != self.num_ws or int(ws.shape[2]) != self.w_dim:
            raise ValueError(f"expected ws [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws = ws.float()
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            cur = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, cur, noise_mode=noise_mode)
        return img

    def extra_repr(self) -> str:
        return f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}"


class Generator(nn.Module):
    """StyleGAN2 generator: ``mapping`` (z, c -> ws) followed by ``synthesis`` (ws -> image).

    Constructor kwargs follow the stylegan3 repo's flat form: ``mapping_kwargs`` for the mapping network and the
    remaining keyword arguments for the synthesis network. ``modulation`` is a run-time choice, not part of a
    checkpoint; change it later with :meth:`set_modulation`.
    """

    def __init__(
        self,
        z_dim: int,  # Input latent (Z) dimensionality.
        c_dim: int,  # Conditioning label (C) dimensionality, 0 = unconditional.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        img_resolution: int,  # Output resolution.
        img_channels: int = 3,  # Number of image channels.
        mapping_kwargs: dict[str, Any] | None = None,  # Arguments for MappingNetwork.
        modulation: Modulation = "grouped",  # Modulation code path: 'grouped' or 'activation'.
        **synthesis_kwargs: Any,  # Arguments for SynthesisNetwork / SynthesisBlock / SynthesisLayer.
    ) -> None:
        super().__init__()
        _check_modulation(modulation)
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            modulation=modulation,
            **synthesis_kwargs,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **(mapping_kwargs or {})
        )
        self.modulation: str = modulation
        # What a loader read this network from (format, source path, w_avg origin); empty when built in code.
        self.checkpoint_info: dict[str, Any] = {}
        # The complete architecture, enough to rebuild this network (saved in our checkpoint format).
        self.init_kwargs: dict[str, Any] = dict(
            z_dim=z_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            img_resolution=img_resolution,
            img_channels=img_channels,
            mapping_kwargs=dict(mapping_kwargs or {}),
            **synthesis_kwargs,
        )

    @property
    def w_avg(self) -> torch.Tensor:
        """Average w [w_dim] (the truncation centre), a buffer of the mapping network."""
        return self.mapping.w_avg

    def set_modulation(self, mode: Modulation) -> Generator:
        """Switch every modulated layer to ``mode`` ('grouped' or 'activation'); returns self."""
        _check_modulation(mode)
        for m in self.modules():
            if isinstance(m, (SynthesisLayer, ToRGBLayer)):
                m.modulation = mode
        self.modulation = mode
        return self

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
    ) -> torch.Tensor:
        """z: [N, z_dim], c: [N, c_dim] or None -> img [N, img_channels, H, W] float32."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)
