"""Loading a checkpoint never executes code from it: crafted files fail with a clear error, no marker file appears."""

from __future__ import annotations

import builtins
import collections
import io
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _nvlabs_pickles import module_state, nvlabs_snapshot, stylegan2_source, write_snapshot

from engine.generators.checkpoints import CheckpointError, load_checkpoint
from engine.generators.stylegan2 import Generator


class Reduce:
    """An object that pickles as ``func(*args)``."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (self.func, self.args)


def payloads(marker: Path) -> dict[str, Reduce]:
    """Every way of running code we test, each of which would create ``marker``."""
    code = f"open({str(marker)!r}, 'w').write('pwned')"
    return {
        "os.system": Reduce(os.system, f"touch {marker}"),
        "builtins.exec": Reduce(builtins.exec, code),
        "builtins.eval": Reduce(builtins.eval, code),
        "subprocess.Popen": Reduce(subprocess.Popen, ["touch", str(marker)]),
        "builtins.getattr": Reduce(builtins.getattr, Reduce(builtins.__import__, "os"), "system"),
    }


def small_generator() -> tuple[Generator, dict[str, Any]]:
    kwargs = dict(
        z_dim=8,
        c_dim=0,
        w_dim=8,
        img_resolution=8,
        img_channels=3,
        mapping_kwargs={"num_layers": 2},
        synthesis_kwargs={"channel_base": 64, "channel_max": 8, "conv_clamp": None, "num_fp16_res": 0},
    )
    torch.manual_seed(0)
    g = Generator(**{k: v for k, v in kwargs.items() if k != "synthesis_kwargs"}, **kwargs["synthesis_kwargs"]).eval()
    return g, kwargs


def snapshot(preamble: str = "") -> tuple[Generator, dict[str, Any]]:
    g, kwargs = small_generator()
    src = stylegan2_source(flat=False, block_conv_clamp=None, num_fp16_res=0, w_avg_beta=0.995, preamble=preamble)
    return g, nvlabs_snapshot(g.state_dict(), kwargs, src, conv_clamp=None)


def refused(path: Path, marker: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert not marker.exists(), "code from the checkpoint was executed"
    msg = str(info.value)
    assert str(path) in msg
    return msg


KINDS = ["os.system", "builtins.exec", "builtins.eval", "subprocess.Popen", "builtins.getattr"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["top", "in_g_ema_state", "in_kwargs"])
def test_malicious_reduce_is_refused(tmp_path: Path, kind: str, where: str) -> None:
    marker = tmp_path / "marker"
    evil = payloads(marker)[kind]
    _, snap = snapshot()
    if where == "top":
        data: Any = evil
    elif where == "in_g_ema_state":
        snap["G_ema"].state["_parameters"]["evil"] = evil
        data = snap
    else:
        snap["G_ema"].state["_init_kwargs"]["mapping_kwargs"] = evil
        data = snap
    path = write_snapshot(tmp_path / "evil.pkl", data)
    msg = refused(path, marker)
    name = kind.split(".")[1]
    assert name in msg and "allowlist" in msg


def test_handwritten_protocol0_globals_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    for i, body in enumerate(
        [
            f"cos\nsystem\n(S'touch {marker}'\ntR.",
            f"cposix\nsystem\n(S'touch {marker}'\ntR.",
            f"c__builtin__\neval\n(S'open(\"{marker}\", \"w\")'\ntR.",
            "ctorch_utils.persistence\n_src_to_module\n(S'x = 1'\ntR.",
        ]
    ):
        path = tmp_path / f"p{i}.pkl"
        path.write_bytes(b"\x80\x02" + body.encode())
        refused(path, marker)


def test_module_src_is_never_executed(tmp_path: Path) -> None:
    """A valid snapshot whose embedded source would write a file: it loads, and the file never appears."""
    marker = tmp_path / "marker"
    preamble = f"import os\nos.system('touch {marker}')\nopen({str(marker)!r}, 'w').write('pwned')\n"
    g, snap = snapshot(preamble)
    assert preamble in snap["G_ema"].module_src
    path = write_snapshot(tmp_path / "net.pkl", snap)
    h = load_checkpoint(path)
    assert not marker.exists()
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(h(z), g(z), rtol=0, atol=1e-6)


def test_malicious_tensor_storage_goes_through_weights_only(tmp_path: Path) -> None:
    """torch.storage._load_from_bytes is allowed, but its payload is read with torch.load(weights_only=True)."""
    marker = tmp_path / "marker"
    buf = io.BytesIO()
    torch.save(Reduce(os.system, f"touch {marker}"), buf, _use_new_zipfile_serialization=False)
    evil_storage = Reduce(torch.storage._load_from_bytes, buf.getvalue())
    _, snap = snapshot()
    snap["G_ema"].state["_buffers"]["w_avg"] = Reduce(
        torch._utils._rebuild_tensor_v2, evil_storage, 0, (8,), (1,), False, collections.OrderedDict()
    )
    path = write_snapshot(tmp_path / "evil_storage.pkl", snap)
    msg = refused(path, marker)
    assert "weights_only" in msg


def test_allowed_reconstructors_refuse_non_data_arguments(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    cases = {
        "object_scalar": Reduce(np._core.multiarray.scalar, np.dtype("O"), Reduce(os.system, "true")),
        "codecs_other": Reduce(__import__("_codecs").encode, "x", "rot13"),
        "tensor_from_list": Reduce(torch._utils._rebuild_tensor_v2, [1, 2], 0, (2,), (1,), False, None),
    }
    for name, evil in cases.items():
        data = {"G_ema": evil}
        path = write_snapshot(tmp_path / f"{name}.pkl", data)
        refused(path, marker)


def test_rosinality_like_pt_with_malicious_global(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    g, _ = small_generator()
    ckpt = {"g_ema": {"style.1.weight": torch.zeros(8, 8)}, "latent_avg": torch.zeros(8), "args": None}
    for fmt, new_zip in (("zip", True), ("legacy", False)):
        for kind, evil in payloads(marker).items():
            ckpt["args"] = evil
            path = tmp_path / f"ros_{fmt}_{kind}.pt"
            torch.save(ckpt, path, _use_new_zipfile_serialization=new_zip)
            msg = refused(path, marker)
            assert "weights_only" in msg and kind.split(".")[1] in msg and "Re-running" not in msg


def test_persistent_record_with_foreign_reconstructor_is_refused(tmp_path: Path) -> None:
    """Same structure, but the reconstructor is the official _src_to_module path name: refused, not run."""
    marker = tmp_path / "marker"

    def _src_to_module(src: str) -> Any:  # pragma: no cover - pickled by reference only
        raise AssertionError

    _src_to_module.__module__ = "torch_utils.persistence"
    _src_to_module.__qualname__ = "_src_to_module"
    state = module_state({}, {}, {})
    data = {"G_ema": Reduce(_src_to_module, f"open({str(marker)!r}, 'w')"), "state": state}
    path = write_snapshot(
        tmp_path / "foreign.pkl", data, extra_modules={"torch_utils.persistence": {"_src_to_module": _src_to_module}}
    )
    msg = refused(path, marker)
    assert "_src_to_module" in msg


def test_loaders_never_unpickle_unrestricted() -> None:
    """Guard: no plain pickle.load(s) in the loaders, and every torch.load call passes weights_only=True."""
    root = Path(__file__).resolve().parents[3] / "engine" / "generators"
    for name in ("checkpoints.py", "_nvpickle.py"):
        text = (root / name).read_text()
        assert "pickle.load(" not in text and "pickle.loads(" not in text, name
        for line in text.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, (name, line)


class TaggedTensor(torch.Tensor):
    """A tensor subclass: pickled as a global of this test module, which the loader must refuse."""


def test_tensor_with_python_state_loads_but_subclasses_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    g, snap = snapshot()
    buffers = snap["G_ema"].state["_modules"]["mapping"].state["_buffers"]
    w_avg = buffers["w_avg"].clone()
    w_avg.note = "a tensor with a __dict__ pickles through torch._tensor._rebuild_from_type_v2"
    buffers["w_avg"] = w_avg
    h = load_checkpoint(write_snapshot(tmp_path / "state.pkl", snap))
    torch.testing.assert_close(h.w_avg, g.w_avg, rtol=0, atol=0)
    assert not hasattr(h.w_avg, "note")
    buffers["w_avg"] = g.w_avg.clone().as_subclass(TaggedTensor)
    msg = refused(write_snapshot(tmp_path / "subclass.pkl", snap), marker)
    assert "TaggedTensor" in msg


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_data_only_types_load_at_every_protocol(tmp_path: Path, protocol: int) -> None:
    """numpy scalars/arrays, sets, dtypes, devices, sizes inside the snapshot are data: they must load."""
    g, snap = snapshot()
    snap["augment_pipe"].state.update(
        arr=np.arange(6, dtype=np.float32).reshape(2, 3),
        fortran=np.asfortranarray(np.ones((2, 3))),
        scalars=(np.float64(1.5), np.int64(3), np.bool_(True)),
        misc=(frozenset({1, 2}), {3, 4}, b"raw", bytearray(b"x")),
        torch_things=(torch.float16, torch.device("cpu"), torch.Size([2, 3])),
    )
    h = load_checkpoint(write_snapshot(tmp_path / f"p{protocol}.pkl", snap, protocol=protocol))
    z = torch.randn(1, 8)
    with torch.no_grad():
        torch.testing.assert_close(h(z), g(z), rtol=0, atol=1e-6)
