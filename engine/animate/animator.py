"""The Animator: the one object that turns driver landmarks into animated frames of a source portrait.

The CLI (``d2a animate``/``eval``/``demo``) and the desktop app drive the same object::

    anim = Animator(load_bundle(), device="cpu")
    anim.set_source(image_uint8 | ws | seed)          # an image is inverted into W+ first
    anim.calibrate(neutral_driver_points)             # relative mode: the driver's neutral reference
    frame = anim.step(driver_points)                  # uint8 [H, W, 3]; None (no face) -> last good output

One step (see ``step_timed`` for the per-stage timing)::

    driver points [478, 2] px --(One-Euro, optional)--> target points in the source frame
        relative: target = src + A (driver - reference)   A = scale * rotation fitted reference -> source
        absolute: target = driver                          (the paper: an aligned crop, same frame as the source;
                                                            ``d2a animate`` rescales a driver video to the source)
    FAN(heatmaps(src, target)) - FAN(heatmaps(src, src)) -> dw [1, num_ws, w_dim]   (split/masks/gains: below)
    ws = ws_source + dw + sliders -> backend(ws) -> uint8 frame

Pose/expression split, region masks and gains act on the FAN's INPUT landmarks (chosen by measurement: the
bank's group labels are not clean enough — on the default bundle the "expression" directions carry pose too, so
zeroing the pose-group coefficients left 29 % of a head turn: RESULTS.md, 'Pose split'). For a target set t
(source frame):

    M      = affine fit source -> t on expression-stable points (eye corners, nose, forehead, temples)
    t_expr = source, with the eyes+irises / brows / lips points taken from M^-1(t) (head motion removed;
             the nose and face contour, which carry the head-turn cues, stay at the source)
    t_mask = t_expr with the points of disabled regions reset to the source as well
    FAN on the batch [t, t_expr, t_mask]  ->  dw_pose = dw(t) - dw(t_expr),  dw_expr = dw(t_mask)
    dw_expr  -= its component along the bank's top ``expr_pose_axes`` pose axes (the CluDistiller removed the
             same kind of axes from its expression directions; the FAN still answers an expression-only target
             with some head motion: pose off left 18 % of the sample clip's head turn, 2.7 % with 3 axes)
    dw     = pose_on * pose_gain * dw_pose + expr_gain * dw_expr

With every region on and both gains 1 this is skipped and dw = dw(t) (one FAN pass). Every FAN output is
taken relative to FAN(source, source), computed once per source: a FAN is not exactly zero at zero motion (the
default bundle's gives a 0.23 rad yaw on the sample source), and no motion must reproduce the source.
Disentangled driving (``drive_disentangled``) uses the same split with two drivers: dw_pose from the pose
driver's t and t_expr, dw_expr from the expression driver's t_mask — one FAN, masked inputs.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from engine.landmarks import schema
from engine.landmarks.geometry import fit_similarity, interocular
from engine.latent.bank import Direction
from engine.latent.mapping import ws_from_seed
from engine.media import to_uint8

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from engine.bundle import Bundle
    from engine.fan import FAN, FANConfig
    from engine.inversion import InversionResult
    from engine.landmarks.base import Detection, LandmarkDetector

REGION_NAMES = (schema.Region.POSE, schema.Region.EYES, schema.Region.MOUTH, schema.Region.BROWS)  # the toggles
# the landmark regions each expression toggle freezes when it is off
_TOGGLE_REGIONS = {
    schema.Region.EYES: (schema.Region.EYES, schema.Region.IRISES),
    schema.Region.BROWS: (schema.Region.BROWS,),
    schema.Region.MOUTH: (schema.Region.MOUTH,),
}
SLIDER_LAYERS = 8  # the action layers that localised sliders filter (the CluDistiller's default action_layers)
STAGES = ("align+heatmaps", "fan", "generator", "convert")


def _default_regions() -> dict[str, bool]:
    return {name: True for name in REGION_NAMES}


@dataclass
class AnimatorConfig:
    """Live-tunable settings of the Animator (mutable; a change takes effect at the next step)."""

    mode: str = "relative"  # "relative" (driver motion vs its calibrated reference) | "absolute" (paper)
    pose_gain: float = 1.0  # scale of the head-motion part of dw (dw_pose, see the module docstring)
    expr_gain: float = 1.0  # scale of the expression part of dw (dw_expr)
    regions: dict[str, bool] = field(default_factory=_default_regions)  # pose / eyes / mouth / brows on-off
    smoothing: float = 0.0  # One-Euro strength on the driver points: 0 = off, 1 = strong
    interpolate: int = 0  # in-between frames per step, by linear interpolation of dw (see step_frames)
    expr_pose_axes: int = 3  # with a split: remove the bank's top-N pose axes from dw_expr (0 = off; measured per
    #                          bundle with benchmarks/pose_split.py; 3 for the embedded one: RESULTS.md, 'Pose split')
    localise_sliders: bool = True  # an expression slider moves only its region (engine.latent.locality around the
    #                                source, computed once per region and source: ~1 s at 256² on 2 cores)

    def validate(self) -> None:
        """Raise ValueError on an invalid setting."""
        if self.mode not in ("relative", "absolute"):
            raise ValueError(f"mode must be 'relative' or 'absolute', got {self.mode!r}")
        unknown = set(self.regions) - set(REGION_NAMES)
        if unknown:
            raise ValueError(f"unknown regions {sorted(unknown)}; known: {list(REGION_NAMES)}")
        if self.smoothing < 0:
            raise ValueError("smoothing must be >= 0")
        if self.interpolate < 0:
            raise ValueError("interpolate must be >= 0")
        if self.expr_pose_axes < 0:
            raise ValueError("expr_pose_axes must be >= 0")


class SynthesisBackend(Protocol):
    """Anything that renders W+ codes: ``backend(ws [N, num_ws, w_dim]) -> images``.

    Accepted outputs: a float tensor/array [N, 3, H, W] in about [-1, 1], or uint8 [N, H, W, 3].
    """

    def __call__(self, ws: torch.Tensor) -> Any: ...


def _default_backend(generator: torch.nn.Module) -> Any:
    """The generator's own synthesis, torch eager, fp32, constant noise, no warm-up (the Animator's first frame
    warms it up anyway)."""
    from engine.runtime import RuntimeConfig
    from engine.runtime.torch_backend import TorchBackend

    return TorchBackend(generator, RuntimeConfig(warmup_runs=0))


# ----------------------------------------------------------------------------------------------- driving geometry


def relative_target(
    source: np.ndarray, driver: np.ndarray, reference: np.ndarray, stable: np.ndarray | None = None
) -> np.ndarray:
    """Relative motion: ``source + A (driver - reference)`` with A = scale·rotation fitted reference -> source.

    All points [K, 2] pixels; ``stable`` selects the point indices used for the fit (None: all).
    """
    idx = slice(None) if stable is None else stable
    a, _ = fit_similarity(reference[idx], source[idx])
    return (source + (driver - reference) @ a.T).astype(np.float32)


def absolute_target(source: np.ndarray, driver: np.ndarray, stable: np.ndarray | None = None) -> np.ndarray:
    """The driver's points moved onto the source by a similarity fit (a helper; absolute mode uses the driver's
    points as they are, as the paper does with aligned crops — fitting would also remove the driver's roll,
    translation and scale, measured: self-driving NME 0.36 with the fit)."""
    idx = slice(None) if stable is None else stable
    a, b = fit_similarity(driver[idx], source[idx])
    return (driver @ a.T + b).astype(np.float32)


def neutral_scores(frames: list[np.ndarray]) -> np.ndarray:
    """How far each driver frame is from neutral (lower = more neutral); used by ``auto_calibrate``.

    Criterion (per frame, all terms in inter-ocular units after a similarity alignment to the first frame):
    distance of the frame's aligned landmarks to the per-point median of all frames (people look neutral most of
    the time, so the median shape is a robust neutral estimate) + 2 x mouth opening (inner lips 13/14) +
    |roll| (eye-line angle, radians) + yaw asymmetry |d(nose, left eye) - d(nose, right eye)| / inter-ocular.
    """
    pts = [np.asarray(p, np.float64) for p in frames]
    ref = pts[0]
    aligned = []
    for p in pts:
        a, b = fit_similarity(p, ref)
        aligned.append(p @ a.T + b)
    aligned_arr = np.stack(aligned)
    median = np.median(aligned_arr, axis=0)
    iod = max(interocular(ref), 1e-6)
    s = schema
    scores = []
    for raw, al in zip(pts, aligned_arr):
        shape = float(np.linalg.norm(al - median, axis=1).mean()) / iod
        eye_iod = max(interocular(raw), 1e-6)
        mouth = float(np.linalg.norm(raw[s.UPPER_LIP_INNER] - raw[s.LOWER_LIP_INNER])) / eye_iod
        dx, dy = raw[s.LEFT_EYE_OUTER] - raw[s.RIGHT_EYE_OUTER]
        roll = abs(float(np.arctan2(dy, dx)))
        nose = raw[s.NOSE_TIP]
        yaw = abs(float(np.linalg.norm(nose - raw[s.RIGHT_EYE_OUTER]) - np.linalg.norm(nose - raw[s.LEFT_EYE_OUTER])))
        yaw /= eye_iod
        scores.append(shape + 2.0 * mouth + roll + yaw)
    return np.asarray(scores)


def rescale_driver(points: np.ndarray, driver_shape: tuple[int, ...], source_shape: tuple[int, ...]) -> np.ndarray:
    """Driver landmarks [K, 2] px in a frame of ``driver_shape`` (H, W, ...) -> the same landmarks in a frame of
    ``source_shape``. Absolute mode takes the driver's landmarks as the target in the source's frame (the paper's
    aligned crops), so a driver frame of another size is first stretched onto the source image."""
    h, w = source_shape[:2]
    return points * np.array([w / driver_shape[1], h / driver_shape[0]], np.float32)


# ----------------------------------------------------------------------------------------------- the animator


class Animator:
    """Animate a source portrait from driver landmarks with a bundle (generator + direction bank + FAN).

    Attributes used by the app: ``config`` (AnimatorConfig, mutable), ``sliders`` (dict[int, float]: manual
    offsets along ``bundle.directions[i]``), ``source_image`` (uint8 [H, W, 3], the generator's rendering of the
    source code), ``source_points`` (float32 [478, 2] px, detected on ``source_image``), ``source_ws``
    ([1, num_ws, w_dim]), ``reference_points`` (the calibrated driver reference or None), ``last_frame``.
    """

    def __init__(
        self,
        bundle: Bundle | str | Path | None = None,  # a loaded Bundle, a bundle folder, None: the embedded default
        *,
        device: str = "cpu",  # torch device of the generator and the FAN
        generator: torch.nn.Module | None = None,  # override the bundle's generator (e.g. a fine-tuned copy)
        config: AnimatorConfig | None = None,  # initial settings (mutable later through .config)
        backend: Callable[[Any], Any] | None = None,  # ws -> images; default engine.runtime's TorchBackend
    ) -> None:
        import torch

        from engine.bundle import load_bundle

        if bundle is None or isinstance(bundle, (str, Path)):
            bundle = load_bundle(bundle)
        self.bundle = bundle
        self.device = torch.device(device)
        self.generator = generator if generator is not None else bundle.generator(device)
        self.generator.eval()
        self.backend = backend if backend is not None else _default_backend(self.generator)
        self.config = config if config is not None else AnimatorConfig()
        self.config.validate()
        self.fan: FAN = bundle.fan.to(self.device).eval()
        self.directions = bundle.directions.to(self.device, torch.float32)  # [n, num_ws, w_dim]
        self._pose_axes_cache: dict[int, torch.Tensor | None] = {}
        self.sliders: dict[int, float] = {}
        self.source_ws: torch.Tensor | None = None
        self.source_image: np.ndarray | None = None
        self.source_input: np.ndarray | None = None
        self.source_points: np.ndarray | None = None
        self.reference_points: np.ndarray | None = None
        self.last_frame: np.ndarray | None = None
        self.last_dw: torch.Tensor | None = None
        self.last_ws: torch.Tensor | None = None  # the code of the last output frame [1, num_ws, w_dim]
        self.last_inbetweens: list[np.ndarray] = []
        self.last_timings: dict[str, float] = {}
        self.inversion: InversionResult | None = None
        self._lock = threading.RLock()
        self._detector: LandmarkDetector | None = None
        self._filter: Any = None
        self._filter_strength: float = 0.0
        self._t_auto = 0.0
        self._fan_cfg: FANConfig | None = None
        self._dw0: torch.Tensor | None = None  # FAN(source, source): its zero-motion bias, subtracted
        self._local_filters: dict[str, torch.Tensor] = {}  # region -> localising filter [D, D] around the source

    # ------------------------------------------------------------------------------------------- masks / split
    def _region_points(self, regions: dict[str, bool]) -> np.ndarray:
        """Indices (478 layout) of the points whose motion is frozen by the disabled expression regions."""
        idx = [schema.REGIONS[r] for name, regs in _TOGGLE_REGIONS.items() if not regions.get(name, True) for r in regs]
        return np.unique(np.concatenate(idx)) if idx else np.zeros(0, np.int64)

    def _unposed(self, target: np.ndarray) -> np.ndarray:
        """The target with the head motion (affine fit source -> target on stable points) taken out."""
        idx = schema.EXPRESSION_STABLE
        src = self.source_points[idx].astype(np.float64)
        dst = target[idx].astype(np.float64)
        x = np.concatenate([src, np.ones((len(src), 1))], 1)  # [k, 3]
        m, *_ = np.linalg.lstsq(x, dst, rcond=None)  # dst ≈ x @ m, m [3, 2]
        a, t = m[:2].T, m[2]  # p' = a p + t
        return ((target.astype(np.float64) - t) @ np.linalg.inv(a).T).astype(np.float32)

    def _expression_only(self, target: np.ndarray, regions: dict[str, bool]) -> np.ndarray:
        """Unposed target keeping only the motion of the enabled expression regions; every other point (nose,
        face contour, disabled regions) stays at the source (the nose and contour carry the head-turn cues)."""
        out = self.source_points.copy()
        unposed = self._unposed(target)
        keep = self._region_points({k: not regions.get(k, True) for k in _TOGGLE_REGIONS})
        out[keep] = unposed[keep]
        return out

    def _split_targets(self, t_pose: np.ndarray, t_expr_driver: np.ndarray) -> list[np.ndarray]:
        """[t, t_expr, t_mask] for the split (pose from ``t_pose``, expression from ``t_expr_driver``)."""
        everything = dict.fromkeys(_TOGGLE_REGIONS, True)
        return [
            t_pose,
            self._expression_only(t_pose, everything),
            self._expression_only(t_expr_driver, self.config.regions),
        ]

    def _needs_split(self) -> bool:
        cfg = self.config
        return not (all(cfg.regions.get(r, True) for r in REGION_NAMES) and cfg.pose_gain == 1 and cfg.expr_gain == 1)

    def _pose_axes(self, rank: int) -> torch.Tensor | None:
        """Top ``rank`` principal axes of the bank's pose directions [r, num_ws * w_dim] (None: no pose group)."""
        from engine.latent.axes import principal_axes

        if rank not in self._pose_axes_cache:
            pose = self.bundle.group_indices("pose")
            axes = principal_axes(self.directions[pose].double(), rank).to(self.directions.dtype) if pose else None
            self._pose_axes_cache[rank] = axes
        return self._pose_axes_cache[rank]

    def _combine(self, dws: torch.Tensor) -> torch.Tensor:
        """FAN outputs for [t, t_expr, t_mask] [3, L, C] -> the masked, gained dw [1, L, C].

        dw_expr loses its component along the bank's top pose axes (``expr_pose_axes``): the CluDistiller removed the
        same axes from its expression directions, so an expression-only target should not turn the head; the FAN
        still returns some head motion for it (parallax of the eye and lip points).
        """
        cfg = self.config
        pose_on = 1.0 if cfg.regions.get(schema.Region.POSE, True) else 0.0
        dw_expr = dws[2:3]
        axes = self._pose_axes(cfg.expr_pose_axes) if cfg.expr_pose_axes > 0 else None
        if axes is not None:
            from engine.latent.axes import project_out

            dw_expr = project_out(dw_expr.flatten(1), axes).view_as(dw_expr)
        return (pose_on * cfg.pose_gain * (dws[0:1] - dws[1:2]) + cfg.expr_gain * dw_expr).contiguous()

    def _slider_offset(self) -> torch.Tensor | None:
        active = {int(i): float(v) for i, v in self.sliders.items() if v}
        if not active:
            return None
        n = self.directions.shape[0]
        bad = [i for i in active if not 0 <= i < n]
        if bad:
            raise IndexError(f"slider indices {bad} out of range: the bank has {n} directions")
        off = sum(v * self._slider_direction(i) for i, v in active.items())
        return off.unsqueeze(0)

    def _slider_direction(self, i: int) -> torch.Tensor:
        """Bank direction i as a slider moves it: with ``config.localise_sliders`` an expression direction of a
        masked region (eyes, mouth, brows, ...) is localised around the current source, so that e.g. an eye slider
        no longer changes the face's shape or turns the head (``engine.latent.locality``)."""
        from engine.latent.locality import REGION_PARTS

        v = self.directions[i]
        info = self.bundle.directions_info[i] if i < len(self.bundle.directions_info) else Direction()
        region = str(info.region)
        if (not self.config.localise_sliders or info.group != "expression" or region not in REGION_PARTS
                or self.source_ws is None or self.source_points is None):
            return v
        filt = self._local_filters.get(region)
        if filt is None:
            from engine.latent.locality import source_filter

            pts = self.source_points * (int(self.generator.img_resolution) / self.source_image.shape[1])
            filt = source_filter(self.generator, self.source_ws, pts, region, 40, SLIDER_LAYERS).to(v.device, v.dtype)
            self._local_filters[region] = filt
        out = v.clone()
        out[:SLIDER_LAYERS] = v[:SLIDER_LAYERS] @ filt
        return out

    def reset_sliders(self) -> None:
        """Remove every manual offset."""
        self.sliders.clear()

    # ------------------------------------------------------------------------------------------- source
    def _detect(self, image: np.ndarray) -> Detection:
        if self._detector is None:
            from engine.landmarks import create_detector

            self._detector = create_detector("mediapipe", video_mode=False)
        return self._detector.detect(image)

    def render(self, ws: torch.Tensor) -> np.ndarray:
        """Render W+ codes [N, num_ws, w_dim] through the backend -> uint8 [N, H, W, 3]."""
        return to_uint8(self.backend(ws.to(self.device)))

    def set_source(
        self,
        source: np.ndarray | torch.Tensor | int,
        *,
        steps: int = 300,
        progress: Callable[[int, int, float], None] | None = None,
        cancel: threading.Event | None = None,
        **invert_kwargs: Any,
    ) -> None:
        """Choose the portrait to animate.

        ``source``: an RGB uint8 image [H, W, 3] (inverted into W+ with ``engine.inversion.invert``; ``steps``,
        ``progress(step, total, loss)`` and ``cancel`` are passed on), a W+ code [num_ws, w_dim] or
        [1, num_ws, w_dim], or an int seed (FaceWorld/StyleGAN2 ``mapping`` of a seeded z).
        Raises ValueError when no face is found on the rendered source.
        """
        import torch

        g = self.generator
        self.source_input = None
        self.inversion = None
        if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
            ws = ws_from_seed(g, int(source), device=self.device)
        elif isinstance(source, torch.Tensor):
            ws = source.detach().to(self.device, torch.float32)
            if ws.ndim == 2:
                ws = ws.unsqueeze(0)
            if ws.shape[1:] != (g.num_ws, g.w_dim) or ws.shape[0] != 1:
                raise ValueError(f"source ws must be [1, {g.num_ws}, {g.w_dim}], got {tuple(source.shape)}")
        elif isinstance(source, np.ndarray):
            if source.dtype != np.uint8 or source.ndim != 3 or source.shape[2] != 3:
                raise ValueError(f"source image must be RGB uint8 [H, W, 3], got {source.dtype} {source.shape}")
            from engine.inversion import invert

            res = invert(g, source, steps=steps, progress=progress, cancel=cancel, **invert_kwargs)
            self.inversion = res
            ws = res.ws.to(self.device)
            if res.generator is not None:  # pivotal tuning returns a tuned copy
                from engine.runtime.torch_backend import TorchBackend

                self.generator = res.generator
                if isinstance(self.backend, TorchBackend):  # it renders the untuned generator: same settings, new one
                    self.backend = TorchBackend(self.generator, self.backend.config)
            self.source_input = source
        else:
            raise TypeError(f"source must be an image, a ws tensor or an int seed, got {type(source).__name__}")
        image = self.render(ws)[0]
        det = self._detect(image)
        if not det.found:
            raise ValueError("no face found on the rendered source: choose another source")
        with self._lock:
            self.source_ws = ws
            self.source_image = image
            self.source_points = np.asarray(det.points, np.float32)
            self._dw0 = None
            self._local_filters = {}
            self._dw0 = self._fan([self.source_points])[0][0:1]
            self.last_frame = image
            self.last_dw = torch.zeros_like(ws)
            self.last_ws = ws
            self._reset_filter()

    # ------------------------------------------------------------------------------------------- calibration
    def calibrate(self, driver_points: np.ndarray) -> None:
        """Use these driver landmarks [478, 2] px as the neutral reference of relative mode."""
        pts = _check_points(driver_points)
        with self._lock:
            self.reference_points = pts.copy()
            self._reset_filter()

    def auto_calibrate(self, recent_points: list[np.ndarray]) -> None:
        """Calibrate on the most neutral of ``recent_points`` (criterion: ``neutral_scores``)."""
        frames = [_check_points(p) for p in recent_points if p is not None]
        if not frames:
            raise ValueError("auto_calibrate needs at least one frame with a face")
        best = int(np.argmin(neutral_scores(frames)))
        self.calibrate(frames[best])

    # ------------------------------------------------------------------------------------------- driving
    def _reset_filter(self) -> None:
        self._filter = None
        self._t_auto = 0.0

    def _smooth(self, pts: np.ndarray, t: float | None) -> np.ndarray:
        s = float(self.config.smoothing)
        if s <= 0:
            self._filter = None
            return pts
        if t is None:
            self._t_auto += 1.0 / 30.0
            t = self._t_auto
        if self._filter is None or self._filter_strength != s:
            from engine.landmarks.smoothing import OneEuroFilter

            # strength 0..1 -> minimum cut-off 3 Hz .. 0.3 Hz (log scale); beta lets fast motion through
            s_c = min(s, 1.0)
            self._filter = OneEuroFilter(min_cutoff=3.0 * 10 ** (-s_c), beta=0.05, d_cutoff=1.0)
            self._filter_strength = s
        return np.asarray(self._filter(pts, t), np.float32)

    def target_points(self, driver_points: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        """Driver landmarks [478, 2] -> target landmarks in the source frame (per config.mode)."""
        if self.source_points is None:
            raise RuntimeError("set_source() first")
        pts = _check_points(driver_points)
        if self.config.mode == "relative":
            ref = reference if reference is not None else self.reference_points
            if ref is None:  # not calibrated yet: the first driver frame becomes the reference
                self.calibrate(pts)
                ref = self.reference_points
            return relative_target(self.source_points, pts, ref, schema.EXPRESSION_STABLE)
        return pts.copy()  # absolute: the driver's landmarks as they are (an aligned crop in the source's frame)

    def predict_dw(self, target_points: np.ndarray) -> torch.Tensor:
        """FAN prediction dw [1, num_ws, w_dim] for target landmarks [478, 2] (source frame, px); no masks/gains."""
        return self._fan([np.asarray(target_points, np.float32)])[0][0:1]

    def _fan(self, targets: list[np.ndarray]) -> tuple[torch.Tensor, dict[str, float]]:
        """Batched FAN on the source: targets (each [478, 2]) -> dw [len, num_ws, w_dim] and timings."""
        import torch

        from engine.fan import fan_inputs

        if self._fan_cfg is None:
            self._fan_cfg = self.fan.config
        t0 = time.perf_counter()
        tgt = np.stack([np.asarray(t, np.float32) for t in targets])
        src = np.repeat(self.source_points[None], len(targets), 0)
        heat = fan_inputs(src, tgt, self._fan_cfg).to(self.device)
        t1 = time.perf_counter()
        with torch.inference_mode():
            dw = self.fan(heat).float()
        if dw.ndim == 2:
            dw = dw.reshape(len(targets), *self.source_ws.shape[1:])
        if self._dw0 is not None:
            dw = dw - self._dw0
        t2 = time.perf_counter()
        return dw, {"align+heatmaps": (t1 - t0) * 1e3, "fan": (t2 - t1) * 1e3}

    def _drive(self, target: np.ndarray) -> tuple[torch.Tensor, dict[str, float]]:
        """Target landmarks -> dw [1, L, C] with the split/masks/gains of the config (see the module docstring)."""
        if not self._needs_split():
            return self._fan([target])
        dws, tim = self._fan(self._split_targets(target, target))
        return self._combine(dws), tim

    def _compose(self, dw: torch.Tensor) -> torch.Tensor:
        ws = self.source_ws + dw
        off = self._slider_offset()
        return ws if off is None else ws + off

    def step(
        self, driver_points: np.ndarray | None, t: float | None = None, *, frame_shape: tuple[int, ...] | None = None
    ) -> np.ndarray:
        """One frame: driver landmarks [478, 2] px (or None when no face) -> uint8 [H, W, 3].

        ``frame_shape``: (H, W, ...) of the driver frame the points were detected on. In absolute mode the points are
        then stretched from that frame onto the source image (``rescale_driver``) before anything else, so a driver
        of any size drives the source's frame; without it they are taken as already in the source's pixels.
        """
        return self.step_timed(driver_points, t, frame_shape=frame_shape)[0]

    def step_timed(
        self, driver_points: np.ndarray | None, t: float | None = None, *, frame_shape: tuple[int, ...] | None = None
    ) -> tuple[np.ndarray, dict]:
        """Like ``step`` and also the per-stage times in ms (align+heatmaps, fan, generator, convert, total)."""
        frames, timings = self._step_frames(driver_points, t, frame_shape)
        return frames[-1], timings

    def step_frames(
        self, driver_points: np.ndarray | None, t: float | None = None, *, frame_shape: tuple[int, ...] | None = None
    ) -> list[np.ndarray]:
        """Like ``step`` but returns ``config.interpolate`` in-between frames (dw interpolated from the previous
        step's dw) followed by the new frame."""
        return self._step_frames(driver_points, t, frame_shape)[0]

    def _step_frames(
        self, driver_points: np.ndarray | None, t: float | None, frame_shape: tuple[int, ...] | None
    ) -> tuple[list[np.ndarray], dict]:
        import torch

        t_start = time.perf_counter()
        with self._lock:
            if self.source_ws is None:
                raise RuntimeError("set_source() first")
            zero = {k: 0.0 for k in STAGES}
            if driver_points is None:
                self.last_inbetweens = []
                self.last_timings = {**zero, "total": (time.perf_counter() - t_start) * 1e3}
                return [self.last_frame], self.last_timings
            pts = _check_points(driver_points)
            if frame_shape is not None and self.config.mode == "absolute":
                pts = rescale_driver(pts, frame_shape, self.source_image.shape)
            pts = self._smooth(pts, t)
            ta = time.perf_counter()
            target = self.target_points(pts)
            align_ms = (time.perf_counter() - ta) * 1e3
            dw, tim = self._drive(target)
            tim["align+heatmaps"] += align_ms
            n_mid = int(self.config.interpolate)
            prev = self.last_dw if self.last_dw is not None else torch.zeros_like(dw)
            alphas = [(i + 1) / (n_mid + 1) for i in range(n_mid)] + [1.0]
            ws = torch.cat([self._compose(prev + a * (dw - prev)) for a in alphas])
            t3 = time.perf_counter()
            raw = self.backend(ws)
            t4 = time.perf_counter()
            frames = list(to_uint8(raw))
            t5 = time.perf_counter()
            self.last_dw = dw
            self.last_ws = ws[-1:].detach()
            self.last_frame = frames[-1]
            self.last_inbetweens = frames[:-1]
            tim.update({"generator": (t4 - t3) * 1e3, "convert": (t5 - t4) * 1e3})
            tim["total"] = (t5 - t_start) * 1e3
            self.last_timings = tim
            return frames, tim

    def render_dw(self, dw: torch.Tensor) -> np.ndarray:
        """Render ``source + dw (+ sliders)`` for a given dw [1, num_ws, w_dim] -> uint8 [H, W, 3]."""
        with self._lock:
            return self.render(self._compose(dw.to(self.device)))[0]

    def drive_disentangled(
        self,
        pose_points: np.ndarray,
        expr_points: np.ndarray,
        *,
        pose_reference: np.ndarray | None = None,
        expr_reference: np.ndarray | None = None,
    ) -> np.ndarray:
        """Pose from one driver, expression from another -> uint8 [H, W, 3].

        One FAN, masked inputs: dw_pose = dw(t_pose) - dw(unposed t_pose), dw_expr = dw(unposed, region-masked
        t_expr) (see the module docstring). In relative mode each driver uses its own reference when given, else
        the calibrated one (else its own points, i.e. no motion). Gains and region masks apply as in ``step``.
        """
        with self._lock:
            if self.source_ws is None:
                raise RuntimeError("set_source() first")
            pose_ref = pose_reference if pose_reference is not None else self.reference_points
            expr_ref = expr_reference if expr_reference is not None else self.reference_points
            if self.config.mode == "relative":
                tp = relative_target(self.source_points, _check_points(pose_points),
                                     _check_points(pose_ref if pose_ref is not None else pose_points),
                                     schema.EXPRESSION_STABLE)
                te = relative_target(self.source_points, _check_points(expr_points),
                                     _check_points(expr_ref if expr_ref is not None else expr_points),
                                     schema.EXPRESSION_STABLE)
            else:
                tp, te = _check_points(pose_points), _check_points(expr_points)
            dws, _ = self._fan(self._split_targets(tp, te))
            dw = self._combine(dws)
            ws = self._compose(dw)
            frame = self.render(ws)[0]
            self.last_dw = dw
            self.last_ws = ws.detach()
            self.last_frame = frame
            return frame

    def close(self) -> None:
        """Release the landmark detector."""
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def replace_config(self, **changes: Any) -> None:
        """Convenience: ``anim.replace_config(mode="absolute")`` (validated)."""
        cfg = dataclasses.replace(self.config, **changes)
        cfg.validate()
        self.config = cfg


# ----------------------------------------------------------------------------------------------- helpers


def _check_points(points: Any) -> np.ndarray:
    pts = np.asarray(points, np.float32)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] < 300:
        raise ValueError(f"driver landmarks must be [478, 2] pixels, got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("driver landmarks contain NaN/inf")
    return pts
