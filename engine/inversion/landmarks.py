"""The landmark fit, the differentiable landmark term, and the landmark checks of the final code.

mediapipe is not differentiable, so it is treated as a black box and linearised in a small subspace B of W+ (the
bundle's direction bank when given, else the top principal axes of w on the action layers): the Jacobian J of the
face points with respect to the coefficients along B is measured by finite differences (one batched render and
detection per direction). A few Levenberg-Marquardt steps on the landmark error then fix the head pose, which
pixel losses alone get stuck on. During the pixel optimisation the linearised model ``p(ws) ≈ p_a + J B⁺(ws − ws_a)``
is a differentiable landmark term, re-anchored on a fresh detection every ``landmark_every`` steps.

The default points (``lm_fit_points="pose_iris"``) are the jaw line, nose, mouth and irises, not the eyelids and
brows: mediapipe's lid and brow points are biased on FaceWorld renders, and the region loss recovers those
features from the pixels instead.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from engine.generators.protocol import Generator
    from engine.inversion.context import Run
    from engine.landmarks.base import LandmarkDetector


def pca_basis(generator: Generator, n: int, action_layers: int = 8, seed: int = 0,
              samples: int = 2000) -> torch.Tensor:
    """Top-n principal axes of w (z ~ N(0, I)) on the first ``action_layers`` layers, each scaled to one standard
    deviation of w along it -> [n, num_ws, w_dim]."""
    import torch

    device = generator.w_avg.device
    z = torch.randn(samples, generator.z_dim, generator=torch.Generator().manual_seed(seed + 1)).to(device)
    with torch.no_grad():
        w = generator.mapping(z, None)[:, 0].float()
    w = w - w.mean(0)
    _, sv, vt = torch.linalg.svd(w, full_matrices=False)
    std = sv[:n] / (samples - 1) ** 0.5
    out = torch.zeros(n, generator.num_ws, generator.w_dim, device=device)
    out[:, :action_layers] = (vt[:n] * std[:, None])[:, None, :]
    return out


class LandmarkProxy:
    """mediapipe linearised in a subspace of W+: finite-difference Jacobian, Levenberg-Marquardt fit, and a
    differentiable landmark loss around an anchor."""

    def __init__(
        self, generator: Generator, detector: LandmarkDetector, basis: Any, target_points: np.ndarray, fd_step: float,
        points: str = "all",
    ) -> None:
        import torch

        from engine.fan import default_points
        from engine.landmarks.geometry import interocular

        self.g = generator
        self.det = detector
        idx = np.asarray(default_points(), np.int64)  # iBUG-68 + irises: 78 points
        if points == "pose":  # jaw line, nose and mouth: the eyes, irises and brows are left to the region loss
            idx = np.concatenate([idx[:17], idx[27:36], idx[48:68]])
        elif points == "pose_iris":  # the same plus the 10 iris points (no eyelids, no brows)
            idx = np.concatenate([idx[:17], idx[27:36], idx[48:68], idx[68:78]])
        elif points == "contour_iris":  # jaw line, nose and irises only (the mouth is left to the region loss too)
            idx = np.concatenate([idx[:17], idx[27:36], idx[68:78]])
        elif points != "all":
            raise ValueError(
                f"InversionConfig.lm_fit_points must be 'all', 'pose', 'pose_iris' or 'contour_iris', got {points!r}"
            )
        self.idx = idx
        self.basis = basis.detach().float().to(generator.w_avg.device)  # [n, L, C]
        flat = self.basis.reshape(self.basis.shape[0], -1)
        self.pinv = torch.linalg.pinv(flat.double()).float()  # [L*C, n]: c = dws_flat @ pinv
        self.fd = fd_step
        self.pt = np.asarray(target_points, np.float64)[self.idx]
        self.iod = max(interocular(np.asarray(target_points)), 1e-6)
        self.jac: Any = None  # [2K, n] in inter-ocular units per coefficient
        self.ws_a: Any = None
        self.p_a: Any = None
        self.ready = False

    def _err(self, q: np.ndarray) -> float:
        """Mean distance of the fitted points [K, 2] to the target's, in the target's inter-ocular distances."""
        return float(np.linalg.norm(q - self.pt, axis=-1).mean() / self.iod)

    def _detect(self, ws: Any) -> list[np.ndarray | None]:
        import torch

        from engine.media import to_uint8

        out = []
        with torch.no_grad():
            for i in range(0, ws.shape[0], 16):
                imgs = to_uint8(self.g.synthesis(ws[i : i + 16], noise_mode="const"))
                for im in imgs:
                    d = self.det.detect(im)
                    out.append(np.asarray(d.points, np.float64)[self.idx] if d.found else None)
        return out

    def _jacobian(self, ws: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
        import torch

        n = self.basis.shape[0]
        batch = torch.cat([ws, ws + self.fd * self.basis])  # [n + 1, L, C]
        pts = self._detect(batch)
        if pts[0] is None:
            return None, None
        cols = []
        for i in range(n):
            q = pts[i + 1]
            cols.append(np.zeros(pts[0].size) if q is None else (q - pts[0]).ravel() / (self.fd * self.iod))
        return pts[0], np.stack(cols, 1)

    def fit(self, ws: Any, iters: int, notes: list[str], cancel: threading.Event | None) -> Any:
        """Levenberg-Marquardt on the landmark error in the subspace; returns the improved ws [1, L, C]."""
        import torch

        from engine.inversion.context import requested

        mu = 1e-2
        start = err = None
        for _ in range(iters):
            if requested(cancel):
                break
            p0, jac = self._jacobian(ws)
            if p0 is None:
                notes.append("landmark fit stopped: no face on the current rendering")
                break
            if start is None:
                start = err = self._err(p0)
            e = (self.pt - p0).ravel() / self.iod
            jtj, jte = jac.T @ jac, jac.T @ e
            improved = False
            for _try in range(4):
                delta = np.linalg.solve(jtj + mu * (np.diag(np.diag(jtj)) + 1e-3 * np.eye(len(jtj))), jte)
                step = torch.as_tensor(delta, dtype=torch.float32, device=ws.device) @ self.basis.flatten(1)
                cand = ws + step.reshape(ws.shape)
                q = self._detect(cand)[0]
                if q is not None and self._err(q) < err:
                    ws, err, improved = cand, self._err(q), True
                    mu = max(mu / 3, 1e-4)
                    break
                mu *= 4
            self.jac = jac
            if not improved:
                break
        if self.jac is not None:
            self.ws_a, self.p_a = ws.clone(), None
            q = self._detect(ws)[0]
            if q is not None:
                self.p_a = q
                self.ready = True
            notes.append(f"landmark fit: NME({len(self.idx)} pts) {start:.4f} -> {err:.4f}")
        return ws

    def anchor(self, ws: Any, points_478: np.ndarray) -> None:
        """Re-linearise around ws with its freshly detected landmarks [478, 2]."""
        if self.jac is None:
            return
        self.ws_a = ws.detach().clone()
        self.p_a = np.asarray(points_478, np.float64)[self.idx]
        self.ready = True

    def loss(self, ws: Any) -> Any:
        """Differentiable landmark loss: mean squared point error (inter-ocular units) of the linearised model."""
        import torch

        c = (ws - self.ws_a).reshape(1, -1) @ self.pinv  # [1, n]
        jac = torch.as_tensor(self.jac, dtype=torch.float32, device=ws.device)
        resid = torch.as_tensor((self.p_a - self.pt).ravel() / self.iod, dtype=torch.float32, device=ws.device)
        r = resid + (c @ jac.T)[0]
        return r.pow(2).reshape(-1, 2).sum(-1).mean()


def landmark_basis(run: Run, basis: torch.Tensor | None) -> torch.Tensor | None:
    """The subspace of the landmark fit and the region search: the caller's ``basis`` (e.g. a bank), else the
    principal axes of w when either phase will run (None when neither needs one)."""
    cfg = run.cfg
    if basis is None and run.target_points is not None and (cfg.lm_gn_iters > 0 or cfg.region_search > 0):
        return pca_basis(run.generator, cfg.lm_basis, cfg.lm_action_layers, cfg.seed)
    return basis


def fit_landmarks(run: Run, ws: torch.Tensor, basis: torch.Tensor | None) -> tuple[torch.Tensor, LandmarkProxy | None]:
    """The landmark fit of ``ws`` -> (fitted ws, the linearised landmark term); (ws, None) when it does not run."""
    cfg = run.cfg
    if run.target_points is None or cfg.lm_gn_iters <= 0:
        return ws, None
    proxy = LandmarkProxy(run.generator, run.detector, basis, run.target_points, cfg.lm_fd_step, cfg.lm_fit_points)
    return proxy.fit(ws, cfg.lm_gn_iters, run.notes, run.cancel), proxy


def final_code(run: Run, ws: torch.Tensor, step: int, moved: bool) -> tuple[torch.Tensor, float | None]:
    """The returned code and its landmark NME (None when landmarks were never checked).

    The last code is kept; ``select_by_landmarks`` instead takes the action layers from the best-NME checkpoint
    when it is clearly better (by > 0.002), which undid the pixel phases' expression gains and is off by default.
    ``step``: the last optimisation step; ``moved``: whether the refinement changed the code since then.
    """
    import torch

    hist, best = run.nme_history, run.best
    if best is None:
        return ws, None
    if not run.cfg.select_by_landmarks:
        last_nme = hist[-1][1] if hist and hist[-1][0] == step and not moved else None
        if last_nme is None:
            _, d = run.detect(ws)
            last_nme = run.nme(d) if d.found else None
        return ws, last_nme
    last_nme = hist[-1][1] if hist else None
    if last_nme is not None and hist[-1][0] == step and best[0] < last_nme - 0.002:
        # pose/expression (action layers) from the best-landmark checkpoint, colour/texture from the last code
        n_act = run.cfg.lm_action_layers
        ws = torch.cat([best[2][:, :n_act], ws[:, n_act:]], dim=1)
        _, d = run.detect(ws)
        landmark_nme = run.nme(d) if d.found else float("inf")
        run.notes.append(
            f"action layers from the checkpoint with the best landmark NME ({best[0]:.4f} vs last "
            f"{last_nme:.4f}); combined code NME {landmark_nme:.4f}"
        )
        return ws, landmark_nme
    return ws, last_nme if last_nme is not None else best[0]
