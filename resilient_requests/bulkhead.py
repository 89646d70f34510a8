"""The bulkhead: at most N calls of one session in flight at once.

A ``threading.BoundedSemaphore`` counts the slots; a caller waits at most
``acquisition_timeout`` for one, else gets
:class:`~resilient_requests.PoolTimeoutError` and nothing is sent. A slot,
once taken, is always given back (``release`` runs in a ``finally``).

Waiters are served first come, first served. A bare semaphore is unfair: a
thread that releases a slot and calls again takes it back before the waiter it
woke gets to run, so with 64 threads on 12 slots some callers waited out their
whole timeout while slots freed up every few milliseconds. Here a released
slot goes straight to the oldest waiter (the semaphore stays taken on its behalf).
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Deque, Optional

from .config import BulkheadConfig
from .exceptions import PoolTimeoutError

__all__ = ["Bulkhead"]


class Bulkhead:
    """A counting semaphore with an acquisition timeout and FIFO waiters."""

    __slots__ = ("capacity", "timeout", "_slots", "_in_use", "_lock", "_waiters")

    def __init__(self, config: BulkheadConfig) -> None:
        self.capacity = config.max_concurrency
        self.timeout = config.acquisition_timeout
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._in_use = 0
        self._lock = threading.Lock()
        self._waiters: Deque[threading.Event] = deque()

    def _take_free(self) -> bool:
        """Holding the lock: take a free slot, unless someone is already waiting for one."""
        if not self._waiters and self._slots.acquire(blocking=False):
            self._in_use += 1
            return True
        return False

    def acquire(self, timeout: Optional[float] = None) -> None:
        """Take a slot, waiting at most ``timeout`` seconds (default: the
        configured ``acquisition_timeout``), or raise ``PoolTimeoutError``."""
        if timeout is None:
            timeout = self.timeout
        with self._lock:
            if self._take_free():
                return
            if timeout <= 0:
                waiter = None  # nothing to wait for
            else:
                waiter = threading.Event()
                self._waiters.append(waiter)
        if waiter is None:
            raise PoolTimeoutError(f"bulkhead full: all {self.capacity} slots busy")
        try:
            if waiter.wait(timeout):
                return  # a releasing caller handed its slot to us
        except BaseException:
            # Interrupted while waiting (a signal handler raising, KeyboardInterrupt,
            # Celery's SoftTimeLimitExceeded): leave the queue, or give back the
            # slot handed over meanwhile, so no slot goes to a waiter that is gone.
            self._abandon(waiter)
            raise
        with self._lock:
            if waiter.is_set():
                return  # handed over just as we gave up
            self._waiters.remove(waiter)
        raise PoolTimeoutError(f"bulkhead full: all {self.capacity} slots busy for {timeout:g}s")

    def _abandon(self, waiter: threading.Event) -> None:
        with self._lock:
            if not waiter.is_set():
                self._waiters.remove(waiter)
                return
        self.release()  # the slot was ours already: pass it on

    def try_acquire(self) -> bool:
        """Take a slot only if one is free and nobody waits for one (a hedge
        must not jump the queue): whether it was taken."""
        with self._lock:
            return self._take_free()

    def release(self) -> None:
        """Give a slot back: to the oldest waiter if there is one."""
        with self._lock:
            if self._waiters:
                self._waiters.popleft().set()
                return
            self._in_use -= 1
            self._slots.release()

    @property
    def in_use(self) -> int:
        """Slots taken right now."""
        return self._in_use
