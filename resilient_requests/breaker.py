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
from datetime import datetime, timezone
from typing import Any, Optional, Sequence

import pybreaker

from .config import CircuitBreakerConfig
from .events import BreakerStateChanged, Events
from .exceptions import CircuitOpenError

__all__ = ["CircuitState", "LocalState", "OriginBreaker", "TransitionLog", "BreakerEvents"]


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

    def record(self, trial: bool, failed: Optional[bool]) -> None:
        """Record an admitted attempt: ``failed`` True/False, or ``None`` for an
        outcome that says nothing about the origin (e.g. an invalid URL)."""
        storage = self._storage
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
                    self._breaker.close()

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
