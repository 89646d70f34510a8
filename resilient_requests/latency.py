"""Recent attempt latencies of one origin, for a hedge delay at a percentile.

A ring of the last ``size`` durations. The percentile is recomputed (a sort of
``size`` floats, some tens of microseconds) only every ``size // 8`` new
samples and read from a cached value otherwise, so a call pays a float compare.
"""
from __future__ import annotations

import math
import threading
from typing import List, Optional

__all__ = ["LatencyWindow"]


class LatencyWindow:
    """The last ``size`` attempt durations of one origin (seconds)."""

    def __init__(self, percentile: float, min_samples: int, size: int = 256) -> None:
        self._share = percentile
        self._minimum = min_samples
        self._size = max(size, min_samples)
        self._samples: List[float] = []
        self._next = 0  # where the next sample goes once the ring is full
        self._fresh = 0  # samples since the percentile was computed
        self._every = max(1, self._size // 8)
        self._lock = threading.Lock()
        self.value: Optional[float] = None  # the percentile; None until min_samples were seen

    def add(self, seconds: float) -> None:
        """Record one attempt's duration."""
        with self._lock:
            samples = self._samples
            if len(samples) < self._size:
                samples.append(seconds)
            else:
                samples[self._next] = seconds
                self._next = (self._next + 1) % self._size
            self._fresh += 1
            count = len(samples)
            if count < self._minimum:
                return
            if self.value is not None and self._fresh < self._every:
                return
            ordered = sorted(samples)
            self._fresh = 0
            # Nearest rank: the smallest sample with at least `share` of them at or below it.
            self.value = ordered[min(max(1, math.ceil(self._share * count)), count) - 1]
