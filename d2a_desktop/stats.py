"""Rolling frame-rate and per-stage latency meters (Qt-free)."""

from __future__ import annotations

import collections


class RateMeter:
    """Frames per second over the last ``window`` timestamps."""

    def __init__(self, window: int = 30) -> None:
        self._times: collections.deque[float] = collections.deque(maxlen=window)

    def tick(self, t: float) -> None:
        """Record one event at time ``t`` (seconds)."""
        self._times.append(t)

    @property
    def fps(self) -> float:
        """Events per second over the window (0 until two events were seen)."""
        if len(self._times) < 2 or self._times[-1] <= self._times[0]:
            return 0.0
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])

    def reset(self) -> None:
        """Forget all events."""
        self._times.clear()


class StageMeter:
    """Rolling mean latency per named stage (milliseconds)."""

    def __init__(self, window: int = 30) -> None:
        self._window = window
        self._stages: dict[str, collections.deque[float]] = {}

    def add(self, stages_ms: dict[str, float]) -> None:
        """Record one frame's stage timings."""
        for name, ms in stages_ms.items():
            self._stages.setdefault(name, collections.deque(maxlen=self._window)).append(float(ms))

    def means(self) -> dict[str, float]:
        """Mean milliseconds per stage, in first-seen order."""
        return {k: sum(v) / len(v) for k, v in self._stages.items() if v}

    def summary(self) -> str:
        """A compact one-line summary, e.g. ``detect 3.1 · fan 1.2 · synth 40.0 · total 45.3 ms``."""
        parts = [f"{k} {v:.1f}" for k, v in self.means().items()]
        return (" · ".join(parts) + " ms") if parts else ""
