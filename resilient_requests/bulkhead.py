"""The bulkhead: at most N calls of one session in flight at once.

A ``threading.BoundedSemaphore`` taken with a timeout. A caller that cannot get
a slot in time gets :class:`~resilient_requests.PoolTimeoutError` and nothing is
sent; a slot, once taken, is always given back (``release`` runs in a
``finally`` in the pipeline).
"""
from __future__ import annotations

import threading

from .config import BulkheadConfig
from .exceptions import PoolTimeoutError

__all__ = ["Bulkhead"]


class Bulkhead:
    """A counting semaphore with an acquisition timeout."""

    __slots__ = ("capacity", "timeout", "_slots", "_in_use", "_count_lock")

    def __init__(self, config: BulkheadConfig) -> None:
        self.capacity = config.max_concurrency
        self.timeout = config.acquisition_timeout
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._in_use = 0
        self._count_lock = threading.Lock()

    def acquire(self) -> None:
        """Take a slot, waiting at most ``timeout`` seconds, or raise ``PoolTimeoutError``."""
        if not self._slots.acquire(timeout=self.timeout):
            raise PoolTimeoutError(
                f"bulkhead full: all {self.capacity} slots busy for {self.timeout:g}s"
            )
        with self._count_lock:
            self._in_use += 1

    def release(self) -> None:
        """Give a slot back."""
        with self._count_lock:
            self._in_use -= 1
        self._slots.release()

    @property
    def in_use(self) -> int:
        """Slots taken right now."""
        return self._in_use
