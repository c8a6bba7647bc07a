"""Write NVlabs-format network pickles for tests, with our own pickler (no NVlabs code involved).

The structure follows what stylegan2-ada-pytorch / stylegan3 snapshots contain: a dict ``{G, D, G_ema,
augment_pipe, training_set_kwargs}`` whose networks reduce through
``torch_utils.persistence._reconstruct_persistent_obj(meta)``, ``meta = {type, version, module_src, class_name,
state}`` and ``state`` = a module ``__dict__`` (``_parameters``, ``_buffers``, ``_modules``, ``_init_args``,
``_init_kwargs``, plain attributes). The globals ``torch_utils.persistence._reconstruct_persistent_obj`` and
``dnnlib.util.EasyDict`` are written by reference through stand-in modules that exist only while dumping.
"""

from __future__ import annotations

import collections
import contextlib
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

BUFFER_NAMES = {"w_avg", "noise_const", "resample_filter"}


def _reconstruct_persistent_obj(meta: Any) -> Any:  # pragma: no cover - only pickled by reference
    raise AssertionError("the stand-in reconstructor must never be called")


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
_reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"


class EasyDict(dict):
    """Pickled by reference as dnnlib.util.EasyDict."""


EasyDict.__module__ = "dnnlib.util"
EasyDict.__qualname__ = "EasyDict"


@contextlib.contextmanager
def _stand_in_modules(extra: dict[str, dict[str, Any]] | None = None) -> Iterator[None]:
    """Temporarily register modules so pickle can write globals by reference; removed afterwards."""
    spec: dict[str, dict[str, Any]] = {
        "torch_utils": {},
        "torch_utils.persistence": {"_reconstruct_persistent_obj": _reconstruct_persistent_obj},
        "dnnlib": {"EasyDict": EasyDict},
        "dnnlib.util": {"EasyDict": EasyDict},
    }
    spec.update(extra or {})
    saved = {name: sys.modules.get(name) for name in spec}
    try:
        for name, attrs in spec.items():
            mod = types.ModuleType(name)
            mod.__dict__.update(attrs)
            sys.modules[name] = mod
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


class Persistent:
    """A network node that pickles like an NVlabs persistent object."""

    def __init__(self, class_name: str, module_src: str, state: dict[str, Any], reconstruct: Any = None) -> None:
        self.class_name = class_name
        self.module_src = module_src
        self.state = state
        self.reconstruct = reconstruct or _reconstruct_persistent_obj

    def __reduce__(self) -> tuple[Any, ...]:
        meta = dict(type="class", version=6, module_src=self.module_src, class_name=self.class_name, state=self.state)
        return (self.reconstruct, (meta,))


def module_state(
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    modules: dict[str, Any],
    **attrs: Any,
) -> dict[str, Any]:
    """An nn.Module ``__dict__`` as torch pickles it."""
    state: dict[str, Any] = {
        "training": False,
        "_parameters": collections.OrderedDict(
            (k, torch.nn.Parameter(v, requires_grad=False)) for k, v in params.items()
        ),
        "_buffers": collections.OrderedDict(buffers),
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": collections.OrderedDict(),
        "_forward_hooks": collections.OrderedDict(),
        "_forward_pre_hooks": collections.OrderedDict(),
        "_state_dict_hooks": collections.OrderedDict(),
        "_load_state_dict_pre_hooks": collections.OrderedDict(),
        "_modules": collections.OrderedDict(modules),
        "_init_args": (),
        "_init_kwargs": {},
    }
    state.update(attrs)
    return state


def _class_for(name: str) -> str:
    if name in ("mapping",):
        return "MappingNetwork"
    if name == "synthesis":
        return "SynthesisNetwork"
    if name.startswith("b") and name[1:].isdigit():
        return "SynthesisBlock"
    if name in ("conv0", "conv1"):
        return "SynthesisLayer"
    if name == "torgb":
        return "ToRGBLayer"
    return "FullyConnectedLayer"


def network_from_state_dict(
    sd: dict[str, torch.Tensor],
    module_src: str,
    init_kwargs: dict[str, Any],
    attrs: dict[str, dict[str, Any]] | None = None,
) -> Persistent:
    """Build a persistent ``Generator`` tree from an official state_dict.

    ``attrs`` maps a module path ("synthesis.b64.conv1") to extra plain attributes of that module.
    """
    attrs = attrs or {}
    tree: dict[str, Any] = {}
    for key, value in sd.items():
        node = tree
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node.setdefault("__tensors__", {})[parts[-1]] = value

    def build(node: dict[str, Any], name: str, path: str) -> Persistent:
        tensors = node.get("__tensors__", {})
        params = {k: v for k, v in tensors.items() if k not in BUFFER_NAMES}
        buffers = {k: v for k, v in tensors.items() if k in BUFFER_NAMES}
        children = {k: build(v, k, f"{path}.{k}" if path else k) for k, v in node.items() if k != "__tensors__"}
        extra = dict(attrs.get(path, {}))
        cls = "Generator" if not path else _class_for(name)
        if cls == "FullyConnectedLayer" and "weight" in params:
            extra.setdefault("weight_gain", np.float64(1.0 / np.sqrt(params["weight"].shape[1])))
            extra.setdefault("activation", "linear")
        if cls == "SynthesisLayer":
            extra.setdefault("act_gain", np.float64(np.sqrt(2)))
        state = module_state(params, buffers, children, **extra)
        if not path:
            state["_init_kwargs"] = init_kwargs
        return Persistent(cls, module_src, state)

    return build(tree, "", "")


def easy(d: dict[str, Any]) -> EasyDict:
    """Nested dicts -> nested EasyDicts (as NVlabs training scripts build kwargs)."""
    return EasyDict({k: easy(v) if isinstance(v, dict) else v for k, v in d.items()})


def small_discriminator(module_src: str) -> Persistent:
    """A stand-in D with a couple of tensors (the loader must ignore it)."""
    fromrgb = Persistent(
        "Conv2dLayer", module_src, module_state({"weight": torch.randn(8, 3, 1, 1), "bias": torch.zeros(8)}, {}, {})
    )
    b = Persistent("DiscriminatorBlock", module_src, module_state({}, {}, {"fromrgb": fromrgb}, architecture="resnet"))
    return Persistent("Discriminator", module_src, module_state({}, {}, {"b32": b}, img_resolution=32))


def augment_pipe() -> Persistent:
    src = "class AugmentPipe:\n    pass\n"
    state = module_state({}, {"p": torch.zeros([]), "Hz_geom": torch.randn(12)}, {}, xflip=np.float64(1.0), rotate=0)
    return Persistent("AugmentPipe", src, state)


def write_snapshot(path: Path, data: dict[str, Any], protocol: int = 4, extra_modules: dict | None = None) -> Path:
    """Pickle a snapshot dict with the stand-in modules registered; returns ``path``."""
    with _stand_in_modules(extra_modules), open(path, "wb") as f:
        pickle.dump(data, f, protocol=protocol)
    return path


def perturbed(sd: dict[str, torch.Tensor], scale: float = 0.5, seed: int = 1) -> dict[str, torch.Tensor]:
    """A differently-weighted copy (to stand for G, which must never be used instead of G_ema)."""
    gen = torch.Generator().manual_seed(seed)
    return {k: v + scale * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v for k, v in sd.items()}


# Constructor signatures written by us in the shape of the official modules (defaults are what the loader reads).
SRC_HEADER = "import numpy as np\nimport torch\n\n\ndef modulated_conv2d(x, weight, styles):\n    return x\n\n\n"


def stylegan2_source(
    *,
    flat: bool,
    block_conv_clamp: Any,
    num_fp16_res: int,
    w_avg_beta: float,
    preamble: str = "",
) -> str:
    """A module_src text with the StyleGAN2 class signatures (never executed by the loader)."""
    gen_sig = "mapping_kwargs={}, **synthesis_kwargs" if flat else "mapping_kwargs={}, synthesis_kwargs={}"
    return (
        preamble
        + SRC_HEADER
        + "class MappingNetwork(torch.nn.Module):\n"
        + "    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, embed_features=None,\n"
        + "                 layer_features=None, activation='lrelu', lr_multiplier=0.01,\n"
        + f"                 w_avg_beta={w_avg_beta}):\n"
        + "        super().__init__()\n\n\n"
        + "class SynthesisLayer(torch.nn.Module):\n"
        + "    def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=1, use_noise=True,\n"
        + "                 activation='lrelu', resample_filter=[1,3,3,1], conv_clamp=None, channels_last=False):\n"
        + "        super().__init__()\n\n\n"
        + "class SynthesisBlock(torch.nn.Module):\n"
        + "    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last,\n"
        + f"                 architecture='skip', resample_filter=[1,3,3,1], conv_clamp={block_conv_clamp!r},\n"
        + "                 use_fp16=False, fp16_channels_last=False, **layer_kwargs):\n"
        + "        super().__init__()\n\n\n"
        + "class SynthesisNetwork(torch.nn.Module):\n"
        + "    def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512,\n"
        + f"                 num_fp16_res={num_fp16_res}, **block_kwargs):\n"
        + "        super().__init__()\n\n\n"
        + "class Generator(torch.nn.Module):\n"
        + f"    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, {gen_sig}):\n"
        + "        super().__init__()\n"
    )


def layer_attrs(sd: dict[str, torch.Tensor], conv_clamp: Any, lr_multiplier: float = 0.01) -> dict[str, dict]:
    """Plain attributes the official modules store: conv_clamp per layer, architecture, mapping gains."""
    attrs: dict[str, dict[str, Any]] = {}
    for key in sd:
        parts = key.split(".")
        if len(parts) >= 4 and parts[0] == "synthesis" and parts[2] in ("conv0", "conv1", "torgb"):
            attrs.setdefault(".".join(parts[:3]), {})["conv_clamp"] = conv_clamp
        if len(parts) >= 3 and parts[0] == "synthesis":
            attrs.setdefault(".".join(parts[:2]), {})["architecture"] = "skip"
        if parts[0] == "mapping" and parts[1].startswith("fc"):
            attrs.setdefault(f"mapping.{parts[1]}", {}).update(bias_gain=lr_multiplier, activation="lrelu")
    n = len({k.split(".")[1] for k in sd if k.startswith("mapping.fc")})
    attrs.setdefault("mapping", {})["num_layers"] = n
    return attrs


def nvlabs_snapshot(
    sd: dict[str, torch.Tensor],
    init_kwargs: dict[str, Any],
    module_src: str,
    *,
    conv_clamp: Any,
    lr_multiplier: float = 0.01,
) -> dict[str, Any]:
    """The snapshot dict: G (perturbed weights), D, G_ema (``sd``), augment_pipe, training_set_kwargs."""
    attrs = layer_attrs(sd, conv_clamp, lr_multiplier)
    g_ema = network_from_state_dict(sd, module_src, easy(init_kwargs), attrs)
    g = network_from_state_dict(perturbed(sd), module_src, easy(init_kwargs), attrs)
    return {
        "G": g,
        "D": small_discriminator(module_src),
        "G_ema": g_ema,
        "augment_pipe": augment_pipe(),
        "training_set_kwargs": {"class_name": "training.dataset.ImageFolderDataset", "path": "x.zip", "xflip": False},
    }
