"""Counts over a trailing time window, kept in buckets: what the retry budget
and adaptive throttling both need. Not thread-safe on its own: callers lock."""
from __future__ import annotations

import time
from typing import Callable, Dict, List, Sequence

__all__ = ["RollingCounts"]


class RollingCounts:
    """Counts of a few named events over the last ``window`` seconds, in ``slots`` buckets.
    Each name's total is kept as it changes (asked on every call: no summing)."""

    __slots__ = ("_width", "_slots", "_counts", "_totals", "_epoch", "_clock")

    def __init__(self, names: Sequence[str], window: float, slots: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._width = window / slots
        self._slots = slots
        self._counts: Dict[str, List[int]] = {name: [0] * slots for name in names}
        self._totals: Dict[str, int] = {name: 0 for name in names}
        self._epoch = 0  # the newest bucket, in bucket widths since the monotonic clock's zero

    def _current(self) -> int:
        """Empty the buckets that fell out of the window; the index of the current one."""
        epoch = int(self._clock() / self._width)
        if epoch != self._epoch:
            totals = self._totals
            for step in range(min(epoch - self._epoch, self._slots)):
                index = (epoch - step) % self._slots
                for name, counts in self._counts.items():
                    totals[name] -= counts[index]
                    counts[index] = 0
            self._epoch = epoch
        return epoch % self._slots

    def add(self, name: str) -> None:
        """Count one ``name`` event now."""
        self._counts[name][self._current()] += 1
        self._totals[name] += 1

    def total(self, name: str) -> int:
        """``name`` events in the window."""
        self._current()
        return self._totals[name]

    def totals(self, first: str, second: str) -> "tuple[int, int]":
        """Two names' totals, the window moved on once."""
        self._current()
        totals = self._totals
        return totals[first], totals[second]
