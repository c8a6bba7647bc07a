"""The direction bank on disk: ``directions.safetensors`` [n, num_ws, w_dim] and ``directions.json`` (one record per
direction), and ``Direction``, the typed record of one direction.

A record is also a read-only mapping of its JSON entry (``record["region"]``, ``record.get("effect")``,
``dict(record)``), so that code reading the file's keys and code reading the attributes see the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(eq=False)  # equality is Mapping's: two records are equal when their JSON entries are
class Direction(Mapping[str, Any]):
    """One bank direction, as the CluDistiller (``engine.distill.cludistiller``) writes it.

    None means "not given": such keys are left out of ``to_dict`` unless the source entry had them, and unknown keys
    are kept in ``extra``; ``Direction.from_dict(d).to_dict() == d`` with the same key order, so files round-trip.
    """

    region: str | None = None  # the landmark region it was found on ("pose", "mouth", "eye_left", "rotation", ...)
    group: str | None = None  # "pose" | "expression"; a bundle reads a missing group as "expression"
    k: int | None = None  # the cluster count of its clustering (0 for regressions and external banks)
    origin: Any = None  # how it was found: {"pair": [i, j], "sizes": ...}, {"ica": j, "of": n}, {"regression": ...}
    norm: float | None = None  # its norm in W+
    effect: dict[str, float] | None = None  # landmark displacement per region when applied (``measure_effects``)
    index: int | None = None  # its row in the bank
    localised: float | None = None  # share of its change kept by the region localisation
    localised_rescale: float | None = None  # the amplitude factor applied after localisation
    orthogonalised_to_pose: int | None = None  # rank of the pose basis it was made orthogonal to
    extra: dict[str, Any] = field(default_factory=dict)  # every other key of the entry, as read
    _order: tuple[str, ...] | None = field(default=None, init=False, repr=False)  # the source entry's keys

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> Direction:
        """The record of one JSON entry (values kept as they are, unknown keys in ``extra``)."""
        if isinstance(entry, Direction):
            entry = entry.to_dict()
        known = _field_names()
        rec = cls(**{k: v for k, v in entry.items() if k in known},
                  extra={k: v for k, v in entry.items() if k not in known})
        rec._order = tuple(entry)
        return rec

    def to_dict(self) -> dict[str, Any]:
        """The JSON entry: the source's keys in their order, then keys given since (fields, then ``extra``)."""
        values = {name: getattr(self, name) for name in _field_names()}
        order = self._order or ()
        out: dict[str, Any] = {}
        for k in order:
            if k in values:
                out[k] = values[k]
            elif k in self.extra:
                out[k] = self.extra[k]
        for k, v in values.items():
            if k not in out and v is not None:
                out[k] = v
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


def _field_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(Direction) if f.name not in ("extra", "_order"))


def as_direction(entry: Direction | Mapping[str, Any]) -> Direction:
    """``entry`` itself when it is a record, else the record of a JSON entry."""
    return entry if isinstance(entry, Direction) else Direction.from_dict(entry)


def as_directions(entries: Iterable[Direction | Mapping[str, Any]]) -> list[Direction]:
    return [as_direction(e) for e in entries]


def load_directions(path: str | Path) -> tuple[torch.Tensor, list[Direction]]:
    """Read ``directions.safetensors`` (+ the ``directions.json`` beside it when present)."""
    from safetensors.torch import load_file

    p = Path(path)
    if p.is_dir():
        p = p / "directions.safetensors"
    if not p.is_file():
        raise FileNotFoundError(f"no directions file at {p}")
    dirs = load_file(str(p))["directions"]
    meta = p.with_name("directions.json")
    entries: list[dict[str, Any]]
    if meta.is_file():
        entries = json.loads(meta.read_text())["directions"]
    else:
        entries = [{"region": "unknown", "k": 0, "origin": "external", "group": "expression"} for _ in range(len(dirs))]
    if len(entries) != len(dirs):
        raise ValueError(f"{p}: {len(dirs)} directions but {len(entries)} entries in {meta.name}")
    return dirs, as_directions(entries)
