"""Client-side adaptive throttling, as in Google's SRE book ("Handling Overload").

Per origin, over a trailing window, count the calls this client made
(``requests``, rejected ones included) and the calls the origin accepted
(``accepts``: any response but a failure status or a 429). Reject a new call
locally with probability ``max(0, (requests - K * accepts) / (requests + 1))``.
While the origin accepts at least one call in K, nothing is rejected; as it
accepts fewer, the client sheds the excess itself instead of sending it.
"""
from __future__ import annotations

import random
import threading
import time
from typing import Callable, List

__all__ = ["AdaptiveThrottle"]


class AdaptiveThrottle:
    """The throttle of one origin: :meth:`admit` before a call, :meth:`accepted` after."""

    __slots__ = ("k", "_width", "_requests", "_accepts", "_epoch", "_lock", "_random", "rejected")

    def __init__(self, k: float, window: float, slots: int = 12,
                 rng: Callable[[], float] = random.random) -> None:
        self.k = k
        self._width = window / slots
        self._requests: List[int] = [0] * slots
        self._accepts: List[int] = [0] * slots
        self._epoch = 0
        self._lock = threading.Lock()
        self._random = rng
        self.rejected = 0

    def _roll(self) -> int:
        epoch = int(time.monotonic() / self._width)
        slots = len(self._requests)
        if epoch != self._epoch:
            for step in range(min(epoch - self._epoch, slots)):
                index = (epoch - step) % slots
                self._requests[index] = self._accepts[index] = 0
            self._epoch = epoch
        return epoch % slots

    def rejection_probability(self) -> float:
        """The current chance that a call is rejected locally."""
        with self._lock:
            self._roll()
            requests, accepts = sum(self._requests), sum(self._accepts)
        return max(0.0, (requests - self.k * accepts) / (requests + 1))

    def admit(self) -> float:
        """Count a call; 0.0 if it may go, else the probability with which it was rejected."""
        with self._lock:
            index = self._roll()
            requests, accepts = sum(self._requests), sum(self._accepts)
            self._requests[index] += 1
        probability = max(0.0, (requests - self.k * accepts) / (requests + 1))
        if probability > 0.0 and self._random() < probability:
            self.rejected += 1
            return probability
        return 0.0

    def accepted(self) -> None:
        """The origin accepted a call."""
        with self._lock:
            self._accepts[self._roll()] += 1
