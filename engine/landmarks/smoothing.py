"""One-Euro filter (Casiraghi, Roussel, Vogel, CHI 2012) for live landmark smoothing.

An adaptive low-pass filter: at low speed the cutoff is ``min_cutoff`` (strong smoothing, little jitter); as a point
moves faster the cutoff rises by ``beta * speed`` (little lag). Frame-rate aware: it takes the timestamp of each
sample, so dropped or irregular frames are handled correctly. Vectorised over any array shape; with a trailing axis
of size 2 (``[K, 2]`` points) the speed that opens the filter is the speed of each *point* (norm over x, y), so both
coordinates of a point are smoothed alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class OneEuroConfig:
    """One-Euro parameters (units: Hz and input units per second)."""

    min_cutoff: float = 1.0  # cutoff (Hz) at rest: lower = smoother, more lag at slow motion
    beta: float = 0.05  # cutoff increase per unit of speed: higher = less lag on fast motion
    d_cutoff: float = 1.0  # cutoff (Hz) of the speed estimate


def _alpha(cutoff, dt: float):
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """``f = OneEuroFilter(min_cutoff, beta, d_cutoff); y = f(x, t)`` with ``x`` an array, ``t`` in seconds.

    The first sample passes through unchanged. Samples with non-finite values (e.g. NaN points of a missed
    detection) are not used: the previous output is returned. A timestamp that does not increase returns the
    previous output too. ``reset()`` forgets the history (call it when the tracked face changes).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("OneEuroFilter needs min_cutoff > 0, d_cutoff > 0 and beta >= 0")
        self.config = OneEuroConfig(min_cutoff, beta, d_cutoff)
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._x is not None and x.shape != self._x.shape:
            raise ValueError(f"OneEuroFilter: shape changed from {self._x.shape} to {x.shape}; call reset()")
        if not np.isfinite(x).all():
            return x.copy() if self._x is None else self._x.copy()
        if self._x is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self._t
        if dt <= 0:
            return self._x.copy()
        c = self.config
        dx = (x - self._x) / dt
        a_d = _alpha(c.d_cutoff, dt)
        self._dx = self._dx + a_d * (dx - self._dx)
        if x.ndim >= 1 and x.shape[-1] == 2:
            speed = np.sqrt((self._dx**2).sum(-1, keepdims=True))  # per point
        else:
            speed = np.abs(self._dx)
        cutoff = c.min_cutoff + c.beta * speed
        a = _alpha(cutoff, dt)
        self._x = self._x + a * (x - self._x)
        self._t = float(t)
        return self._x.copy()
