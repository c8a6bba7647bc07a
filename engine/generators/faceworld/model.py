"""The FaceWorld module: a StyleGAN2-shaped generator (mapping + synthesis) over a procedural, differentiable face.

Latent semantics mirror StyleGAN's layers: ``ws[:, 0:8]`` carry pose, expression and identity geometry, mixed
(every parameter reads a seeded random projection of several of these layers, and action and identity
parameters share layers); ``ws[:, 8:14]`` carry colour, texture and lighting only. All weights are drawn from a
fixed seed at construction: no files are needed (the world statistics are cached in the user cache folder, as
a speed-up only) and two instances with the same seed are identical.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from engine.generators.faceworld import params as P
from engine.generators.faceworld import render as R

_SEED_BASE = 0x0FACE  # fixed seed constant of the decoder weights (combined with FaceWorld(seed=...))
_GEOMETRY_LAYERS = 8  # layers 0..7: pose + expression + identity geometry; 8..13: appearance
_STATS_VERSION = 2  # bump when the statistics' computation changes (invalidates cached files)
_STATS_MEMO: dict[str, tuple[Tensor, Tensor, Tensor]] = {}  # per-process cache of _world_stats


@dataclass(frozen=True)
class FaceWorldConfig:
    """Options of the FaceWorld generator."""

    resolution: int = 256  # output size (square), 128..512
    seed: int = 0  # selects the seeded mapping/decoder weights (a different "world" per seed)
    z_dim: int = 512  # latent size
    w_dim: int = 512  # intermediate latent size
    num_ws: int = 14  # number of style vectors (as a 256^2 StyleGAN2)
    mapping_layers: int = 8  # depth of the mapping MLP
    layers_per_param: int = 3  # every parameter is spread over this many layers
    stats_samples: int = 65536  # samples for w_avg and the score whitening (4096 left action/identity correlations
    #                             up to 0.07, enough to leak identity into CluDistiller directions: RESULTS.md,
    #                             "FaceWorld's score whitening")
    cache_stats: bool = True  # keep the statistics in the user cache folder (computing them takes a few seconds)
    render_chunk: int = 2  # eager rendering in chunks of this many images (cache-friendly); 0 = whole batch at once


class FaceWorld(nn.Module):
    """Procedural face generator with the StyleGAN2 interface and known ground truth.

    >>> fw = FaceWorld(resolution=256)
    >>> ws = fw.mapping(torch.randn(4, 512))       # [4, 14, 512]
    >>> img = fw.synthesis(ws)                     # [4, 3, 256, 256] in [-1, 1]
    >>> fw.decode(ws)["yaw"]                       # [4] radians
    """

    POSE_PARAMS = P.POSE_PARAMS
    EXPRESSION_PARAMS = P.EXPRESSION_PARAMS
    ACTION_PARAMS = P.ACTION_PARAMS
    IDENTITY_GEOMETRY_PARAMS = P.IDENTITY_GEOMETRY_PARAMS
    APPEARANCE_PARAMS = P.APPEARANCE_PARAMS
    IDENTITY_PARAMS = P.IDENTITY_PARAMS
    PARAM_NAMES = P.ALL_PARAMS

    def __init__(self, resolution: int = 256, seed: int = 0, config: FaceWorldConfig | None = None) -> None:
        super().__init__()
        cfg = config or FaceWorldConfig(resolution=resolution, seed=seed)
        if not 64 <= cfg.resolution <= 1024:
            raise ValueError(f"FaceWorld resolution must be within 64..1024 (128..512 recommended), got {resolution}")
        self.config = cfg
        self.z_dim, self.w_dim, self.num_ws, self.c_dim = cfg.z_dim, cfg.w_dim, cfg.num_ws, 0
        self.img_resolution = cfg.resolution
        self.img_channels = 3
        gen = torch.Generator().manual_seed(_SEED_BASE + 7919 * cfg.seed)

        # mapping MLP (StyleGAN2-like: normalised z, lrelu layers with equalised-lr style scaling)
        weights = [torch.randn(cfg.w_dim, cfg.z_dim if i == 0 else cfg.w_dim, generator=gen) for i in range(8)]
        weights = weights[: cfg.mapping_layers]
        for i, w in enumerate(weights):
            self.register_buffer(f"map_w{i}", w / math.sqrt(w.shape[1]))
            self.register_buffer(f"map_b{i}", 0.1 * torch.randn(cfg.w_dim, generator=gen))

        # decoder: parameter p reads sum_l <ws[:, l] - w_avg, proj[p, l]> over its layers
        names = P.ALL_PARAMS
        proj = torch.zeros(len(names), cfg.num_ws, cfg.w_dim)
        for j, name in enumerate(names):
            lo, hi = (0, _GEOMETRY_LAYERS) if name in P.GEOMETRY_PARAMS else (_GEOMETRY_LAYERS, cfg.num_ws)
            layers = lo + torch.randperm(hi - lo, generator=gen)[: cfg.layers_per_param]
            mix = 0.5 + torch.rand(len(layers), generator=gen)  # unequal weights across the layers
            for layer, m in zip(layers.tolist(), mix.tolist()):
                proj[j, layer] = m * torch.randn(cfg.w_dim, generator=gen) / math.sqrt(cfg.w_dim)

        # statistics (deterministic): w_avg, a ZCA whitening of the scores within each group, and the std of every
        # score under z ~ N(0, I). Computed once per world and cached (memory + user cache folder): see _world_stats.
        proj, w_avg, score_std = _world_stats(self, proj, gen)
        self.register_buffer("proj", proj)
        self.register_buffer("w_avg", w_avg)
        self.register_buffer("score_std", score_std)
        squash = [P.SQUASH[name] for name in names]
        self.register_buffer("sq_is_tanh", torch.tensor([s.kind == "tanh" for s in squash], dtype=torch.float32))
        self.register_buffer("sq_gain", torch.tensor([s.gain for s in squash]))
        self.register_buffer("sq_bias", torch.tensor([s.bias for s in squash]))
        self.register_buffer("sq_scale", torch.tensor([s.scale for s in squash]))
        self.register_buffer("sq_offset", torch.tensor([s.offset for s in squash]))

        # pixel-centre grid in [-1, 1], y up
        n = cfg.resolution
        t = (torch.arange(n, dtype=torch.float32) + 0.5) / n * 2 - 1
        self.register_buffer("grid_x", t[None, :].expand(n, n).contiguous())
        self.register_buffer("grid_y", (-t)[:, None].expand(n, n).contiguous())

    # ------------------------------------------------------------------ mapping
    def _map(self, z: Tensor) -> Tensor:
        x = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
        for i in range(self.config.mapping_layers):
            x = nn.functional.leaky_relu(x @ getattr(self, f"map_w{i}").T + getattr(self, f"map_b{i}"), 0.2)
            x = x * math.sqrt(2.0)
        return x

    def mapping(
        self,
        z: Tensor,
        c: Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> Tensor:
        """z [N, 512] -> ws [N, 14, 512]; truncation towards w_avg as in StyleGAN2 (layers < cutoff, all if None)."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"expected z of shape [N, {self.z_dim}], got {tuple(z.shape)}")
        w = self._map(z.to(self.w_avg.dtype))
        ws = w[:, None, :].repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            trunc = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
            ws = torch.cat([trunc, ws[:, cutoff:]], 1)
        return ws

    # ------------------------------------------------------------------ decoding
    def _check_ws(self, ws: Tensor) -> None:
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"expected ws of shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")

    def scores(self, ws: Tensor) -> Tensor:
        """Standardised latent scores [N, P] (order: PARAM_NAMES), ~N(0, 1) under z ~ N(0, I), 0 at w_avg."""
        self._check_ws(ws)
        return torch.einsum("nlw,plw->np", ws - self.w_avg, self.proj) / self.score_std

    def decode(self, ws: Tensor) -> dict[str, Tensor]:
        """ws [N, 14, 512] -> named ground-truth parameters, each [N] (see ``params`` for units and ranges)."""
        r = self.scores(ws) * self.sq_gain + self.sq_bias
        th = torch.tanh(r) * self.sq_scale + self.sq_offset
        sg = torch.sigmoid(r)
        v = sg + (th - sg) * self.sq_is_tanh
        return {name: v[:, i] for i, name in enumerate(self.PARAM_NAMES)}

    # ------------------------------------------------------------------ rendering
    def render_params(self, params: dict[str, Tensor], features: bool = True) -> Tensor:
        """Render named parameters ({name: [N]}, all of PARAM_NAMES) -> [N, 3, H, W] in [-1, 1].

        ``features=False`` leaves out the painted eyes, brows, mouth and nostrils (a negative control).
        """
        missing = [k for k in self.PARAM_NAMES if k not in params]
        if missing:
            raise ValueError(f"render_params: missing parameters {missing}")
        n = params["yaw"].shape[0]
        chunk = self.config.render_chunk
        # Eager CPU rendering is bound by memory traffic: ~500 element-wise passes over [N, H, W] maps, which stay in
        # cache only for small N. Chunking is skipped while tracing/exporting/compiling so graphs keep a dynamic batch.
        tracing = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()
        if chunk > 0 and n > chunk and not tracing:
            return torch.cat([self._render({k: v[i : i + chunk] for k, v in params.items()}, features)
                              for i in range(0, n, chunk)])
        return self._render(params, features)

    def _render(self, params: dict[str, Tensor], features: bool) -> Tensor:
        return R.render(params, self.grid_x, self.grid_y, features=features, resolution=self.img_resolution)

    def synthesis(self, ws: Tensor, noise_mode: str = "const", **_: object) -> Tensor:
        """ws [N, 14, 512] -> images [N, 3, H, W] in [-1, 1] (differentiable; ``noise_mode`` is accepted and unused)."""
        return self.render_params(self.decode(ws))

    def forward(self, z: Tensor, c: Tensor | None = None, truncation_psi: float = 1.0, **kw: object) -> Tensor:
        """z [N, 512] -> images [N, 3, H, W]."""
        return self.synthesis(self.mapping(z, c, truncation_psi=truncation_psi))

    def neutral_params(self, n: int = 1) -> dict[str, Tensor]:
        """The average face's parameters (decode of w_avg), each [n] — handy for controlled renders."""
        return {k: v.clone() for k, v in self.decode(self.w_avg.expand(n, self.num_ws, self.w_dim)).items()}

    def keypoints_from_params(self, params: dict[str, Tensor]) -> dict[str, Tensor]:
        """Named parameters -> analytic pixel positions {name: [N, 2]} (x right, y down, pixel i covers [i, i+1))."""
        g = R.geometry(params)
        return {k: R.project(params, q, self.img_resolution) for k, q in R.local_keypoints(params, g).items()}

    def keypoints(self, ws: Tensor) -> dict[str, Tensor]:
        """ws [N, 14, 512] -> analytic pixel positions [N, 2] of eye centres, irises, brow centres, nose tip,
        mouth corners, outer and inner lip centres and chin (names: see ``render.local_keypoints``)."""
        return self.keypoints_from_params(self.decode(ws))


# ---------------------------------------------------------------------------------------------------------------
# World statistics
# ---------------------------------------------------------------------------------------------------------------


def _stats_key(cfg: FaceWorldConfig) -> str:
    fields = (_STATS_VERSION, cfg.seed, cfg.z_dim, cfg.w_dim, cfg.num_ws, cfg.mapping_layers, cfg.layers_per_param,
              cfg.stats_samples)
    return hashlib.sha256(repr(fields).encode()).hexdigest()[:16]


def _stats_file(key: str) -> Path:
    from engine.resources import user_cache_dir

    return user_cache_dir() / "faceworld" / f"stats-{key}.safetensors"


@torch.no_grad()
def _compute_stats(fw: FaceWorld, proj: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """w_avg, whitened projections and score stds from ``stats_samples`` mapped latents (moments summed in float64).

    The scores of each group (geometry = pose + expression + identity geometry, and appearance) are decorrelated by
    ZCA whitening against the covariance of w: the mapped w is anisotropic, so raw random projections would
    correlate (e.g. the two blinks, or an action with an identity parameter).
    """
    cfg = fw.config
    n, d, chunk = cfg.stats_samples, cfg.w_dim, 8192
    total = torch.zeros(d, dtype=torch.float64)
    outer = torch.zeros(d, d, dtype=torch.float64)
    for start in range(0, n, chunk):
        z = torch.randn(min(chunk, n - start), cfg.z_dim, generator=gen)
        w = fw._map(z)
        total += w.sum(0, dtype=torch.float64)
        outer += (w.T @ w).double()  # float32 products per chunk, float64 accumulation
    mean = total / n
    cov = (outer - n * torch.outer(mean, mean)) / (n - 1)  # [D, D]
    names = P.ALL_PARAMS
    proj = proj.double()
    groups = [
        [j for j, k in enumerate(names) if k in P.GEOMETRY_PARAMS],
        [j for j, k in enumerate(names) if k not in P.GEOMETRY_PARAMS],
    ]
    for idx in groups:
        p = proj[idx].sum(1)  # [G, D]: ws repeats w in every layer, so a score reads the sum of its layer rows
        evals, evecs = torch.linalg.eigh(p @ cov @ p.T)
        zca = (evecs * evals.clamp(min=1e-12).rsqrt()) @ evecs.T
        proj[idx] = torch.einsum("pq,qlw->plw", zca, proj[idx])
    p = proj.sum(1)
    std = torch.einsum("pd,de,pe->p", p, cov, p).clamp(min=1e-12).sqrt()
    return proj.float(), mean.float(), std.float().clamp(min=1e-6)


def _world_stats(fw: FaceWorld, proj: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """(proj [P, L, D], w_avg [D], score_std [P]) of a world: from memory, the user cache, or computed (and cached).

    A cached file is only a speed-up: it holds exactly what ``_compute_stats`` returned for the same key, and an
    unreadable or mismatching one is recomputed and replaced.
    """
    cfg = fw.config
    key = _stats_key(cfg)
    if key in _STATS_MEMO:
        return tuple(t.clone() for t in _STATS_MEMO[key])  # type: ignore[return-value]
    shapes = (tuple(proj.shape), (cfg.w_dim,), (proj.shape[0],))
    stats = None
    path = _stats_file(key) if cfg.cache_stats else None
    if path is not None and path.is_file():
        try:
            from safetensors.torch import load_file

            f = load_file(str(path))
            stats = (f["proj"], f["w_avg"], f["score_std"])
            if tuple(tuple(t.shape) for t in stats) != shapes or not all(bool(t.isfinite().all()) for t in stats):
                stats = None
        except Exception:  # a broken cache file is recomputed, never trusted
            stats = None
    if stats is None:
        stats = _compute_stats(fw, proj, gen)
        if path is not None:
            try:
                from safetensors.torch import save_file

                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                save_file({"proj": stats[0].contiguous(), "w_avg": stats[1], "score_std": stats[2]}, str(tmp))
                os.replace(tmp, path)
            except OSError:
                pass  # a read-only cache folder only costs the recomputation next time
    _STATS_MEMO[key] = tuple(t.clone() for t in stats)  # type: ignore[assignment]
    return stats
