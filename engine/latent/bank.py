"""The direction bank on disk: ``directions.safetensors`` [n, num_ws, w_dim] and ``directions.json`` (one record per
direction)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def load_directions(path: str | Path) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Read ``directions.safetensors`` (+ the ``directions.json`` beside it when present)."""
    from safetensors.torch import load_file

    p = Path(path)
    if p.is_dir():
        p = p / "directions.safetensors"
    if not p.is_file():
        raise FileNotFoundError(f"no directions file at {p}")
    dirs = load_file(str(p))["directions"]
    meta = p.with_name("directions.json")
    infos: list[dict[str, Any]]
    if meta.is_file():
        infos = json.loads(meta.read_text())["directions"]
    else:
        infos = [{"region": "unknown", "k": 0, "origin": "external", "group": "expression"} for _ in range(len(dirs))]
    if len(infos) != len(dirs):
        raise ValueError(f"{p}: {len(dirs)} directions but {len(infos)} entries in {meta.name}")
    return dirs, infos
