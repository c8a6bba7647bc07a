"""AugDistiller training: cached (kp_s, kp_t, Δw, w_s) pairs -> the FAN, with checkpoints, resume, DDP and validation.

Rendering and detecting dominate the cost, so pairs are made once and cached in shards (``RUN_DIR/pairs/``);
a FAN epoch over the cache is cheap. A shard stores, per source, ``z`` and per pair the bank coefficients ``r``,
the source index and the detected landmarks; Δw is re-derived exactly (same augmentation code, same w_s) when
loading, so nothing large is written to disk.

Run folder::

    RUN_DIR/train_config.json   the options (resume refuses a different generator/bank)
    RUN_DIR/pairs/, val/        cached training and held-out pairs (resumable)
    RUN_DIR/checkpoint.pt       model + optimiser + schedule + step (torch.load(weights_only=True))
    RUN_DIR/metrics.csv         step, lr, loss (every ``log_every`` steps)
    RUN_DIR/metrics.json        per-epoch validation (Δw error, landmark NME, no-motion NME)
    RUN_DIR/bundle/             the trained bundle (``engine.bundle``)

Multi-process: ``torchrun --nproc_per_node 2 -m engine.distill.train ...`` (or ``d2a train`` under torchrun) uses
DistributedDataParallel (gloo on CPU, nccl on GPU); every rank makes a disjoint subset of the pair shards, then
trains on its slice of each batch; rank 0 writes checkpoints, metrics and the bundle.
"""

from __future__ import annotations

import csv
import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.distill.augment import AugmentConfig, augment, measure_layer_radii, renorm_thresholds
from engine.fan import FAN, FANConfig, fan_inputs, fan_loss


@dataclass
class TrainConfig:
    """AugDistiller training settings (one run folder = one config)."""

    steps: int = 2000  # optimiser steps (global)
    batch: int = 32  # global batch (split across DDP ranks)
    lr: float = 1e-3  # AdamW peak learning rate
    weight_decay: float = 1e-4
    warmup: int = 100  # linear warm-up steps, then cosine decay to lr_min_ratio * lr
    lr_min_ratio: float = 0.02
    lam: float = 0.1  # λ of the loss log cosh + λ‖·‖₂
    pairs: int = 6144  # cached training pairs
    val_pairs: int = 512  # cached held-out pairs (another seed)
    val_render: int = 32  # held-out pairs re-rendered each epoch for the landmark NME
    targets_per_source: int = 4  # augmented targets per rendered source (the source render is shared)
    shard_sources: int = 64  # sources per cache shard
    detect_size: int = 0  # detection image side (0 = the generator's resolution)
    radii_samples: int = 2000  # random samples for the re-norm thresholds
    checkpoint_every: int = 200
    log_every: int = 20
    seed: int = 0
    max_epochs_val: int = 20  # validate at most this many times (epochs are short on small caches)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    fan: FANConfig = field(default_factory=FANConfig)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        a = dict(d.pop("augment", {}))
        aug = AugmentConfig(**{**a, "direction_ranges": tuple(a.get("direction_ranges", ()))})
        fan = FANConfig.from_dict(d.pop("fan", {}))
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(augment=aug, fan=fan, **known)


# ---------------------------------------------------------------------------------------------------------------
# Distributed helpers
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def init_distributed() -> Dist:
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1): gloo on CPU, nccl on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as td

    if not td.is_initialized():
        td.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return Dist(rank=td.get_rank(), world=td.get_world_size())


# ---------------------------------------------------------------------------------------------------------------
# Pair cache
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Thresholds:
    """Re-norm thresholds τ [num_ws] and w̄ [w_dim] of the augmentation."""

    tau: torch.Tensor
    w_avg: torch.Tensor


@dataclass
class PairSet:
    """Cached pairs. ws_src [S, num_ws, w_dim]; per pair: src [P] (into ws_src), r [P, n], kp_s/kp_t [P, 78, 2]."""

    ws_src: torch.Tensor
    src: torch.Tensor
    r: torch.Tensor
    kp_s: torch.Tensor
    kp_t: torch.Tensor

    def __len__(self) -> int:
        return int(self.src.shape[0])

    def subset(self, idx: torch.Tensor) -> PairSet:
        return PairSet(self.ws_src, self.src[idx], self.r[idx], self.kp_s[idx], self.kp_t[idx])


def target_delta(ws_s: torch.Tensor, r: torch.Tensor, bank: torch.Tensor, th: Thresholds) -> torch.Tensor:
    """Δw of pairs from their sources ws_s [P, L, D] and coefficients r [P, n] (bank [n, L, D]), re-normed."""
    from engine.distill.augment import renorm

    w_avg = th.w_avg.to(ws_s)
    floor = (ws_s - w_avg[None, None]).norm(dim=-1)
    w_t = renorm(ws_s + torch.einsum("pk,kld->pld", r.to(ws_s), bank.to(ws_s)), w_avg, th.tau.to(ws_s), floor)
    return w_t - ws_s


def make_pairs(
    ws_s: torch.Tensor,
    bank: torch.Tensor,
    th: Thresholds,
    renderer: Any,
    aug: AugmentConfig,
    targets: int,
    rng: torch.Generator,
) -> dict[str, np.ndarray]:
    """Render + detect sources ws_s [S, L, D] and ``targets`` augmented targets each; keep pairs found in both."""
    s = ws_s.shape[0]
    kp_s, f_s = renderer.landmarks(ws_s)
    rep = ws_s.repeat_interleave(targets, 0)
    _, _, r = augment(rep, bank, th.w_avg, th.tau, aug, generator=rng)
    dw = target_delta(rep, r, bank, th)
    kp_t, f_t = renderer.landmarks(rep + dw)
    src = np.repeat(np.arange(s), targets)
    ok = f_s[src] & f_t
    return {
        "src": src[ok].astype(np.int64),
        "r": r.numpy()[ok].astype(np.float32),
        "kp_t": kp_t[ok],
        "kp_s_all": kp_s,
        "found_s": f_s.astype(np.uint8),
    }


def build_cache(
    generator: torch.nn.Module,
    folder: Path,
    n_pairs: int,
    seed: int,
    bank: torch.Tensor,
    th: Thresholds,
    cfg: TrainConfig,
    dist: Dist,
    progress: bool = True,
    desc: str = "pairs",
) -> PairSet:
    """Make (or resume) the pair cache in ``folder``; ranks share the shards round-robin. Returns all pairs."""
    from safetensors.numpy import load_file, save_file
    from tqdm import tqdm

    from engine.distill.sampling import LandmarkRenderer
    from engine.latent.mapping import map_z, shard_z

    folder.mkdir(parents=True, exist_ok=True)
    n_src = min(cfg.shard_sources, math.ceil(n_pairs / cfg.targets_per_source))
    n_shards = max(1, math.ceil(n_pairs / (n_src * cfg.targets_per_source)))
    mine = [i for i in range(n_shards) if i % dist.world == dist.rank]
    todo = [i for i in mine if not (folder / f"shard_{i:05d}.safetensors").exists()]
    if todo:
        with LandmarkRenderer(generator, detect_size=cfg.detect_size) as renderer:
            for i in tqdm(todo, desc=f"{desc} (rank {dist.rank})", unit="shard", disable=not (progress and dist.main)):
                z = shard_z(generator, seed, i, n_src)
                ws = map_z(generator, z, cfg.augment.truncation_psi)
                rng = torch.Generator().manual_seed(seed * 7_777_777 + i)
                data = make_pairs(ws, bank, th, renderer, cfg.augment, cfg.targets_per_source, rng)
                data["z"] = z.numpy()
                tmp = folder / f"shard_{i:05d}.tmp"
                save_file(data, str(tmp))
                tmp.replace(folder / f"shard_{i:05d}.safetensors")
    dist.barrier()
    ws_all, src_all, r_all, kps_all, kpt_all = [], [], [], [], []
    offset = 0
    for i in range(n_shards):
        d = load_file(str(folder / f"shard_{i:05d}.safetensors"))
        ws = map_z(generator, torch.from_numpy(d["z"]), cfg.augment.truncation_psi)
        ws_all.append(ws)
        src_all.append(torch.from_numpy(d["src"]) + offset)
        r_all.append(torch.from_numpy(d["r"]))
        kps_all.append(torch.from_numpy(d["kp_s_all"][d["src"]]))
        kpt_all.append(torch.from_numpy(d["kp_t"]))
        offset += ws.shape[0]
    return PairSet(torch.cat(ws_all), torch.cat(src_all), torch.cat(r_all), torch.cat(kps_all), torch.cat(kpt_all))


# ---------------------------------------------------------------------------------------------------------------
# Schedule, checkpoints, metrics
# ---------------------------------------------------------------------------------------------------------------


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay from lr to lr * lr_min_ratio at cfg.steps."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def save_checkpoint(path: Path, fan: torch.nn.Module, opt: torch.optim.Optimizer, step: int, rng: torch.Tensor) -> None:
    """Atomic checkpoint (tensors and plain containers only, loadable with weights_only=True)."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": fan.state_dict(), "optimizer": opt.state_dict(), "step": step, "rng": rng}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


# ---------------------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------------------


def nme_points(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-sample NME of [M, 78, 2] landmark sets: mean point distance / inter-ocular distance of the target."""
    r, l = target[:, 36:42].mean(1), target[:, 42:48].mean(1)
    iod = np.linalg.norm(l - r, axis=1).clip(1e-6)
    return np.linalg.norm(pred - target, axis=-1).mean(-1) / iod


def _unwrap(fan: torch.nn.Module) -> FAN:
    """The FAN itself, also when a DistributedDataParallel wraps it."""
    return fan.module if isinstance(fan, torch.nn.parallel.DistributedDataParallel) else fan


@torch.no_grad()
def predict(fan: torch.nn.Module, kp_s: torch.Tensor, kp_t: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """FAN prediction for landmark pairs [M, 78, 2] -> Δw̃ [M, num_ws, w_dim]."""
    core = _unwrap(fan)
    out = [core(fan_inputs(kp_s[i : i + batch], kp_t[i : i + batch], core.config)) for i in range(0, len(kp_s), batch)]
    return torch.cat(out)


@torch.no_grad()
def validate(
    fan: torch.nn.Module, val: PairSet, bank: torch.Tensor, th: Thresholds, cfg: TrainConfig, renderer: Any = None
) -> dict[str, float]:
    """Δw error on the held-out pairs (+ landmark NME after re-rendering ``cfg.val_render`` of them)."""
    core = _unwrap(fan)
    was = core.training
    core.eval()
    ws_s = val.ws_src[val.src]
    dw = target_delta(ws_s, val.r, bank, th)
    pred = predict(core, val.kp_s, val.kp_t)
    L = core.config.action_layers
    err = (pred - dw)[:, :L].flatten(1).norm(dim=1)
    ref = dw[:, :L].flatten(1).norm(dim=1).clamp_min(1e-8)
    out = {
        "val_loss": float(fan_loss(pred, dw, cfg.lam, L)),
        "val_dw_rel_error": float((err / ref).mean()),
        "val_dw_rel_error_median": float((err / ref).median()),
    }
    if renderer is not None and cfg.val_render > 0:
        m = min(cfg.val_render, len(val))
        kp_o, found = renderer.landmarks(ws_s[:m] + pred[:m])
        kp_t = val.kp_t[:m].numpy()
        kp_s = val.kp_s[:m].numpy()
        if found.any():
            out["val_nme"] = float(nme_points(kp_o[found], kp_t[found]).mean())
            out["val_nme_no_motion"] = float(nme_points(kp_s[found], kp_t[found]).mean())
            out["val_nme_ratio"] = out["val_nme"] / max(out["val_nme_no_motion"], 1e-8)
        out["val_render_found"] = float(found.mean())
    core.train(was)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------------------------------------------

ProgressFn = Callable[[int, int, dict[str, Any]], None]


def fit(
    fan: torch.nn.Module,
    data: PairSet,
    bank: torch.Tensor,
    th: Thresholds,
    cfg: TrainConfig,
    run_dir: Path | None = None,
    val: PairSet | None = None,
    renderer: Any = None,
    dist: Dist | None = None,
    progress: bool | ProgressFn = True,
    cancel: threading.Event | None = None,
    start_step: int = 0,
    optimizer_state: dict[str, Any] | None = None,
    stop_after: int | None = None,
) -> dict[str, Any]:
    """Optimise ``fan`` on ``data`` for cfg.steps (from ``start_step``); returns the last metrics.

    ``run_dir`` enables checkpoints/metrics; ``stop_after`` stops after that many steps in this call (tests use it
    to simulate a kill). ``progress`` is a bool (tqdm bar) or a callback ``(step, total, metrics)``.
    """
    from tqdm import tqdm

    dist = dist or Dist()
    core = _unwrap(fan)
    L = core.config.action_layers
    decay, no_decay = [], []
    for p in core.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    n = len(data)
    if n < cfg.batch:
        raise RuntimeError(f"only {n} training pairs for a batch of {cfg.batch}")
    per_epoch = n // cfg.batch
    n_val = max(1, min(cfg.max_epochs_val, math.ceil(cfg.steps / per_epoch)))
    val_every = max(1, cfg.steps // n_val)
    local = cfg.batch // dist.world
    ckpt = run_dir / "checkpoint.pt" if run_dir is not None else None
    bar = tqdm(total=cfg.steps, initial=start_step, desc="training", unit="step",
               disable=not (progress is True and dist.main))
    last: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    if run_dir is not None and (run_dir / "metrics.json").exists() and start_step > 0:
        history = json.loads((run_dir / "metrics.json").read_text()).get("validation", [])
    fan.train()
    step = start_step
    t0 = time.time()
    while step < cfg.steps:
        if cancel is not None and cancel.is_set():
            break
        epoch, pos = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 1009 + epoch))
        idx = perm[pos * cfg.batch : (pos + 1) * cfg.batch]
        idx = idx[dist.rank * local : (dist.rank + 1) * local]
        b = data.subset(idx)
        ws_s = data.ws_src[b.src]
        dw = target_delta(ws_s, b.r, bank, th)
        x = fan_inputs(b.kp_s, b.kp_t, core.config)
        lr = lr_at(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = fan_loss(fan(x), dw, cfg.lam, L)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(core.parameters(), 5.0)
        opt.step()
        step += 1
        last = {"step": step, "lr": lr, "loss": float(loss.detach())}
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            bar.set_postfix(loss=f"{last['loss']:.3f}")
            if run_dir is not None and dist.main:
                _append_csv(run_dir / "metrics.csv", {**last, "time_s": round(time.time() - t0, 2)})
        if callable(progress):
            progress(step, cfg.steps, dict(last))
        if val is not None and (step % val_every == 0 or step == cfg.steps):
            if dist.main:
                v = validate(fan, val, bank, th, cfg, renderer)
                last.update(v)
                history.append({"step": step, "epoch": step / per_epoch, "loss": last["loss"], **v})
                if run_dir is not None:
                    (run_dir / "metrics.json").write_text(json.dumps({"validation": history}, indent=1))
            dist.barrier()
        if ckpt is not None and (step % cfg.checkpoint_every == 0 or step == cfg.steps) and dist.main:
            save_checkpoint(ckpt, core, opt, step, torch.tensor([step]))
        if stop_after is not None and step - start_step >= stop_after:
            break
    bar.close()
    last["history"] = history
    return last


def _thresholds(generator: torch.nn.Module, cfg: TrainConfig) -> tuple[Thresholds, dict[str, Any]]:
    radii = measure_layer_radii(generator, cfg.radii_samples, seed=cfg.seed + 99)
    tau = renorm_thresholds(radii, cfg.augment.renorm_percentile)
    stats = {
        "percentile": cfg.augment.renorm_percentile,
        "tau": [round(float(t), 4) for t in tau],
        "radius_median": [round(float(t), 4) for t in radii.median(0).values],
    }
    return Thresholds(tau=tau, w_avg=generator.w_avg.detach().float().cpu()), stats


def train(
    generator: torch.nn.Module,
    generator_ref: str,
    directions: torch.Tensor,
    directions_info: list[dict[str, Any]],
    run_dir: str | Path,
    cfg: TrainConfig,
    generator_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    train_generator_kwargs: dict[str, Any] | None = None,
) -> Any:
    """The AugDistiller end to end in ``run_dir`` (resumes from its checkpoint). Returns the Bundle (rank 0)."""
    from engine.bundle import Bundle
    from engine.distill.sampling import LandmarkRenderer

    dist = init_distributed()
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    doc = {"generator_ref": generator_ref, "generator_kwargs": generator_kwargs or {}, "bank_shape":
           list(directions.shape), "bank_sum": round(float(directions.abs().sum()), 3), "config": asdict(cfg)}
    cfg_file = run / "train_config.json"
    if cfg_file.exists():
        old = json.loads(cfg_file.read_text())
        for key in ("generator_ref", "bank_shape", "bank_sum"):
            if old.get(key) != doc[key]:
                raise ValueError(f"{run} was trained with another {key} ({old.get(key)}): use a new --out")
    dist.barrier()
    if dist.main:
        cfg_file.write_text(json.dumps(doc, indent=1))
    torch.manual_seed(cfg.seed)
    bank = directions.detach().float().cpu()
    th, th_stats = _thresholds(generator, cfg)
    fan_cfg = FANConfig.from_dict({**asdict(cfg.fan), "num_ws": int(generator.num_ws), "w_dim": int(generator.w_dim)})
    data = build_cache(generator, run / "pairs", cfg.pairs, cfg.seed, bank, th, cfg, dist, progress, "pairs")
    val = build_cache(generator, run / "val", cfg.val_pairs, cfg.seed + 100_003, bank, th, cfg, dist, progress, "val")
    fan: torch.nn.Module = FAN(fan_cfg, bank=bank)
    start, opt_state = 0, None
    ckpt = run / "checkpoint.pt"
    if ckpt.exists():
        state = load_checkpoint(ckpt)
        fan.load_state_dict(state["model"])
        start, opt_state = int(state["step"]), state["optimizer"]
    core = fan
    if dist.world > 1:
        fan = torch.nn.parallel.DistributedDataParallel(fan)
    renderer = LandmarkRenderer(generator, detect_size=cfg.detect_size) if dist.main and cfg.val_render else None
    try:
        last = fit(fan, data, bank, th, cfg, run, val, renderer, dist, progress, None, start, opt_state, stop_after)
    finally:
        if renderer is not None:
            renderer.close()
    if not dist.main:
        return None
    infos = [dict(i) for i in directions_info]
    bundle = Bundle(
        generator_ref=generator_ref,
        generator_kwargs=generator_kwargs or {},
        directions=bank,
        directions_info=infos,
        fan=core,
        fan_config=core.config.to_dict(),
        landmark_points=np.asarray(core.config.points),
        meta={
            "trained_steps": int(last.get("step", start)),
            "train_pairs": len(data),
            "val_pairs": len(val),
            "renorm": th_stats,
            "train_config": asdict(cfg),
            "last_validation": {k: v for k, v in last.items() if k.startswith("val_")},
            "world_size": dist.world,
            "train_generator_kwargs": train_generator_kwargs or {},
        },
    )
    bundle.save(run / "bundle")
    return bundle


# ---------------------------------------------------------------------------------------------------------------
# Fine-tuning on one source
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class FinetuneConfig:
    """Per-source fine-tuning settings."""

    sources: int = 16  # jittered copies of ŵ_s
    jitter: float = 0.05  # Gaussian jitter std, relative to the per-layer radius τ_l
    targets_per_source: int = 16
    lr: float = 3e-4
    batch: int = 32
    val_pairs: int = 64
    inversion_steps: int = 200
    faceworld_resolution: int = 128  # render size of the pairs when the bundle's meta does not say (FaceWorld)
    seed: int = 0


def finetune_bundle(
    bundle: Any,
    source: Any,
    steps: int = 300,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    config: FinetuneConfig | None = None,
    generator: torch.nn.Module | None = None,
) -> Any:
    """Implementation of ``engine.distill.finetune.finetune`` (see there)."""
    import copy

    from engine.bundle import Bundle
    from engine.distill.sampling import LandmarkRenderer

    fc = config or FinetuneConfig()
    if bundle.fan is None:
        raise ValueError("the bundle has no trained FAN to fine-tune")
    report = progress or (lambda *_: None)
    if generator is None:
        from engine.generators import load_generator

        # Pairs are rendered at the training resolution (FaceWorld: 128 px), like the bundle's own training.
        kw = dict(bundle.generator_kwargs)
        if "train_generator_kwargs" in bundle.meta:
            kw.update(bundle.meta["train_generator_kwargs"])
        elif bundle.resolved_generator_ref().lower() == "faceworld":
            kw["resolution"] = fc.faceworld_resolution
        generator = load_generator(bundle.resolved_generator_ref(), device="cpu", **kw)
    gen = generator
    if isinstance(source, np.ndarray):
        from engine.inversion import invert

        report(0, steps, {"stage": "inverting"})
        res = invert(bundle.generator("cpu"), source, steps=fc.inversion_steps, cancel=cancel,
                     progress=lambda s, t, loss: report(0, steps, {"stage": "inverting", "step": s, "of": t,
                                                                    "loss": float(loss)}))
        ws_hat = res.ws.detach().float().cpu()
    else:
        ws_hat = torch.as_tensor(source).detach().float().cpu()
        if ws_hat.ndim == 2:
            ws_hat = ws_hat[None]
    if ws_hat.shape[1:] != (gen.num_ws, gen.w_dim):
        raise ValueError(f"source ws must be [1, {gen.num_ws}, {gen.w_dim}], got {tuple(ws_hat.shape)}")
    meta = dict(bundle.meta)
    train_cfg = TrainConfig.from_dict(meta.get("train_config", {})) if meta.get("train_config") else TrainConfig()
    train_cfg.steps = steps
    train_cfg.batch = fc.batch
    train_cfg.lr = fc.lr
    train_cfg.warmup = max(1, steps // 20)
    train_cfg.val_render = 0
    th_doc = meta.get("renorm", {})
    bank = bundle.directions.detach().float().cpu()
    if "tau" in th_doc:
        th = Thresholds(torch.tensor(th_doc["tau"]), gen.w_avg.detach().float().cpu())
    else:
        th, _ = _thresholds(gen, train_cfg)
    rng = torch.Generator().manual_seed(fc.seed)
    fan = copy.deepcopy(bundle.fan).cpu()

    def _sources(n: int) -> torch.Tensor:
        noise = torch.randn(n, *ws_hat.shape[1:], generator=rng) / math.sqrt(ws_hat.shape[-1])
        noise[:, bundle.fan.config.action_layers :] = 0
        return ws_hat + noise * th.tau[None, :, None] * fc.jitter

    report(0, steps, {"stage": "rendering pairs"})
    with LandmarkRenderer(gen, detect_size=train_cfg.detect_size) as renderer:
        sets = []
        for n_src, n_t in ((fc.sources, fc.targets_per_source), (max(1, fc.val_pairs // 8), 8)):
            ws = _sources(n_src)
            d = make_pairs(ws, bank, th, renderer, train_cfg.augment, n_t, rng)
            sets.append(PairSet(ws, torch.from_numpy(d["src"]), torch.from_numpy(d["r"]),
                                torch.from_numpy(d["kp_s_all"][d["src"]]), torch.from_numpy(d["kp_t"])))
        data, val = sets
        if len(data) < train_cfg.batch:
            raise RuntimeError(f"only {len(data)} usable fine-tuning pairs (faces not detected on the source?)")
        before = validate(fan, val, bank, th, train_cfg)
        last = fit(fan, data, bank, th, train_cfg, progress=lambda s, t, m: report(s, t, {"stage": "training", **m}),
                   cancel=cancel)
        after = validate(fan, val, bank, th, train_cfg)
    fan.eval()
    meta["finetune"] = {
        "steps": int(last.get("step", 0)),
        "source_ws_norm": float(ws_hat.norm()),
        "val_before": before,
        "val_after": after,
        "cancelled": bool(cancel is not None and cancel.is_set()),
    }
    return Bundle(
        generator_ref=bundle.generator_ref,
        generator_kwargs=dict(bundle.generator_kwargs),
        directions=bank,
        directions_info=[dict(i) for i in bundle.directions_info],
        fan=fan,
        fan_config=fan.config.to_dict(),
        landmark_points=bundle.landmark_points,
        meta=meta,
    )
