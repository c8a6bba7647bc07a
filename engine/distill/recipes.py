"""Named recipes of the two distillers: the presets of ``d2a distill`` and ``d2a train``.

A preset maps option names of its command (``--effect-samples`` -> ``effect_samples``) to values; it names only what
differs from the library defaults (``CluDistillerConfig``, ``SamplingConfig``, ``TrainConfig``, ``AugmentConfig``,
``FANConfig``, which are also the commands' option defaults). Without ``--preset`` a command runs "default"; an
option given on the command line overrides the preset's value for that option alone.

``DISTILL_PRESETS``

* **default** — the recipe of the embedded bundle (``resources/models/faceworld``, built by
  ``scripts/train_default_bundle.sh``): 8 sources per candidate to measure its landmark effect; expression directions
  localised to their region (``engine.latent.locality``); three head-rotation directions regressed on the 3D head
  rotation of 4,096 samples, which replace the nose region, and a jaw and a smile direction regressed on the mouth in
  the head frame (``engine.distill.rotation``); mouth cluster directions less local than 0.95 of the most local one
  pruned. On FaceWorld identity moves 9 % as much as the actions instead of 27 % (docs/RESULTS.md, 'The shipped
  recipe'). The embedded bank used 32,768 samples (``--samples 32768``).
* **plain** — the library defaults: cluster directions only, as in the paper.

``TRAIN_PRESETS``

* **default** — the recipe of the embedded bundle's FAN: 8,192 training pairs with 8 augmented targets per rendered
  source, 256 validation pairs, 3,000 steps (a checkpoint every 100), heatmaps with sigma 2, and the bank's eye
  directions at half range (a localised bank's eye directions are large; at the full range the FAN took head turns
  for blinks: docs/RESULTS.md, 'Augmentation: re-norm and eye range', 'The embedded bundle').
* **plain** — the library defaults.

Importing this module is cheap (no torch): the commands read the presets when they parse their options.
"""

from __future__ import annotations

from typing import Any

DISTILL_PRESETS: dict[str, dict[str, Any]] = {
    "default": {
        "effect_samples": 8,
        "localise": True,
        "rotation_samples": 4096,
        "mouth_regression": True,
        "min_locality": 0.95,
    },
    "plain": {},
}

TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "default": {
        "steps": 3000,
        "pairs": 8192,
        "targets_per_source": 8,
        "val_pairs": 256,
        "checkpoint_every": 100,
        "sigma": 2.0,
        "eye_range": 0.5,
    },
    "plain": {},
}

DEFAULT_PRESET = "default"


def with_preset(presets: dict[str, dict[str, Any]], name: str, defaults: dict[str, Any],
                given: dict[str, Any]) -> dict[str, Any]:
    """Settings of preset ``name``: the library ``defaults``, the preset's values over them, then the ``given``
    (explicit) values over both. ValueError on an unknown preset or a preset key outside ``defaults``."""
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(presets)}")
    unknown = set(presets[name]) - set(defaults)
    if unknown:
        raise ValueError(f"preset {name!r} sets unknown options {sorted(unknown)}")
    return {**defaults, **presets[name], **given}


def parse_ks(text: str) -> tuple[int, ...]:
    """Cluster counts: ``"2-12"`` or ``"2,4,8"`` (ranges inclusive) -> sorted unique ints >= 2 (ValueError else)."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            a, b = (int(x) for x in part.split("-"))
            out.extend(range(a, b + 1))
        elif part:
            out.append(int(part))
    if not out or min(out) < 2:
        raise ValueError(f"--k needs cluster counts >= 2, got {text!r}")
    return tuple(sorted(set(out)))


def distiller_config(regions: str, ks: str, action_layers: int, max_directions: int, effect_samples: int,
                     localise: bool, locality_tau: float, rotation_samples: int | None, min_locality: float | None,
                     seed: int, mouth_regression: bool | None = None) -> Any:
    """``d2a distill``'s options -> ``CluDistillerConfig``. Unless given, ``localise`` turns on 4,096 rotation
    samples, the mouth regression follows the rotation directions, and the mouth's locality pruning (0.95) the
    regression: the four settings of the "default" preset, so ``--preset plain --localise`` differs from it only in
    the effect samples."""
    from engine.distill.cludistiller import CluDistillerConfig
    from engine.latent.locality import LocalityConfig

    rot = (4096 if localise else 0) if rotation_samples is None else rotation_samples
    mouth = rot > 0 if mouth_regression is None else mouth_regression
    return CluDistillerConfig(
        regions=tuple(r.strip() for r in regions.split(",") if r.strip()),
        ks=parse_ks(ks),
        action_layers=action_layers,
        max_directions=max_directions,
        effect_samples=effect_samples,
        localise=localise,
        locality=LocalityConfig(tau=locality_tau, seed=seed),
        rotation_samples=rot,
        mouth_regression=mouth,
        min_locality=(0.95 if mouth else 0.0) if min_locality is None else min_locality,
        seed=seed,
    )


def train_config(o: dict[str, Any], directions: Any, infos: list[dict]) -> Any:
    """``d2a train``'s settings ``o`` (option name -> value) and the bank [n, num_ws, w_dim] -> ``TrainConfig``. The
    FAN's action layers are the bank's nonzero ones; ``eye_range`` becomes the per-direction augmentation ranges."""
    from engine.distill.augment import AugmentConfig, eye_ranges
    from engine.distill.train import TrainConfig
    from engine.fan import FANConfig

    action_layers = int((directions.abs().sum((0, 2)) > 0).nonzero().max()) + 1
    ranges = eye_ranges(infos, o["eye_range"]) if o["eye_range"] != 1.0 else ()
    return TrainConfig(
        steps=o["steps"], batch=o["batch"], lr=o["lr"], pairs=o["pairs"], val_pairs=o["val_pairs"],
        val_render=o["val_render"], detect_size=o["detect_size"], checkpoint_every=o["checkpoint_every"],
        seed=o["seed"], shard_sources=o["shard_sources"], targets_per_source=o["targets_per_source"],
        augment=AugmentConfig(renorm_percentile=o["renorm_percentile"], active_fraction=o["active_fraction"],
                              direction_ranges=ranges),
        fan=FANConfig(action_layers=action_layers, heatmap_size=o["heatmap_size"], sigma=o["sigma"],
                      output=o["output"], width=o["width"]),
    )
