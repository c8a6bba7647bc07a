"""THE rolling timing meter: per-stage latencies over a window of recent frames (numpy only; the CLI and the app)."""

from __future__ import annotations

from collections import deque

import numpy as np


class RollingStats:
    """Rolling window of timings per stage: ``add({"fan": 3.1, ...})``, then ``mean()`` / ``median()`` / ``p95()``
    per stage (stages in first-seen order)."""

    def __init__(self, window: int = 120) -> None:  # window: samples kept per stage
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self._data: dict[str, deque[float]] = {}

    def add(self, timings: dict[str, float]) -> None:
        """Record one frame's timings (milliseconds per stage)."""
        for k, v in timings.items():
            self._data.setdefault(k, deque(maxlen=self.window)).append(float(v))

    def mean(self) -> dict[str, float]:
        """Mean per stage over the window."""
        return {k: sum(v) / len(v) for k, v in self._data.items() if v}

    def quantile(self, q: float) -> dict[str, float]:
        """The ``q`` quantile per stage over the window."""
        return {k: float(np.quantile(np.asarray(v), q)) for k, v in self._data.items() if v}

    def median(self) -> dict[str, float]:
        return self.quantile(0.5)

    def p95(self) -> dict[str, float]:
        return self.quantile(0.95)

    def summary(self) -> dict[str, dict[str, float]]:
        """{stage: {"median": ms, "p95": ms, "n": count}}."""
        med, p95 = self.median(), self.p95()
        return {k: {"median": med[k], "p95": p95[k], "n": float(len(self._data[k]))} for k in med}
