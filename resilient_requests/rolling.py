"""Counts over a trailing time window, kept in buckets: what the retry budget
and adaptive throttling both need. Not thread-safe on its own: callers lock."""
from __future__ import annotations

import time
from typing import Dict, List, Sequence

__all__ = ["RollingCounts"]


class RollingCounts:
    """Counts of a few named events over the last ``window`` seconds, in ``slots`` buckets."""

    __slots__ = ("_width", "_slots", "_counts", "_epoch")

    def __init__(self, names: Sequence[str], window: float, slots: int) -> None:
        self._width = window / slots
        self._slots = slots
        self._counts: Dict[str, List[int]] = {name: [0] * slots for name in names}
        self._epoch = 0  # the newest bucket, in bucket widths since the monotonic clock's zero

    def _current(self) -> int:
        """Empty the buckets that fell out of the window; the index of the current one."""
        epoch = int(time.monotonic() / self._width)
        if epoch != self._epoch:
            for step in range(min(epoch - self._epoch, self._slots)):
                index = (epoch - step) % self._slots
                for counts in self._counts.values():
                    counts[index] = 0
            self._epoch = epoch
        return epoch % self._slots

    def add(self, name: str) -> None:
        """Count one ``name`` event now."""
        self._counts[name][self._current()] += 1

    def total(self, name: str) -> int:
        """``name`` events in the window."""
        self._current()
        return sum(self._counts[name])
