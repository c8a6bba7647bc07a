"""Ground-truth check of a direction bank on FaceWorld (``decode`` gives the true parameters).

For every direction v, the change of every FaceWorld parameter when v is applied with coefficient 1 to random
sources, in units of that parameter's natural standard deviation (over z ~ N(0, I))::

    effect[v, p] = mean_sources |decode(w + v)[p] - decode(w)[p]| / std_p

A bank passes when (1) identity parameters change at most ``max_identity_ratio`` (10 %) as much as action
parameters (per-parameter averages, aggregated over the bank), and (2) for each target action (yaw, pitch, roll,
jaw, smile, blink, brow, gaze x) some direction moves it by at least ``min_amount`` natural stds while that
parameter takes at least ``min_share`` of the direction's total change (action + identity geometry). PCA or random
directions of the action layers are the negative controls: they move everything at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from engine.generators.protocol import require_ground_truth

if TYPE_CHECKING:  # pragma: no cover
    from engine.generators.protocol import Generator, GroundTruth

TARGETS: dict[str, tuple[str, ...]] = {
    "yaw": ("yaw",),
    "pitch": ("pitch",),
    "roll": ("roll",),
    "jaw": ("jaw_open",),
    "smile": ("smile",),
    "blink": ("blink_left", "blink_right"),
    "brow": ("brow_raise",),
    "gaze_x": ("gaze_x",),
}


@dataclass
class CheckConfig:
    sources: int = 64  # random sources the directions are applied to
    stats_samples: int = 4000  # samples for the natural std of each parameter
    max_identity_ratio: float = 0.10
    min_amount: float = 1.0  # natural stds (about a quarter of the ±2σ range)
    seed: int = 1234


@dataclass
class CheckResult:
    identity_ratio: float  # bank aggregate: mean identity change / mean action change
    identity_geometry_ratio: float  # same with the geometry identity parameters only (stricter)
    targets: dict[str, dict[str, Any]]  # per target: best direction, amount (stds), share
    passed_identity: bool
    passed_targets: bool
    targets_passed: int
    effects: torch.Tensor = field(repr=False)  # [n, P] normalised changes
    names: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.passed_identity and self.passed_targets

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("effects")
        d.pop("names")
        d["passed"] = self.passed
        return d


@torch.no_grad()
def natural_std(fw: GroundTruth, samples: int = 4000, seed: int = 0) -> dict[str, float]:
    """Standard deviation of every decoded parameter over z ~ N(0, I)."""
    z = torch.randn(samples, fw.z_dim, generator=torch.Generator().manual_seed(seed))
    p = fw.decode(fw.mapping(z))
    return {k: float(v.std().clamp_min(1e-6)) for k, v in p.items()}


@torch.no_grad()
def direction_effects(
    fw: GroundTruth, directions: torch.Tensor, cfg: CheckConfig
) -> tuple[torch.Tensor, tuple[str, ...]]:
    """effect [n, P]: mean |Δparam| / natural std when each direction is added to ``cfg.sources`` random sources."""
    std = natural_std(fw, cfg.stats_samples, cfg.seed)
    names = tuple(fw.PARAM_NAMES)
    z = torch.randn(cfg.sources, fw.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 1))
    ws = fw.mapping(z)
    base = fw.decode(ws)
    scale = torch.tensor([std[n] for n in names])
    rows = []
    for v in directions.float():
        moved = fw.decode(ws + v[None])
        rows.append(torch.stack([(moved[n] - base[n]).abs().mean() for n in names]) / scale)
    return torch.stack(rows), names


def check_directions(generator: Generator, directions: torch.Tensor, cfg: CheckConfig | None = None) -> CheckResult:
    """Apply the bank (coefficient 1) to random FaceWorld sources and score it against the ground truth."""
    fw = require_ground_truth(generator, "the direction check")
    cfg = cfg or CheckConfig()
    eff, names = direction_effects(fw, directions, cfg)
    col = {n: i for i, n in enumerate(names)}
    act = [col[n] for n in fw.ACTION_PARAMS]
    ident = [col[n] for n in fw.IDENTITY_PARAMS]
    geo = [col[n] for n in fw.IDENTITY_GEOMETRY_PARAMS]
    a_mean = eff[:, act].mean(1)
    ratio = float(eff[:, ident].mean(1).sum() / a_mean.sum().clamp_min(1e-8))
    ratio_geo = float(eff[:, geo].mean(1).sum() / a_mean.sum().clamp_min(1e-8))
    total = eff[:, act + geo].sum(1).clamp_min(1e-8)
    top = eff[:, act + geo].max(1).values
    targets: dict[str, dict[str, Any]] = {}
    for t, params in TARGETS.items():
        amount = torch.stack([eff[:, col[p]] for p in params]).max(0).values  # [n]
        share = amount / total
        ok = (amount >= cfg.min_amount) & (amount >= top - 1e-6)
        score = torch.where(ok, amount, amount * share)  # best passing one, else the best compromise
        i = int(score.argmax())
        targets[t] = {"direction": i, "amount": round(float(amount[i]), 3), "share": round(float(share[i]), 3),
                      "passed": bool(ok[i])}
    return CheckResult(
        identity_ratio=round(ratio, 4),
        identity_geometry_ratio=round(ratio_geo, 4),
        targets=targets,
        passed_identity=ratio <= cfg.max_identity_ratio,
        passed_targets=all(v["passed"] for v in targets.values()),
        targets_passed=sum(v["passed"] for v in targets.values()),
        effects=eff,
        names=names,
    )


@torch.no_grad()
def pca_directions(generator: Generator, n: int, like: torch.Tensor, action_layers: int = 8, samples: int = 4000,
                   seed: int = 0) -> torch.Tensor:
    """GANSpace-style control: the top-n principal axes of w (z ~ N(0, I)) on the action layers, each scaled to
    the mean norm of ``like`` (a bank [m, L, D]) so that both are compared at the same budget. -> [n, L, D]."""
    z = torch.randn(samples, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    w = generator.mapping(z)[:, 0].float()
    w = w - w.mean(0)
    _, _, vt = torch.linalg.svd(w, full_matrices=False)
    return _spread(vt[:n], like, action_layers)


def random_directions(like: torch.Tensor, n: int, action_layers: int = 8, seed: int = 0) -> torch.Tensor:
    """Control: n random unit directions of w, on the action layers, scaled like the bank ``like``. -> [n, L, D]."""
    d = torch.randn(n, like.shape[-1], generator=torch.Generator().manual_seed(seed))
    return _spread(d / d.norm(dim=1, keepdim=True), like, action_layers)


def _spread(unit: torch.Tensor, like: torch.Tensor, action_layers: int) -> torch.Tensor:
    """Unit w-directions [n, D] -> [n, L, D] repeated on the action layers with the bank's mean norm."""
    n, d = unit.shape
    out = torch.zeros(n, like.shape[1], d)
    out[:, :action_layers] = unit[:, None, :]
    target = like.flatten(1).norm(dim=1).mean()
    return out / out.flatten(1).norm(dim=1)[:, None, None] * target


def main(argv: list[str] | None = None) -> None:
    """``python -m engine.evaluation.directions RUN_DIR/directions.safetensors``: bank vs PCA vs random (JSON)."""
    import argparse
    import json

    from engine.generators import load_generator
    from engine.latent.bank import load_directions

    ap = argparse.ArgumentParser(description="Score a direction bank against FaceWorld's ground truth.")
    ap.add_argument("directions")
    a = ap.parse_args(argv)
    fw = load_generator("faceworld", resolution=64)
    bank, _ = load_directions(a.directions)
    out = {}
    for name, d in (("bank", bank), ("pca", pca_directions(fw, len(bank), bank)),
                    ("random", random_directions(bank, len(bank)))):
        out[name] = check_directions(fw, d).summary()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":  # pragma: no cover
    main()
