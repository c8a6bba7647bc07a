"""Load StyleGAN2 checkpoints safely, and save them in our own format.

Formats, recognised by their content (not the file extension):

1. NVlabs network pickles (stylegan2-ada-pytorch, and the StyleGAN2 class of the stylegan3 repo): read with a
   restricted unpickler (``engine.generators._nvpickle``) -- no code from the file is ever executed, the
   embedded ``module_src`` is kept as text. ``G_ema`` is used, never ``G``.
2. rosinality ``.pt`` (converter output ``{g_ema, latent_avg}`` or a train.py checkpoint): ``torch.load`` with
   ``weights_only=True`` (only ``argparse.Namespace`` allowed), names mapped to the official ones, channel
   counts inferred from the weight shapes.
3. Our format: a ``.safetensors`` state_dict whose metadata carries ``format`` = ``d2a-stylegan2`` and the
   architecture kwargs as JSON (w_avg is the ``mapping.w_avg`` tensor; its origin is in the metadata).

Anything else raises :class:`CheckpointError` (a ``ValueError``) naming the file, what was found, and what is
supported.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.generators.errors import SUPPORTED, CheckpointError, weights_only_reason

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from engine.generators.stylegan2 import Generator

FORMAT_TAG = "d2a-stylegan2"
FORMAT_VERSION = "1"
W_AVG_SAMPLES = 10_000

_ZIP_MAGIC = b"PK\x03\x04"
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


# ------------------------------------------------------------------------------------------------------------------
# Public API.


def load_checkpoint(path: str | Path, device: str = "cpu", modulation: str = "grouped", **kwargs: Any) -> Generator:
    """Load a StyleGAN2 generator from any supported checkpoint file (format sniffed from the content).

    Returns ``engine.generators.stylegan2.Generator`` in eval mode on ``device`` with ``requires_grad=False``
    parameters; ``g.checkpoint_info`` describes what was loaded (format, source, w_avg origin).
    ``modulation`` selects the code path ('grouped' or 'activation'; see ``stylegan2``).
    """
    if kwargs:
        raise TypeError(f"load_checkpoint: unexpected options {sorted(kwargs)} for a StyleGAN2 checkpoint")
    from engine.generators.stylegan2 import MODULATIONS

    if modulation not in MODULATIONS:
        raise ValueError(f"modulation must be one of {MODULATIONS}, got {modulation!r}")
    p = Path(path)
    kind = sniff(p)
    if kind == "safetensors":
        g = _load_ours(p)
    elif kind == "torch":
        g = _load_rosinality(p)
    else:
        g = _load_nvlabs(p)
    g.set_modulation(modulation)
    g.requires_grad_(False)
    return g.to(device).eval()


def save_generator(g: Generator, path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``g`` in our format: safetensors state_dict + JSON architecture kwargs in the metadata."""
    from safetensors.torch import save_file

    p = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in g.state_dict().items()}
    merged = dict(g.checkpoint_info)
    merged.update(info or {})
    metadata = {
        "format": FORMAT_TAG,
        "version": FORMAT_VERSION,
        "kwargs": json.dumps(g.init_kwargs, sort_keys=True),
        "info": json.dumps(merged, sort_keys=True, default=str),
    }
    p.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(p), metadata=metadata)
    return p


def sniff(path: Path) -> str:
    """Identify a checkpoint by its first bytes: 'safetensors', 'torch' (zip or legacy torch.save) or 'pickle'."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such file. Supported: {SUPPORTED}.")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file. Supported: {SUPPORTED}.")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise CheckpointError(f"{path}: the file is empty. Supported: {SUPPORTED}.")
    if head.startswith(_ZIP_MAGIC):
        import zipfile

        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            msg = f"{path}: a damaged or truncated zip archive ({e}). Supported: {SUPPORTED}."
            raise CheckpointError(msg) from None
        if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
            raise CheckpointError(
                f"{path}: a zip archive but not a PyTorch checkpoint (no data.pkl; contains {shown}). "
                f"Supported: {SUPPORTED}."
            )
        return "torch"
    if len(head) >= 10:
        n = int.from_bytes(head[:8], "little")
        if 2 <= n <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    if head[0] == 0x80 and len(head) >= 2:  # pickle protocol >= 2
        if _is_torch_legacy(head):
            return "torch"
        return "pickle"
    shown = head[:16].hex(" ")
    raise CheckpointError(
        f"{path}: not a recognised checkpoint (not a pickle, zip or safetensors file; first bytes {shown}). "
        f"Supported: {SUPPORTED}."
    )


def _is_torch_legacy(head: bytes) -> bool:
    """Legacy (pre-zip) torch.save files start with a pickled magic number (LONG1 opcode)."""
    if len(head) < 4 or head[2] != 0x8A:
        return False
    n = head[3]
    return int.from_bytes(head[4 : 4 + n], "little", signed=True) == _TORCH_LEGACY_MAGIC


# ------------------------------------------------------------------------------------------------------------------
# Our own format.


def _load_ours(path: Path) -> Generator:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: a damaged safetensors file ({e}). Supported: {SUPPORTED}.") from None
    if metadata.get("format") != FORMAT_TAG:
        raise CheckpointError(
            f"{path}: a safetensors file without D2A StyleGAN2 metadata (format={metadata.get('format')!r}); "
            f"a bare state_dict lacks the architecture. Supported: {SUPPORTED}."
        )
    if metadata.get("version") != FORMAT_VERSION:
        found = metadata.get("version")
        raise CheckpointError(f"{path}: D2A format version {found!r}; this build reads {FORMAT_VERSION}")
    try:
        kw = json.loads(metadata["kwargs"])
        info = json.loads(metadata.get("info", "{}"))
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: malformed architecture metadata ({e})") from None
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: a damaged safetensors file ({e})") from None
    info.update(format=FORMAT_TAG, path=str(path))
    return _build(kw, state, path, info)


# ------------------------------------------------------------------------------------------------------------------
# NVlabs pickles.


def _load_nvlabs(path: Path) -> Generator:
    from engine.generators import _nvpickle

    data = _nvpickle.load_nvlabs_pickle(path)
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path}: a pickle holding a {type(data).__name__}, not an NVlabs snapshot dict. Supported: {SUPPORTED}."
        )
    g_ema = data.get("G_ema")
    if g_ema is None:
        found = ", ".join(sorted(map(str, data))[:8])
        hint = " (it has 'G', but only G_ema is used)" if "G" in data else ""
        raise CheckpointError(f"{path}: no 'G_ema' network in the pickle{hint}; keys: {found}. Supported: {SUPPORTED}.")
    if not isinstance(g_ema, _nvpickle.PersistentObject):
        raise CheckpointError(f"{path}: 'G_ema' is a {type(g_ema).__name__}, not a persistent NVlabs network")
    src = g_ema.module_src
    if g_ema.class_name != "Generator" or "class SynthesisBlock" not in src or "modulated_conv2d" not in src:
        raise CheckpointError(
            f"{path}: G_ema is a '{g_ema.class_name}' from a module that is not the StyleGAN2 networks module; "
            f"only StyleGAN2 generators are supported. Supported: {SUPPORTED}."
        )
    kw, repo = _nvpickle.generator_kwargs(g_ema, path)
    _nvpickle.check_against_state(g_ema, kw, path)
    state = _nvpickle.collect_state_dict(g_ema, path)
    info = {"format": "nvlabs-pkl", "repo": repo, "path": str(path), "w_avg_source": "checkpoint"}
    return _build(kw, state, path, info)


# ------------------------------------------------------------------------------------------------------------------
# rosinality checkpoints.


def _torch_load(path: Path) -> Any:
    import argparse
    import pickle

    import torch

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = weights_only_reason(str(e))
        raise CheckpointError(
            f"{path}: refused by the safe torch loader (weights_only=True): {reason}. The file may be malicious, or "
            f"it stores whole Python objects instead of tensors. Supported: {SUPPORTED}."
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        msg = f"{path}: a damaged or truncated PyTorch file ({first}). Supported: {SUPPORTED}."
        raise CheckpointError(msg) from None


_ROS_CONV = re.compile(r"^(conv1|convs\.(\d+)|to_rgb1|to_rgbs\.(\d+))\.(.+)$")


def _load_rosinality(path: Path) -> Generator:
    import torch

    ckpt = _torch_load(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("g_ema"), dict):
        keys = ", ".join(sorted(map(str, ckpt))[:8]) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(
            f"{path}: a PyTorch file without a rosinality 'g_ema' state_dict (found: {keys}). Supported: {SUPPORTED}."
        )
    src = {k: v for k, v in ckpt["g_ema"].items() if isinstance(v, torch.Tensor)}
    args = ckpt.get("args")
    lr_mlp = float(getattr(args, "lr_mlp", 0.01)) if args is not None else 0.01
    try:
        kw, state = _rosinality_to_official(src, lr_mlp)
    except KeyError as e:
        raise CheckpointError(f"{path}: not a complete rosinality StyleGAN2 g_ema (missing {e})") from None
    latent_avg = ckpt.get("latent_avg")
    info: dict[str, Any] = {"format": "rosinality-pt", "path": str(path)}
    if isinstance(latent_avg, torch.Tensor):
        state["mapping.w_avg"] = latent_avg.reshape(-1).float().clone()
        info["w_avg_source"] = "checkpoint (latent_avg)"
        return _build(kw, state, path, info)
    state["mapping.w_avg"] = torch.zeros(kw["w_dim"])
    g = _build(kw, state, path, info)
    estimate_w_avg(g)
    info["w_avg_source"] = f"estimated: mean of {W_AVG_SAMPLES} mapped z (seed 0)"
    warnings.warn(
        f"{path}: no latent_avg in the checkpoint; w_avg estimated as the mean of {W_AVG_SAMPLES} mapped z",
        stacklevel=3,
    )
    return g


def estimate_w_avg(g: Generator, samples: int = W_AVG_SAMPLES, seed: int = 0) -> torch.Tensor:
    """Set ``g.mapping.w_avg`` to the mean of ``samples`` mapped z ~ N(0, I); returns it [w_dim]."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(g.w_dim, dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, samples, 2000):
            n = min(2000, samples - start)
            z = torch.randn([n, g.z_dim], generator=gen)
            c = torch.zeros([n, g.c_dim]) if g.c_dim else None
            total += g.mapping(z.to(g.w_avg.device), c)[:, 0].double().sum(dim=0).cpu()
        g.mapping.w_avg.copy_((total / samples).float())
    return g.mapping.w_avg


def _fit_channels(channels: list[int], resolutions: list[int]) -> dict[str, Any]:
    """channel_base/channel_max reproducing ``channels`` exactly if possible, else an explicit list."""
    cmax = max(channels)
    for base in sorted({c * r for c, r in zip(channels, resolutions)}):
        if [min(base // r, cmax) for r in resolutions] == channels:
            return {"channel_base": base, "channel_max": cmax}
    return {"channel_base": 32768, "channel_max": cmax, "channels": channels}


def _rosinality_to_official(src: dict[str, Any], lr_mlp: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """rosinality g_ema names/shapes -> (official kwargs, official state_dict without w_avg)."""
    from engine.generators.stylegan2 import setup_filter

    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in src:
        n_mlp += 1
    if n_mlp == 0:
        raise KeyError("style.1.weight")
    w_dim = int(src["style.1.weight"].shape[1])
    n_up = 0
    while f"to_rgbs.{n_up}.conv.weight" in src:
        n_up += 1
    resolutions = [4 * 2**i for i in range(n_up + 1)]
    img_res = resolutions[-1]
    channels = [int(src["input.input"].shape[1])]
    channels += [int(src[f"convs.{2 * k}.conv.weight"].shape[1]) for k in range(n_up)]
    reference = setup_filter([1, 3, 3, 1])
    for key, value in src.items():
        if key.endswith("blur.kernel") or key.endswith("upsample.kernel"):
            if tuple(value.shape) != (4, 4) or float((value.float() / 4 - reference).abs().max()) > 1e-6:
                raise KeyError(f"{key} (only the [1, 3, 3, 1] blur kernel is supported)")

    out: dict[str, Any] = {}
    for i in range(n_mlp):
        out[f"mapping.fc{i}.weight"] = src[f"style.{i + 1}.weight"]
        out[f"mapping.fc{i}.bias"] = src[f"style.{i + 1}.bias"]
    out["synthesis.b4.const"] = src["input.input"][0]

    def block_of(match: re.Match[str]) -> tuple[str, str]:
        head = match.group(1)
        if head == "conv1":
            return "b4", "conv1"
        if head == "to_rgb1":
            return "b4", "torgb"
        if match.group(2) is not None:
            k = int(match.group(2))
            return f"b{8 * 2 ** (k // 2)}", "conv0" if k % 2 == 0 else "conv1"
        return f"b{8 * 2 ** int(match.group(3))}", "torgb"

    used = {"input.input"} | {f"style.{i + 1}.{t}" for i in range(n_mlp) for t in ("weight", "bias")}
    for key, value in src.items():
        m = _ROS_CONV.match(key)
        if m is None:
            continue
        block, layer = block_of(m)
        rest = m.group(4)
        name = f"synthesis.{block}.{layer}."
        if rest == "conv.weight":
            out[name + "weight"] = value[0]
        elif rest == "conv.modulation.weight":
            out[name + "affine.weight"] = value
        elif rest == "conv.modulation.bias":
            out[name + "affine.bias"] = value
        elif rest == "noise.weight":
            out[name + "noise_strength"] = value.reshape([])
        elif rest == "activate.bias":
            out[name + "bias"] = value
        elif rest == "bias" and layer == "torgb":
            out[name + "bias"] = value.reshape(-1)
        elif rest.endswith("kernel"):
            pass
        else:
            continue
        used.add(key)
    num_noise = 1 + 2 * n_up
    for i in range(num_noise):
        key = f"noises.noise_{i}"
        block, layer = ("b4", "conv1") if i == 0 else (f"b{8 * 2 ** ((i - 1) // 2)}", "conv0" if i % 2 else "conv1")
        out[f"synthesis.{block}.{layer}.noise_const"] = src[key][0, 0]
        used.add(key)
    leftovers = sorted(k for k in src if k not in used)
    if leftovers:
        raise KeyError(f"unexpected entries {leftovers[:5]}")
    filt = setup_filter([1, 3, 3, 1])
    for res in resolutions:
        out[f"synthesis.b{res}.resample_filter"] = filt.clone()
        for layer in ("conv0", "conv1") if res > 4 else ("conv1",):
            out[f"synthesis.b{res}.{layer}.resample_filter"] = filt.clone()
    kw = dict(
        z_dim=w_dim,
        c_dim=0,
        w_dim=w_dim,
        img_resolution=img_res,
        img_channels=3,
        mapping_kwargs=dict(
            num_layers=n_mlp, embed_features=None, layer_features=None, activation="lrelu", lr_multiplier=lr_mlp,
            w_avg_beta=0.995,
        ),
        num_fp16_res=0,
        architecture="skip",
        resample_filter=[1, 3, 3, 1],
        conv_clamp=None,
        kernel_size=3,
        use_noise=True,
        activation="lrelu",
        **_fit_channels(channels, resolutions),
    )
    return kw, out


# ------------------------------------------------------------------------------------------------------------------
# Building.


def _build(kw: dict[str, Any], state: dict[str, torch.Tensor], path: Path, info: dict[str, Any]) -> Generator:
    """Instantiate our Generator from explicit kwargs and load ``state`` strictly."""
    from engine.generators.stylegan2 import Generator

    try:
        g = Generator(**kw)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: unsupported StyleGAN2 architecture arguments ({e}); kwargs: {kw}") from None
    expected = g.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}")
        if wrong:
            k = wrong[0]
            parts.append(f"shape of {k}: file {tuple(state[k].shape)} vs {tuple(expected[k].shape)}")
        raise CheckpointError(f"{path}: the weights do not fit a StyleGAN2 with these arguments: {'; '.join(parts)}")
    g.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    g.checkpoint_info = info
    return g.eval()


def describe(g: Generator) -> dict[str, Any]:
    """Summary of a loaded generator, for `d2a convert` and logs."""
    kw = g.init_kwargs
    return {
        "format": g.checkpoint_info.get("format", "?"),
        "resolution": g.img_resolution,
        "num_ws": g.num_ws,
        "z_dim": g.z_dim,
        "w_dim": g.w_dim,
        "c_dim": g.c_dim,
        "mapping_layers": kw.get("mapping_kwargs", {}).get("num_layers"),
        "channels": list(g.synthesis.channels),
        "conv_clamp": kw.get("conv_clamp"),
        "architecture": kw.get("architecture", "skip"),
        "w_avg_source": g.checkpoint_info.get("w_avg_source", "?"),
    }
