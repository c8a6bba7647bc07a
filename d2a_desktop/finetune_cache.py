"""Fine-tuned bundles kept per source in the user cache (``engine.resources.user_cache_dir()/finetuned``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np


def source_key(source: int | np.ndarray | str) -> str:
    """A stable key of a source: ``seed-<n>`` for a seed, ``img-<sha1>`` for image pixels or an image file."""
    if isinstance(source, (int, np.integer)):
        return f"seed-{int(source)}"
    if isinstance(source, np.ndarray):
        h = hashlib.sha1(np.ascontiguousarray(source).tobytes())
        h.update(str(source.shape).encode())
        return f"img-{h.hexdigest()[:16]}"
    data = Path(source).read_bytes()
    return f"img-{hashlib.sha1(data).hexdigest()[:16]}"


def bundle_id(bundle: Any) -> str:
    """A short id of the base bundle (its folder), so fine-tunes of different bundles never mix."""
    where = str(getattr(bundle, "path", None) or "default")
    return hashlib.sha1(where.encode()).hexdigest()[:10]


def cache_dir(bundle: Any, key: str, root: Path | None = None) -> Path:
    """Folder of the fine-tuned bundle for (base bundle, source key)."""
    if root is None:
        from engine.resources import user_cache_dir

        root = user_cache_dir()
    return Path(root) / "finetuned" / f"{bundle_id(bundle)}-{key}"


def load_cached(bundle: Any, key: str, root: Path | None = None) -> Any | None:
    """The cached fine-tuned bundle for this source, or None."""
    folder = cache_dir(bundle, key, root)
    if not (folder / "bundle.json").is_file():
        return None
    from engine.bundle import load_bundle

    return load_bundle(folder)
