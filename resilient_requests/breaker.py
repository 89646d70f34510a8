"""Circuit breakers, one per origin, on pybreaker's state machine and storage.

pybreaker's ``CircuitBreaker.call`` holds the breaker's lock for the whole
wrapped call, so every thread calling one origin runs one at a time (32 calls
of 50 ms from 16 threads: 1.61 s instead of 0.10 s). Its ``calling()`` context
manager skips that lock but then lets every waiting caller into half-open at
once. And it counts only raised exceptions, while a 503 *response* must count
as a failure and a 404 as a success.

So this module steps around ``call()``: it keeps pybreaker's storage (counter,
state, ``opened_at``), its transitions (``open()``, ``half_open()``,
``close()``, which notify its listeners) and its settings, and adds two things:
an *admit* step before each attempt and a *record* step after it, each holding
a small lock of ours for a few dictionary operations and never across I/O; and
a single half-open trial slot, so one caller probes a recovering origin while
every other caller still fails fast. Only public pybreaker names are used.
"""
from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Any, Deque, Optional, Sequence, Tuple

import pybreaker

from .config import CircuitBreakerConfig
from .events import BreakerStateChanged, Events
from .exceptions import CircuitOpenError

__all__ = ["CircuitState", "LocalState", "OriginBreaker", "RateWindow", "TransitionLog", "BreakerEvents"]


class CircuitState(str, enum.Enum):
    """The state of an origin's breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    def __str__(self) -> str:
        return str(self.value)


_STATES = {
    pybreaker.STATE_CLOSED: CircuitState.CLOSED,
    pybreaker.STATE_OPEN: CircuitState.OPEN,
    pybreaker.STATE_HALF_OPEN: CircuitState.HALF_OPEN,
}


class LocalState(pybreaker.CircuitMemoryStorage):
    """pybreaker's in-memory storage plus the half-open trial slot: the state of
    one origin in one process. :mod:`.shared_state` offers the same methods
    over Redis; :class:`OriginBreaker` calls them holding its own lock."""

    def __init__(self) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self._trial = False

    def refusal(self, recovery_timeout: float) -> Optional[float]:
        """``None`` if an attempt would be admitted now, else the seconds until
        one would be (0.0 while another caller's trial is in flight)."""
        state = self.state
        if state == pybreaker.STATE_CLOSED:
            return None
        if state == pybreaker.STATE_HALF_OPEN:
            return 0.0 if self._trial else None
        left = _seconds_left(self.opened_at, recovery_timeout)
        return left if left > 0 else None

    def claim_trial(self, recovery_timeout: float) -> Optional[float]:
        """Take the trial slot if the breaker may try: ``None`` when taken, else
        as :meth:`refusal`. Called only when the breaker is not closed."""
        refused = self.refusal(recovery_timeout)
        if refused is None:
            self._trial = True
        return refused

    def end_trial(self) -> None:
        """Free the trial slot."""
        self._trial = False

    def record_failure(self, threshold: int) -> bool:
        """Count a failure while closed; whether the threshold is reached."""
        self.increment_counter()
        return self.counter >= threshold


def _seconds_left(opened_at: Optional[datetime], recovery_timeout: float) -> float:
    if opened_at is None:
        return 0.0
    elapsed = (datetime.now(timezone.utc) - opened_at).total_seconds()
    return max(0.0, recovery_timeout - elapsed)


class RateWindow:
    """The last calls of one origin in this process, for ``policy="rate"``:
    running counts of failures and slow calls over a count or time window."""

    def __init__(self, config: CircuitBreakerConfig) -> None:
        self._by_time = config.window_type == "time"
        self._size = config.window_size
        self._minimum = config.minimum_calls
        self._failure_rate = config.failure_rate_threshold
        self._slow_rate = config.slow_call_rate_threshold if config.slow_call_duration is not None else None
        self._calls: Deque[Tuple[float, bool, bool]] = deque()
        self._failures = self._slow = 0

    def add(self, failed: bool, slow: bool) -> bool:
        """Count a call; whether the window now says the breaker should open."""
        now = time.monotonic()
        calls = self._calls
        calls.append((now, failed, slow))
        self._failures += failed
        self._slow += slow
        while calls and (now - calls[0][0] > self._size if self._by_time else len(calls) > self._size):
            _, old_failed, old_slow = calls.popleft()
            self._failures -= old_failed
            self._slow -= old_slow
        count = len(calls)
        if count < self._minimum:
            return False
        if self._failures / count >= self._failure_rate:
            return True
        return self._slow_rate is not None and self._slow / count >= self._slow_rate

    def clear(self) -> None:
        """Forget every call (the breaker changed state)."""
        self._calls.clear()
        self._failures = self._slow = 0


class OriginBreaker:
    """The breaker of one origin: ``admit()`` before an attempt, ``record()`` after."""

    def __init__(
        self,
        origin: str,
        config: CircuitBreakerConfig,
        listeners: Sequence[pybreaker.CircuitBreakerListener] = (),
        storage: Optional[LocalState] = None,
    ) -> None:
        self.origin = origin
        self._storage = storage if storage is not None else LocalState()
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=config.failure_threshold,
            reset_timeout=config.recovery_timeout,
            state_storage=self._storage,
            listeners=list(listeners),
            name=origin,
        )
        self._recovery = config.recovery_timeout
        self._lock = threading.Lock()
        self._window = RateWindow(config) if config.policy == "rate" else None
        self._slow_after = config.slow_call_duration

    @property
    def state(self) -> CircuitState:
        """The stored state. An open breaker whose timeout has passed still reads
        ``OPEN`` until the next call turns it half-open."""
        return _STATES[self._storage.state]

    @property
    def failure_count(self) -> int:
        """Consecutive failures recorded while closed."""
        return int(self._storage.counter)

    def check(self) -> None:
        """Raise ``CircuitOpenError`` if an attempt would be refused now (no state change)."""
        if self._storage.state == pybreaker.STATE_CLOSED:
            return
        with self._lock:
            left = self._storage.refusal(self._recovery)
        if left is not None:
            raise self._refusal(left)

    def _refusal(self, left: float) -> CircuitOpenError:
        if left > 0:
            message = f"circuit open for {self.origin}; next trial in {left:.3f}s"
        else:
            message = f"circuit half-open for {self.origin}; a trial call is in flight"
        return CircuitOpenError(message, origin=self.origin, retry_after=left)

    def admit(self) -> bool:
        """Let an attempt through, or raise ``CircuitOpenError`` without I/O.

        Returns ``True`` when the attempt is the half-open trial: its outcome
        closes or re-opens the breaker, and :meth:`record` must be called for it
        (with ``failed=None`` if it ended without a verdict) to free the slot.
        """
        if self._storage.state == pybreaker.STATE_CLOSED:  # the lock-free common case
            return False
        with self._lock:
            if self._storage.state == pybreaker.STATE_CLOSED:
                return False
            left = self._storage.claim_trial(self._recovery)
            if left is not None:
                raise self._refusal(left)
            if self._storage.state != pybreaker.STATE_HALF_OPEN:
                self._breaker.half_open()  # notifies the listeners
            else:
                # A shared storage turned half-open in the claim itself: reading
                # pybreaker's ``state`` syncs its cached state and notifies.
                self._breaker.state  # noqa: B018
            return True

    def record(self, trial: bool, failed: Optional[bool], duration: float = 0.0) -> None:
        """Record an admitted attempt: ``failed`` True/False, or ``None`` for an
        outcome that says nothing about the origin (e.g. an invalid URL);
        ``duration`` in seconds, for the slow-call rule of ``policy="rate"``."""
        storage = self._storage
        if self._window is not None and failed is not None and not trial:
            self._record_in_window(failed, duration)
            return
        if not trial and failed is False:
            if storage.counter:  # a cheap read: an int here, a cached value for Redis
                with self._lock:
                    if storage.state == pybreaker.STATE_CLOSED:
                        storage.reset_counter()
            return
        with self._lock:
            if trial:
                storage.end_trial()
            if failed is None:
                return
            state = storage.state
            if state == pybreaker.STATE_CLOSED and failed:
                if storage.record_failure(self._breaker.fail_max):
                    self._breaker.open()
            elif state == pybreaker.STATE_HALF_OPEN and trial:
                # Only the trial decides; late results of calls admitted
                # before the breaker opened are ignored.
                if failed:
                    self._breaker.open()
                else:
                    if self._window is not None:
                        self._window.clear()
                    self._breaker.close()

    def _record_in_window(self, failed: bool, duration: float) -> None:
        slow = self._slow_after is not None and duration > self._slow_after
        window = self._window
        assert window is not None
        with self._lock:
            if self._storage.state != pybreaker.STATE_CLOSED:
                return  # a late result of a call admitted before the breaker opened
            if window.add(failed, slow):
                window.clear()
                self._breaker.open()

    def is_open(self) -> bool:
        """Whether the next attempt would be refused right now."""
        if self._storage.state == pybreaker.STATE_CLOSED:
            return False
        with self._lock:
            return self._storage.refusal(self._recovery) is not None


_NAMES = {
    pybreaker.STATE_CLOSED: CircuitState.CLOSED.value,
    pybreaker.STATE_OPEN: CircuitState.OPEN.value,
    pybreaker.STATE_HALF_OPEN: CircuitState.HALF_OPEN.value,
}


class BreakerEvents(pybreaker.CircuitBreakerListener):
    """Turns pybreaker's state changes into :class:`~.events.BreakerStateChanged` events."""

    def __init__(self, events: Events) -> None:
        self._events = events

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        if self._events.listeners:
            old = _NAMES.get(old_state.name, old_state.name) if old_state is not None else "none"
            self._events.emit("breaker_state_changed", BreakerStateChanged(
                str(cb.name), old, _NAMES.get(new_state.name, new_state.name),
            ))


class TransitionLog(pybreaker.CircuitBreakerListener):
    """Logs each state change once: opening at WARNING, the others at INFO."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        old = old_state.name if old_state is not None else "none"
        level = logging.WARNING if new_state.name == pybreaker.STATE_OPEN else logging.INFO
        self._log.log(
            level, "circuit %s -> %s for %s", old, new_state.name, cb.name,
            extra={"origin": cb.name, "outcome": f"circuit_{new_state.name}"},
        )
