"""Client-side adaptive throttling, as in Google's SRE book ("Handling Overload").

Per origin, over a trailing window, count the calls this client made
(``requests``, rejected ones included) and the calls the origin accepted
(``accepts``: any response but a failure status or a 429). Reject a new call
locally with probability ``max(0, (requests - K * accepts) / (requests + 1))``.
While the origin accepts at least one call in K, nothing is rejected; as it
accepts fewer, the client sheds the excess itself instead of sending it.

A sent call is counted when it ends, together with its verdict, not when it
starts: counted at the start, the calls in flight are requests with no accept
yet, so sixteen threads starting together made the seventeenth call see
p = 16/17 against a perfectly healthy origin, and the calls rejected for it
(counted as requests) fed the spiral until almost nothing was sent.
"""
from __future__ import annotations

import random
import threading
from typing import Callable

from .rolling import RollingCounts

__all__ = ["AdaptiveThrottle"]


class AdaptiveThrottle:
    """The throttle of one origin: :meth:`admit` before a call, :meth:`finished` after."""

    __slots__ = ("k", "_counts", "_lock", "_random", "rejected")

    def __init__(self, k: float, window: float, slots: int = 12,
                 rng: Callable[[], float] = random.random) -> None:
        self.k = k
        self._counts = RollingCounts(("requests", "accepts"), window, slots)
        self._lock = threading.Lock()
        self._random = rng
        self.rejected = 0

    def _probability(self) -> float:
        requests, accepts = self._counts.totals("requests", "accepts")
        return max(0.0, (requests - self.k * accepts) / (requests + 1))

    def rejection_probability(self) -> float:
        """The current chance that a call is rejected locally."""
        with self._lock:
            return self._probability()

    def admit(self) -> float:
        """0.0 if a call may go (it is counted by :meth:`finished`), else the
        probability with which it was rejected (and counted as a request)."""
        with self._lock:
            requests, accepts = self._counts.totals("requests", "accepts")  # _probability, inlined:
            probability = (requests - self.k * accepts) / (requests + 1)  # on every call's path
            if probability > 0.0 and self._random() < probability:
                self._counts.add("requests")
                self.rejected += 1
                return probability
        return 0.0

    def finished(self, accepted: bool) -> None:
        """A call that was let through has ended; ``accepted``: the origin took it."""
        with self._lock:
            self._counts.add("requests")
            if accepted:
                self._counts.add("accepts")
