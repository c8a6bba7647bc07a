"""Model bundles: a generator reference + the CluDistiller bank + the trained FAN, in safetensors + JSON.

On disk (a folder)::

    bundle.json              format/version, generator_ref/kwargs, directions_info, fan_config, landmark_points, meta
    directions.safetensors   {"directions": [n, num_ws, w_dim] float32}
    fan.safetensors          the FAN's state_dict (absent when the bundle has no FAN yet)

Nothing is unpickled: weights are safetensors, metadata is JSON.

    b = load_bundle()                   # the embedded default (resources/models/faceworld)
    g = b.generator("cpu")              # FaceWorld or the referenced checkpoint
    b.save("my_bundle")
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.latent.bank import Direction, as_directions

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch
    from torch import nn

    from engine.fan import FAN, FANConfig

BUNDLE_FORMAT = "d2a-bundle"
BUNDLE_VERSION = 1
GROUPS = ("pose", "expression")


class BundleError(ValueError):
    """A bundle folder is missing, incomplete or malformed."""


@dataclass
class Bundle:
    """Everything the Animator needs besides the generator weights.

    Attributes:
        generator_ref: ``"faceworld"`` or a checkpoint path (relative paths resolve against the bundle folder).
        generator_kwargs: keyword arguments for ``engine.generators.load_generator``.
        directions: the CluDistiller bank, Tensor [n, num_ws, w_dim].
        directions_info: one ``engine.latent.bank.Direction`` per direction (region, group: "pose"|"expression",
            k, origin, norm, effect, ...); JSON entries (mappings) given here are turned into records.
        fan: the trained FAN (``engine.fan.FAN``) or None.
        fan_config: ``FANConfig.to_dict()`` of the FAN (also the preprocessing of ``fan_inputs``).
        landmark_points: indices (into the 478-point mesh) the FAN uses, np.int64 [K].
        meta: free-form provenance (training command, metrics, thresholds, ...).
    """

    generator_ref: str
    generator_kwargs: dict[str, Any]
    directions: torch.Tensor
    directions_info: list[Direction]
    fan: FAN | None = None
    fan_config: dict[str, Any] = field(default_factory=dict)
    landmark_points: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # folder it was loaded from (for relative generator paths)

    def __post_init__(self) -> None:
        import numpy as np

        if self.directions.ndim != 3:
            raise BundleError(f"directions must be [n, num_ws, w_dim], got {tuple(self.directions.shape)}")
        if len(self.directions_info) != self.directions.shape[0]:
            raise BundleError(
                f"{self.directions.shape[0]} directions but {len(self.directions_info)} directions_info entries"
            )
        self.directions_info = as_directions(self.directions_info)
        for i, info in enumerate(self.directions_info):
            if _group(info) not in GROUPS:
                raise BundleError(f"directions_info[{i}]['group'] must be one of {GROUPS}, got {info.group!r}")
        if self.landmark_points is not None:
            self.landmark_points = np.asarray(self.landmark_points, dtype=np.int64)

    # ---------------------------------------------------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return int(self.directions.shape[0])

    def group_indices(self, group: str) -> list[int]:
        """Indices of the bank directions labelled ``group`` ("pose" or "expression")."""
        if group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
        return [i for i, d in enumerate(self.directions_info) if _group(d) == group]

    def fan_config_obj(self) -> FANConfig:
        """The FAN config as an ``engine.fan.FANConfig``."""
        from engine.fan import FANConfig

        return FANConfig.from_dict(self.fan_config)

    def resolved_generator_ref(self) -> str:
        ref = self.generator_ref
        if ref.lower() == "faceworld":
            return ref
        p = Path(ref)
        if not p.is_absolute() and self.path is not None and (self.path / p).exists():
            return str(self.path / p)
        return ref

    def generator(self, device: str = "cpu") -> nn.Module:
        """Load the generator this bundle was built for (eval mode)."""
        from engine.generators import load_generator

        return load_generator(self.resolved_generator_ref(), device=device, **self.generator_kwargs)

    # ---------------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the bundle folder (created if needed). Returns the folder."""
        from safetensors.torch import save_file

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        dirs = self.directions.detach().float().cpu().contiguous()
        save_file({"directions": dirs}, str(out / "directions.safetensors"))
        files = {"directions": "directions.safetensors"}
        if self.fan is not None:
            state = {k: v.detach().cpu().contiguous() for k, v in self.fan.state_dict().items()}
            save_file(state, str(out / "fan.safetensors"))
            files["fan"] = "fan.safetensors"
            fan_config = self.fan.config.to_dict()
        else:
            fan_config = dict(self.fan_config)
            stale = out / "fan.safetensors"
            if stale.exists():
                stale.unlink()
        doc = {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "generator_ref": self.generator_ref,
            "generator_kwargs": self.generator_kwargs,
            "files": files,
            "directions_info": [d.to_dict() for d in self.directions_info],
            "fan_config": fan_config,
            "landmark_points": None if self.landmark_points is None else [int(i) for i in self.landmark_points],
            "meta": self.meta,
        }
        (out / "bundle.json").write_text(json.dumps(doc, indent=1, default=_json_default))
        self.fan_config = fan_config
        return out

    @classmethod
    def load(cls, path: str | Path | None = None, device: str = "cpu") -> Bundle:
        """Read a bundle folder (None -> the embedded default, ``engine.resources.default_bundle_dir()``)."""
        import numpy as np
        from safetensors.torch import load_file

        if path is None:
            from engine.resources import default_bundle_dir

            path = default_bundle_dir()
        folder = Path(path)
        if folder.is_file() and folder.name == "bundle.json":
            folder = folder.parent
        meta_file = folder / "bundle.json"
        if not meta_file.is_file():
            raise BundleError(f"{folder} is not a bundle: {meta_file.name} is missing")
        try:
            doc = json.loads(meta_file.read_text())
        except json.JSONDecodeError as e:
            raise BundleError(f"{meta_file}: invalid JSON ({e})") from e
        if doc.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{meta_file}: not a {BUNDLE_FORMAT} file (format={doc.get('format')!r})")
        if int(doc.get("version", 0)) > BUNDLE_VERSION:
            raise BundleError(f"{meta_file}: bundle version {doc.get('version')} is newer than supported")
        files = doc.get("files", {})
        dir_file = folder / files.get("directions", "directions.safetensors")
        if not dir_file.is_file():
            raise BundleError(f"{folder}: {dir_file.name} is missing")
        directions = load_file(str(dir_file), device=device)["directions"]
        fan = None
        fan_config = doc.get("fan_config") or {}
        if "fan" in files:
            from engine.fan import FAN, FANConfig

            state = load_file(str(folder / files["fan"]), device=device)
            cfg = FANConfig.from_dict(fan_config)
            bank = None
            if cfg.output == "coeffs":
                bank = directions.new_zeros(int(state["bank"].shape[0]), cfg.num_ws, cfg.w_dim)
            fan = FAN(cfg, bank=bank).to(device)
            fan.load_state_dict(state)
            fan.eval()
        points = doc.get("landmark_points")
        return cls(
            generator_ref=str(doc.get("generator_ref", "faceworld")),
            generator_kwargs=dict(doc.get("generator_kwargs") or {}),
            directions=directions,
            directions_info=list(doc.get("directions_info") or []),  # records made in __post_init__
            fan=fan,
            fan_config=fan_config,
            landmark_points=None if points is None else np.asarray(points, dtype=np.int64),
            meta=dict(doc.get("meta") or {}),
            path=folder,
        )


def load_bundle(path: str | Path | None = None, device: str = "cpu") -> Bundle:
    """Load a bundle folder; None -> the embedded default bundle. Same as ``Bundle.load``."""
    return Bundle.load(path, device=device)


def _group(d: Direction) -> str | None:
    """A direction's group; an entry without one is an expression direction."""
    return d.group if "group" in d else "expression"


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
