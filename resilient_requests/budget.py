"""Retry budgets: retries may add only a share of an origin's calls.

As in Finagle's ``RetryBudget`` and gRPC's retry throttling: over a trailing
window, retries may number at most ``ratio`` × calls plus a small floor of
``floor_per_second`` × window. A dependency that is half down then receives
about ``1 + ratio`` requests per call instead of up to ``max_attempts``; a
caller making few calls still gets its retries from the floor.
"""
from __future__ import annotations

import threading

from .rolling import RollingCounts

__all__ = ["RetryBudget"]


class RetryBudget:
    """Counts calls and retries over ``window`` seconds (in ``slots`` buckets)."""

    __slots__ = ("ratio", "floor", "_counts", "_lock", "refused")

    def __init__(self, ratio: float, floor_per_second: float, window: float = 10.0, slots: int = 10) -> None:
        self.ratio = ratio
        self.floor = floor_per_second * window
        self._counts = RollingCounts(("calls", "retries"), window, slots)
        self._lock = threading.Lock()
        self.refused = 0  # retries refused so far

    def record_call(self) -> None:
        """A call's first attempt: earns ``ratio`` of a retry."""
        with self._lock:
            self._counts.add("calls")

    def try_spend(self) -> bool:
        """Take one retry if the budget allows it."""
        with self._lock:
            counts = self._counts
            retries, calls = counts.totals("retries", "calls")
            if retries + 1 > self.ratio * calls + self.floor:
                self.refused += 1
                return False
            counts.add("retries")
            return True
