"""Rolling frame-rate and per-stage latency meters (Qt-free)."""

from __future__ import annotations

import collections

from engine.timing import RollingStats


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
    """Rolling mean latency per named stage (milliseconds): the engine's ``RollingStats`` as the status bar shows it."""

    def __init__(self, window: int = 30) -> None:
        self._stats = RollingStats(window)

    def add(self, stages_ms: dict[str, float]) -> None:
        """Record one frame's stage timings."""
        self._stats.add(stages_ms)

    def means(self) -> dict[str, float]:
        """Mean milliseconds per stage, in first-seen order."""
        return self._stats.mean()

    def summary(self) -> str:
        """A compact one-line summary, e.g. ``detect 3.1 · fan 1.2 · synth 40.0 · total 45.3 ms``."""
        parts = [f"{k} {v:.1f}" for k, v in self.means().items()]
        return (" · ".join(parts) + " ms") if parts else ""
