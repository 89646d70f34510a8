"""Retry budgets: retries may add only a share of an origin's calls.

As in Finagle's ``RetryBudget`` and gRPC's retry throttling: over a trailing
window, retries may number at most ``ratio`` × calls plus a small floor of
``floor_per_second`` × window. A dependency that is half down then receives
about ``1 + ratio`` requests per call instead of up to ``max_attempts``; a
caller making few calls still gets its retries from the floor.
"""
from __future__ import annotations

import threading
import time

__all__ = ["RetryBudget"]


class RetryBudget:
    """Counts calls and retries in ``slots`` buckets covering ``window`` seconds."""

    __slots__ = ("ratio", "floor", "_width", "_calls", "_retries", "_epoch", "_lock", "refused")

    def __init__(self, ratio: float, floor_per_second: float, window: float = 10.0, slots: int = 10) -> None:
        self.ratio = ratio
        self.floor = floor_per_second * window
        self._width = window / slots
        self._calls = [0] * slots
        self._retries = [0] * slots
        self._epoch = 0  # index of the newest bucket, in bucket widths since time 0
        self._lock = threading.Lock()
        self.refused = 0  # retries refused so far

    def _roll(self) -> int:
        """Empty the buckets that fell out of the window; return the current one."""
        epoch = int(time.monotonic() / self._width)
        slots = len(self._calls)
        if epoch != self._epoch:
            for step in range(min(epoch - self._epoch, slots)):
                index = (epoch - step) % slots
                self._calls[index] = self._retries[index] = 0
            self._epoch = epoch
        return epoch % slots

    def record_call(self) -> None:
        """A call's first attempt: earns ``ratio`` of a retry."""
        with self._lock:
            self._calls[self._roll()] += 1

    def try_spend(self) -> bool:
        """Take one retry if the budget allows it."""
        with self._lock:
            index = self._roll()
            if sum(self._retries) + 1 > self.ratio * sum(self._calls) + self.floor:
                self.refused += 1
                return False
            self._retries[index] += 1
            return True
