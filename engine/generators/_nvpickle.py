"""Read NVlabs network pickles without executing anything from them.

An NVlabs snapshot (stylegan2-ada-pytorch, or the stylegan3 repo) is a pickled dict ``{G, D, G_ema, augment_pipe,
training_set_kwargs}``. Each network reduces through ``torch_utils.persistence._reconstruct_persistent_obj(meta)``,
whose ``meta`` holds ``class_name``, the full source code of the defining module (``module_src``) and ``state``
(the module ``__dict__``: ``_parameters``, ``_buffers``, ``_modules``, ``_init_args``, ``_init_kwargs``, ...).
The official loader ``exec``s that source. Here:

* :class:`RestrictedUnpickler` resolves only an allowlist of data-only globals, each mapped to a function of ours
  (never to a generic callable); anything else raises :class:`CheckpointError` naming the file and the global.
* the persistence reconstructor is replaced by :class:`PersistentObject`, which just keeps the meta; the source
  text is kept but never executed (only ``ast.parse``-d to read constructor defaults).
* tensor storages (``torch.storage._load_from_bytes``) go through ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import ast
import collections
import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.generators.errors import SUPPORTED, CheckpointError, weights_only_reason

_MAX_SOURCE_CHARS = 4_000_000  # module_src larger than this is not parsed for defaults


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict (no attribute magic, no code)."""


@dataclass
class PersistentObject:
    """What the persistence reconstructor of an NVlabs pickle carries, kept as data.

    ``module_src`` is the embedded source code, kept as text and never executed.
    """

    class_name: str
    module_src: str
    state: dict[str, Any]
    version: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def child(self, name: str) -> PersistentObject | None:
        """The submodule ``name`` (from ``state['_modules']``), or None."""
        mods = self.state.get("_modules") or {}
        obj = mods.get(name)
        return obj if isinstance(obj, PersistentObject) else None

    def attr(self, name: str, default: Any = None) -> Any:
        return self.state.get(name, default)


def is_stylegan3_source(src: str) -> bool:
    """True when ``module_src`` is the alias-free StyleGAN3 network module (text check, nothing executed)."""
    # SynthesisInput (the Fourier-feature input layer) exists only in networks_stylegan3.py.
    return "class SynthesisInput" in src


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """``numpy.core.multiarray.scalar`` for numeric dtypes only: bytes -> numpy scalar."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc":
        raise _Refused(f"numpy scalar of dtype {dtype!r} (only numeric scalars are allowed)")
    if isinstance(data, str):  # protocol-2 pickles of Python 2 origin carry latin-1 text
        data = data.encode("latin1")
    if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
        raise _Refused("malformed numpy scalar payload")
    return np.frombuffer(bytes(data), dtype=dtype)[0]


def _numpy_reconstruct(subtype: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct`` restricted to plain ndarrays (filled by the following BUILD)."""
    if subtype is not np.ndarray:
        raise _Refused(f"numpy array of subtype {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


def _numpy_frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """``numpy.core.numeric._frombuffer`` (protocol-5 arrays) for numeric dtypes only."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or order not in ("C", "F"):
        raise _Refused(f"numpy buffer array of dtype {dtype!r}")
    if not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)):
        raise _Refused("numpy buffer array without a byte buffer")
    return np.frombuffer(bytes(buf), dtype=dtype).reshape(tuple(shape), order=order).copy()


def _codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode``, as protocol-2 pickles use it for bytes: latin-1 text only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused("_codecs.encode with anything but latin-1 text")
    return text.encode("latin1")


def _load_from_bytes(data: Any) -> Any:
    """``torch.storage._load_from_bytes`` routed through the safe loader (the original uses an unsafe torch.load)."""
    if not isinstance(data, (bytes, bytearray)):
        raise _Refused("storage payload that is not bytes")
    return torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2`` without hooks or metadata: a view of a weights-only storage."""
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise _Refused(f"tensor built from a {type(storage).__name__}, not a torch storage")
    if not isinstance(storage_offset, int) or not all(isinstance(s, int) for s in (*size, *stride)):
        raise _Refused("tensor with non-integer geometry")
    if isinstance(storage, torch.UntypedStorage):
        storage = torch.storage.TypedStorage(wrap_storage=storage, dtype=torch.uint8, _internal=True)
    return torch._utils._rebuild_tensor(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> torch.Tensor:
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None, *state: Any) -> Any:
    """``torch._utils._rebuild_parameter`` (and ``_with_state``): a Parameter, hooks and state ignored."""
    if not isinstance(data, torch.Tensor):
        raise _Refused("parameter built from something that is not a tensor")
    return torch.nn.Parameter(data, requires_grad=False)


class _TypeMark:
    """Inert stand-in for a class named in a pickle (``torch.Tensor``, ``Parameter``): not callable, no state."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_TENSOR = _TypeMark("torch.Tensor")
_PARAMETER = _TypeMark("torch.nn.Parameter")


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any = None) -> Any:
    """``torch._tensor._rebuild_from_type(_v2)`` for plain tensors/parameters only; the Python state is dropped."""
    if func not in (_rebuild_tensor_v2, _rebuild_tensor, _rebuild_parameter) or new_type not in (_TENSOR, _PARAMETER):
        raise _Refused(f"tensor subclass reconstruction ({new_type!r})")
    if not isinstance(args, tuple):
        raise _Refused("malformed tensor reconstruction arguments")
    out = func(*args)
    return torch.nn.Parameter(out, requires_grad=False) if new_type is _PARAMETER else out


class _Refused(Exception):
    """Raised inside an allowed reconstructor when its arguments are not plain data."""


_TORCH_TYPES = {
    name: getattr(torch, name)
    for name in (
        "float16",
        "float32",
        "float64",
        "bfloat16",
        "uint8",
        "int8",
        "int16",
        "int32",
        "int64",
        "bool",
        "complex64",
        "complex128",
        "half",
        "float",
        "double",
        "long",
        "int",
        "short",
    )
}

# (module, name) -> the object the pickle gets instead. Everything here builds plain data.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("_codecs", "encode"): _codecs_encode,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch._tensor", "_rebuild_from_type"): _rebuild_from_type_v2,
    ("torch.tensor", "_rebuild_from_type"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TENSOR,
    ("torch.nn.parameter", "Parameter"): _PARAMETER,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    **{(m, "scalar"): _numpy_scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_reconstruct"): _numpy_reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): _numpy_frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    **{("torch", name): obj for name, obj in _TORCH_TYPES.items()},
}
# Python-2 names that protocol-2 pickles may use.
_COMPAT_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg", "_abcoll": "collections"}


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only the data-only globals of ``_ALLOWED``."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        module = _COMPAT_MODULES.get(module, module)
        if (module, name) == ("torch_utils.persistence", "_reconstruct_persistent_obj"):
            return self._reconstruct_persistent_obj
        obj = _ALLOWED.get((module, name))
        if obj is not None:
            return obj
        if module.startswith("dnnlib.tflib") or module.startswith("tensorflow"):
            raise CheckpointError(
                f"{self.path}: this is a TensorFlow StyleGAN pickle (found global '{module}.{name}'); "
                "TensorFlow networks are not supported. Convert it with NVlabs' stylegan2-ada-pytorch legacy.py "
                f"first. Supported: {SUPPORTED}."
            )
        raise CheckpointError(
            f"{self.path}: refusing to load: the pickle asks for '{module}.{name}', which is not on the allowlist "
            "of data-only types (the file may be malicious, or it is not a StyleGAN2 network pickle). "
            f"Supported: {SUPPORTED}."
        )

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(f"{self.path}: pickle uses persistent ids; not an NVlabs network pickle")

    def _reconstruct_persistent_obj(self, meta: Any) -> PersistentObject:
        """Keep the persistence meta as data; its ``module_src`` is never executed."""
        if not isinstance(meta, dict) or not isinstance(meta.get("state"), dict):
            raise CheckpointError(f"{self.path}: malformed persistence record (expected a dict with 'state')")
        if meta.get("type", "class") != "class":
            raise CheckpointError(f"{self.path}: unsupported persistence record type {meta.get('type')!r}")
        src = meta.get("module_src")
        class_name = meta.get("class_name")
        if not isinstance(src, str) or not isinstance(class_name, str):
            raise CheckpointError(f"{self.path}: malformed persistence record (module_src/class_name missing)")
        if is_stylegan3_source(src):
            raise CheckpointError(
                f"{self.path}: this is a StyleGAN3 (alias-free) network (class {class_name} from "
                f"networks_stylegan3); only StyleGAN2 is supported. Supported: {SUPPORTED}."
            )
        state = dict(meta["state"])
        return PersistentObject(class_name=class_name, module_src=src, state=state, version=meta.get("version"))


def load_nvlabs_pickle(path: Path) -> Any:
    """Unpickle ``path`` with the restricted unpickler. Errors become :class:`CheckpointError`."""
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, path).load()
    except CheckpointError:
        raise
    except _Refused as e:
        raise CheckpointError(f"{path}: refusing to load: {e}. Supported: {SUPPORTED}.") from None
    except (pickle.UnpicklingError, EOFError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "Weights only load failed" in str(e) or "GLOBAL" in str(e):
            msg = "a tensor storage inside the pickle was refused by torch.load(weights_only=True)"
            raise CheckpointError(f"{path}: refusing to load: {msg} ({weights_only_reason(str(e))})") from None
        raise CheckpointError(f"{path}: truncated or corrupt pickle ({msg}). Supported: {SUPPORTED}.") from None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RuntimeError, MemoryError) as e:
        detail = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        raise CheckpointError(f"{path}: corrupt or unsupported pickle ({detail}). Supported: {SUPPORTED}.") from None


# ------------------------------------------------------------------------------------------------------------------
# From the persistence records to a state_dict and constructor kwargs.


def collect_state_dict(obj: PersistentObject, path: Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """Rebuild a module's state_dict from ``_parameters``, persistent ``_buffers`` and, recursively, ``_modules``."""
    out: dict[str, torch.Tensor] = {}
    skip = obj.state.get("_non_persistent_buffers_set") or set()
    for kind in ("_parameters", "_buffers"):
        entries = obj.state.get(kind) or {}
        if not isinstance(entries, dict):
            raise CheckpointError(f"{path}: malformed module state at '{prefix or '<root>'}' ({kind})")
        for name, value in entries.items():
            if value is None or (kind == "_buffers" and name in skip):
                continue
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"{path}: {prefix}{name} is a {type(value).__name__}, not a tensor")
            out[prefix + name] = value.detach().clone()
    for name, child in (obj.state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentObject):
            raise CheckpointError(f"{path}: submodule {prefix}{name} is not a persistent network record")
        out.update(collect_state_dict(child, path, prefix=f"{prefix}{name}."))
    return out


# Official defaults per repository (used when module_src cannot be read). Source: the constructors of
# stylegan2-ada-pytorch training/networks.py and stylegan3 training/networks_stylegan2.py.
KNOWN_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "stylegan2-ada-pytorch": {
        "MappingNetwork": dict(
            num_layers=8, embed_features=None, layer_features=None, activation="lrelu", lr_multiplier=0.01,
            w_avg_beta=0.995,
        ),
        "SynthesisNetwork": dict(channel_base=32768, channel_max=512, num_fp16_res=0),
        "SynthesisBlock": dict(architecture="skip", resample_filter=[1, 3, 3, 1], conv_clamp=None),
        "SynthesisLayer": dict(kernel_size=3, use_noise=True, activation="lrelu"),
    },
    "stylegan3": {
        "MappingNetwork": dict(
            num_layers=8, embed_features=None, layer_features=None, activation="lrelu", lr_multiplier=0.01,
            w_avg_beta=0.998,
        ),
        "SynthesisNetwork": dict(channel_base=32768, channel_max=512, num_fp16_res=4),
        "SynthesisBlock": dict(
            architecture="skip", resample_filter=[1, 3, 3, 1], conv_clamp=256, fused_modconv_default=True
        ),
        "SynthesisLayer": dict(kernel_size=3, use_noise=True, activation="lrelu"),
    },
}
_DEFAULT_KEYS = {cls: set(v) for cls, v in KNOWN_DEFAULTS["stylegan3"].items()}


def source_defaults(src: str) -> dict[str, dict[str, Any]]:
    """Constructor defaults of the StyleGAN2 classes in ``module_src``, read with ``ast`` (parsed, never run).

    Returns {class name: {argument: literal default}} for the classes/arguments that matter; classes or
    defaults that are not plain literals are left out.
    """
    if len(src) > _MAX_SOURCE_CHARS:
        return {}
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or node.name not in _DEFAULT_KEYS:
            continue
        for item in node.body:
            if not isinstance(item, ast.FunctionDef) or item.name != "__init__":
                continue
            a = item.args
            positional = a.posonlyargs + a.args
            pairs = list(zip(positional[len(positional) - len(a.defaults) :], a.defaults))
            pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            found: dict[str, Any] = {}
            for arg, default in pairs:
                if arg.arg not in _DEFAULT_KEYS[node.name]:
                    continue
                try:
                    found[arg.arg] = ast.literal_eval(default)
                except (ValueError, TypeError, SyntaxError, RecursionError):
                    continue
            out[node.name] = found
    return out


def detect_repo(src: str, kwargs: dict[str, Any]) -> str:
    """'stylegan2-ada-pytorch' (nested synthesis_kwargs) or 'stylegan3' (flat kwargs)."""
    if "synthesis_kwargs" in kwargs:
        return "stylegan2-ada-pytorch"
    if "fused_modconv_default" in src or "update_emas" in src:
        return "stylegan3"
    if "synthesis_kwargs   = {}" in src or "synthesis_kwargs    = {}" in src:
        return "stylegan2-ada-pytorch"
    return "stylegan3"


_GENERATOR_POSITIONAL = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")


def generator_kwargs(g_ema: PersistentObject, path: Path) -> tuple[dict[str, Any], str]:
    """Fully explicit constructor kwargs (our flat form) for ``engine.generators.stylegan2.Generator``.

    Values present in ``_init_args``/``_init_kwargs`` win; missing ones come from the defaults written in the
    file's own ``module_src`` (read with ast), else from the known defaults of the detected repository.
    Returns (kwargs, repo name).
    """
    init_args = g_ema.state.get("_init_args", ()) or ()
    init_kwargs = g_ema.state.get("_init_kwargs", {}) or {}
    if not isinstance(init_args, (tuple, list)) or not isinstance(init_kwargs, dict):
        raise CheckpointError(f"{path}: G_ema has malformed _init_args/_init_kwargs")
    raw: dict[str, Any] = dict(zip(_GENERATOR_POSITIONAL + ("synthesis_kwargs",), init_args))
    raw.update(init_kwargs)
    repo = detect_repo(g_ema.module_src, raw)
    defaults = {cls: dict(v) for cls, v in KNOWN_DEFAULTS[repo].items()}
    for cls, found in source_defaults(g_ema.module_src).items():
        defaults[cls].update(found)

    missing = [k for k in ("z_dim", "c_dim", "w_dim", "img_resolution") if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: G_ema constructor arguments lack {missing}")
    mapping = dict(defaults["MappingNetwork"])
    mapping.update(dict(raw.pop("mapping_kwargs", None) or {}))
    synthesis = dict(raw.pop("synthesis_kwargs", None) or {})
    kw: dict[str, Any] = {k: raw.pop(k) for k in ("z_dim", "c_dim", "w_dim", "img_resolution")}
    kw["img_channels"] = raw.pop("img_channels", 3)
    synthesis.update(raw)  # the stylegan3 repo keeps synthesis arguments flat
    resolved: dict[str, Any] = {}
    for cls in ("SynthesisNetwork", "SynthesisBlock", "SynthesisLayer"):
        resolved.update(defaults[cls])
    if repo == "stylegan2-ada-pytorch":
        resolved.pop("fused_modconv_default", None)
    resolved.update(synthesis)
    kw["mapping_kwargs"] = mapping
    kw.update(resolved)
    return _plain(kw), repo


def _plain(value: Any) -> Any:
    """EasyDicts, tuples and numpy scalars -> JSON-friendly Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_against_state(g_ema: PersistentObject, kwargs: dict[str, Any], path: Path) -> None:
    """Cross-check resolved kwargs against attributes the official modules stored (conv_clamp, layers, lr)."""
    synthesis = g_ema.child("synthesis")
    mapping = g_ema.child("mapping")
    problems = []
    if mapping is not None:
        n = mapping.attr("num_layers")
        if n is not None and int(n) != kwargs["mapping_kwargs"]["num_layers"]:
            problems.append(f"mapping num_layers {n} vs {kwargs['mapping_kwargs']['num_layers']}")
        fc0 = mapping.child("fc0")
        gain = fc0.attr("bias_gain") if fc0 is not None else None
        if gain is not None and abs(float(gain) - float(kwargs["mapping_kwargs"]["lr_multiplier"])) > 1e-9:
            problems.append(f"mapping lr_multiplier {float(gain)} vs {kwargs['mapping_kwargs']['lr_multiplier']}")
    if synthesis is not None:
        block = synthesis.child(f"b{kwargs['img_resolution']}")
        layer = block.child("conv1") if block is not None else None
        if layer is not None and "conv_clamp" in layer.state:
            stored = layer.attr("conv_clamp")
            if stored != kwargs.get("conv_clamp"):
                problems.append(f"conv_clamp {stored} (stored in the layers) vs {kwargs.get('conv_clamp')}")
        if block is not None and "architecture" in block.state and block.attr("architecture") != kwargs.get(
            "architecture"
        ):
            problems.append(f"architecture {block.attr('architecture')} vs {kwargs.get('architecture')}")
    if problems:
        raise CheckpointError(
            f"{path}: the constructor arguments do not match the stored network ({'; '.join(problems)}); "
            "this looks like a modified StyleGAN2 that we cannot rebuild faithfully"
        )
