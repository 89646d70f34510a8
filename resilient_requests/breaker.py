"""Circuit breakers, one per origin, on pybreaker's state machine and storage.

pybreaker's ``CircuitBreaker.call`` holds the breaker's lock for the whole
wrapped call, so every thread calling one origin runs one at a time (32 calls
of 50 ms from 16 threads: 1.61 s instead of 0.10 s). Its ``calling()`` context
manager skips that lock but then lets every waiting caller into half-open at
once. And it counts only raised exceptions, while a 503 *response* must count
as a failure and a 404 as a success.

So this module steps around ``call()``: it keeps pybreaker's storage (failure
and success counters, state, ``opened_at``), its transitions (``open()``,
``half_open()``, ``close()``, which notify its listeners) and its settings
(``success_threshold`` is ``permitted_calls_in_half_open``), and adds two
things: an *admit* step before each attempt and a *record* step after it, each
holding a small lock of ours for a few dictionary operations and never across
I/O; and leased half-open trial places, so a set number of callers probe a
recovering origin while every other caller still fails fast. Only public
pybreaker names are used.

Listeners are told the state a transition really left, not the one pybreaker
has cached. pybreaker reports its breaker object's cached state as the old
one, and with shared storage that cache is stale whenever another process moved
the breaker meanwhile: a process that opened the breaker, saw nothing while
another closed it, and opens it again would report ``open -> open``. Each place
that makes a transition knows what it left (a failure count opens only a
closed breaker, a trial's verdict ends only a half-open one, a trial is
admitted only into half-open, entered only from open), so that state is what
the listeners get; and a change to the state a breaker was already in is
never reported at all.
"""
from __future__ import annotations

import builtins
import enum
import importlib.util
import itertools
import logging
import sys
import threading
import time
from collections import deque
from datetime import datetime, timezone
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Optional, Sequence, Tuple, Union

from .config import CircuitBreakerConfig
from .events import BreakerStateChanged, Events
from .exceptions import CircuitOpenError

__all__ = ["CircuitState", "LocalState", "OriginBreaker", "RateWindow", "TransitionLog", "BreakerEvents"]

#: The name pybreaker's module runs under here (see :func:`_pybreaker_without_redis`).
_PYBREAKER = "resilient_requests._pybreaker"


def _pybreaker_without_redis() -> ModuleType:
    """pybreaker's module, run without its optional ``redis`` and ``tornado`` imports.

    pybreaker tries ``from redis import Redis`` when it is imported, for its
    ``CircuitRedisStorage``; with redis-py installed (our ``redis`` extra) that
    import (redis-py's asyncio client, and OpenTelemetry when installed) was
    60-120 ms of every ``import resilient_requests``, for a class this library
    never uses: shared breaker state is :class:`.shared_state.RedisState`, our
    own, which imports redis-py only when a session is configured with it.

    So pybreaker's source runs a second time, as its own module
    (``resilient_requests._pybreaker``), with ``import redis`` and ``import
    tornado`` failing as if they were not installed; everything else in it is
    unchanged. The real ``pybreaker`` module is left alone: we do not import it,
    and a program that does gets it whole, ``CircuitRedisStorage`` included.
    Rejected: hiding redis while importing the real ``pybreaker`` would leave
    every other user of it without Redis storage for the life of the process;
    importing pybreaker lazily would only move the cost to the first request,
    which needs a breaker. Where pybreaker's source cannot be run this way (a
    zipped or frozen application), it is imported as usual."""
    loaded = sys.modules.get(_PYBREAKER)
    if loaded is not None:
        return loaded
    found = importlib.util.find_spec("pybreaker")
    origin = found.origin if found is not None else None
    spec = (importlib.util.spec_from_file_location(_PYBREAKER, origin)
            if origin is not None and origin.endswith(".py") else None)
    if spec is None or spec.loader is None:
        import pybreaker

        return pybreaker
    real_import = builtins.__import__

    def without_optional(name: str, globals: Any = None, locals: Any = None,
                         fromlist: Any = (), level: int = 0) -> ModuleType:
        if level == 0 and name.partition(".")[0] in ("redis", "tornado"):
            raise ImportError(f"{name} is not imported by resilient_requests' pybreaker")
        return real_import(name, globals, locals, fromlist, level)

    module = importlib.util.module_from_spec(spec)
    module.__dict__["__builtins__"] = dict(vars(builtins), __import__=without_optional)
    sys.modules[_PYBREAKER] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_PYBREAKER]
        raise
    return module


if TYPE_CHECKING:
    import pybreaker
else:
    pybreaker = _pybreaker_without_redis()


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
    """pybreaker's in-memory storage plus the half-open trials: the state of one
    origin in one process. :mod:`.shared_state` offers the same methods over
    Redis; :class:`OriginBreaker` calls them holding its own lock.

    Half-open admits ``permitted_calls_in_half_open`` trials. Each holds a
    *lease* (a token and an end time): a trial that never reports back loses
    its place when the lease ends, and a result reported after that, or after
    the breaker moved on, is ignored. Successful trials are counted in
    pybreaker's success counter (which its transitions reset); failed trials in
    a row, in ``reopens``, lengthen the next open period.
    """

    def __init__(self) -> None:
        super().__init__(pybreaker.STATE_CLOSED)
        self._trials: Dict[str, float] = {}  # token -> lease end (time.monotonic)
        self._tokens = itertools.count(1)
        self._reopens = 0

    @property
    def reopens(self) -> int:
        """Failed trials since the breaker last closed."""
        return self._reopens

    def refusal(self, config: CircuitBreakerConfig, lease: Optional[float] = None) -> Optional[float]:
        """``None`` if an attempt would be admitted now, else the seconds until
        one would be (0.0 while half-open with every trial place taken).
        ``lease`` is the longest a trial may hold its place: a shared storage
        uses it to spot a lease stamped by a clock ahead of its own (this
        process's own leases are on the monotonic clock and cannot be)."""
        state = self.state
        if state == pybreaker.STATE_CLOSED:
            return None
        if state == pybreaker.STATE_HALF_OPEN:
            return None if self._room(config) else 0.0
        left = _seconds_left(self.opened_at, config.open_for(self._reopens))
        return left if left > 0 else None

    def _room(self, config: CircuitBreakerConfig) -> bool:
        now = time.monotonic()
        for token, until in list(self._trials.items()):
            if until <= now:
                del self._trials[token]  # a trial that never reported back
        return len(self._trials) + self.success_counter < config.permitted_calls_in_half_open

    def claim_trial(self, config: CircuitBreakerConfig, lease: float) -> Union[str, float, None]:
        """A trial's token if this caller may try now; ``None`` if the breaker
        is closed (no trial needed); else the seconds as :meth:`refusal`."""
        state = self.state
        if state == pybreaker.STATE_CLOSED:
            return None
        refused = LocalState.refusal(self, config)  # this class's own, also as Redis's fallback
        if refused is not None:
            return refused
        if state == pybreaker.STATE_OPEN:
            self._trials.clear()  # a new half-open period begins
        token = str(next(self._tokens))
        self._trials[token] = time.monotonic() + lease
        return token

    def finish_trial(self, token: str, failed: Optional[bool], config: CircuitBreakerConfig) -> Optional[str]:
        """Record a trial's outcome: ``"open"`` or ``"close"`` when it decides
        the breaker's next state, else ``None``. ``failed=None`` (no verdict)
        only gives the place back."""
        if self._trials.pop(token, None) is None or failed is None:
            return None  # lease ended, or the breaker moved on meanwhile
        if self.state != pybreaker.STATE_HALF_OPEN:
            return None
        if failed:
            self._reopens += 1
        else:
            self.increment_success_counter()
            if self.success_counter < config.permitted_calls_in_half_open:
                return None  # the other trials decide
            self._reopens = 0
        self._trials.clear()  # this half-open period is over: late trials are ignored
        return "open" if failed else "close"

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
        trial_timeout: float = 60.0,
    ) -> None:
        self.origin = origin
        self._storage = storage if storage is not None else LocalState()
        # pybreaker notifies its listeners inside open()/close()/half_open(),
        # while we hold our lock and (for open) before the new state is in the
        # storage: a listener calling this breaker back would deadlock, or be
        # admitted by a breaker that is opening. So pybreaker's only listener
        # queues the changes, and _deliver() hands them on, in order, after
        # the lock is released and the storage written.
        self._queued = _Queue()
        self._listeners = list(listeners)
        self._delivering = threading.RLock()  # re-entrant: a listener may cause a change
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=config.failure_threshold,
            reset_timeout=config.recovery_timeout,
            success_threshold=config.permitted_calls_in_half_open,
            state_storage=self._storage,
            listeners=[self._queued],
            name=origin,
        )
        self._config = config
        self._lease = config.trial_timeout if config.trial_timeout is not None else trial_timeout
        self._lock = threading.Lock()
        self._window = RateWindow(config) if config.policy == "rate" else None
        self._slow_after = config.slow_call_duration
        # While open, this process's own state refuses until a known moment: checked
        # on the monotonic clock, without the lock (a shared state may be closed
        # early by another process, so it is asked every time).
        self._local_only = type(self._storage) is LocalState
        self._refuse_until: Tuple[Optional[datetime], float] = (None, 0.0)  # (opened_at, until)

    @property
    def state(self) -> CircuitState:
        """The stored state. An open breaker whose timeout has passed still reads
        ``OPEN`` until the next call turns it half-open."""
        return _STATES[self._storage.state]

    @property
    def failure_count(self) -> int:
        """Consecutive failures recorded while closed."""
        return int(self._storage.counter)

    @property
    def open_for(self) -> float:
        """Seconds the breaker stays open when it next opens (or stays now):
        longer after failed trials if ``recovery_multiplier`` > 1."""
        return self._config.open_for(self._storage.reopens)

    def check(self) -> None:
        """Raise ``CircuitOpenError`` if an attempt would be refused now (no state change)."""
        if self._storage.state == pybreaker.STATE_CLOSED:
            return
        opened_at, until = self._refuse_until
        if until and opened_at is self._storage.opened_at:  # the same open period
            now = time.monotonic()
            if now < until:
                raise self._refusal(until - now)
        with self._lock:
            left = self._storage.refusal(self._config, self._lease)
            if left is not None and left > 0 and self._local_only:
                self._refuse_until = (self._storage.opened_at, time.monotonic() + left)
        if left is not None:
            raise self._refusal(left)

    def _refusal(self, left: float) -> CircuitOpenError:
        # Its message is written when read (CircuitOpenError.__str__).
        return CircuitOpenError(origin=self.origin, retry_after=left)

    def admit(self) -> Optional[str]:
        """Let an attempt through, or raise ``CircuitOpenError`` without I/O.

        Returns ``None`` for an ordinary attempt, or a token when the attempt is
        a half-open trial: trials decide whether the breaker closes or opens
        again, and :meth:`record` must be called for each (with ``failed=None``
        if it ended without a verdict) to give its place back.
        """
        if self._storage.state == pybreaker.STATE_CLOSED:  # the lock-free common case
            return None
        with self._lock:
            claimed = self._storage.claim_trial(self._config, self._lease)
            if claimed is None:
                return None  # closed meanwhile (by another process, with shared state)
            if not isinstance(claimed, str):
                raise self._refusal(claimed)
            # Half-open is entered only from open, whatever pybreaker has cached.
            if self._storage.state != pybreaker.STATE_HALF_OPEN:
                self._move(pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN, self._breaker.half_open)
            else:
                # Already half-open, or a shared storage turned half-open in the
                # claim itself: reading pybreaker's ``state`` syncs its cached
                # state and notifies the listeners if it changed.
                self._move(pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN, lambda: self._breaker.state)
        self._deliver()
        return claimed

    def record(self, trial: Optional[str], failed: Optional[bool], duration: float = 0.0) -> None:
        """Record an admitted attempt: ``trial`` as :meth:`admit` returned it;
        ``failed`` True/False, or ``None`` for an outcome that says nothing
        about the origin (e.g. an invalid URL); ``duration`` in seconds, for the
        slow-call rule of ``policy="rate"``."""
        storage = self._storage
        if trial is not None:
            self._record_trial(trial, failed, duration)
        elif self._window is not None and failed is not None:
            self._record_in_window(failed, duration)
        elif failed is False:
            if storage.counter:  # a cheap read: an int here, a cached value for Redis
                with self._lock:
                    if storage.state == pybreaker.STATE_CLOSED:
                        storage.reset_counter()
            return
        elif failed:
            with self._lock:
                # Late results of calls admitted before the breaker opened are ignored.
                if storage.state == pybreaker.STATE_CLOSED and storage.record_failure(self._breaker.fail_max):
                    self._move(pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, self._breaker.open)
        if self._queued.changes:
            self._deliver()

    def _move(self, was: str, into: str, transition: Callable[[], object]) -> None:
        """Make a pybreaker transition into ``into`` (or sync its cached state),
        telling the listeners it left ``was``: pybreaker would report its cached
        state, stale if another process changed the shared state meanwhile.
        Holding the lock."""
        self._queued.move = (was, into)
        try:
            transition()
        finally:
            self._queued.move = None

    def _deliver(self) -> None:
        """Hand queued state changes to the listeners, oldest first, outside the lock."""
        queue = self._queued.changes
        if not queue:
            return
        with self._delivering:  # one deliverer at a time keeps the order
            while queue:
                try:
                    cb, old, new = queue.popleft()
                except IndexError:
                    return
                for listener in self._listeners:
                    listener.state_change(cb, old, new)

    def _record_trial(self, trial: str, failed: Optional[bool], duration: float) -> None:
        if failed is False and self._window is not None and self._slow_after is not None \
                and duration > self._slow_after:
            failed = True  # under the slow-call rule, a slow trial shows the origin still slow
        with self._lock:
            verdict = self._storage.finish_trial(trial, failed, self._config)
            if verdict == "open":
                self._move(pybreaker.STATE_HALF_OPEN, pybreaker.STATE_OPEN, self._breaker.open)
            elif verdict == "close":
                if self._window is not None:
                    self._window.clear()
                self._move(pybreaker.STATE_HALF_OPEN, pybreaker.STATE_CLOSED, self._breaker.close)

    def _record_in_window(self, failed: bool, duration: float) -> None:
        slow = self._slow_after is not None and duration > self._slow_after
        window = self._window
        assert window is not None
        with self._lock:
            if self._storage.state != pybreaker.STATE_CLOSED:
                return  # a late result of a call admitted before the breaker opened
            if window.add(failed, slow):
                window.clear()
                self._move(pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, self._breaker.open)

    def is_open(self) -> bool:
        """Whether the next attempt would be refused right now."""
        if self._storage.state == pybreaker.STATE_CLOSED:
            return False
        with self._lock:
            return self._storage.refusal(self._config, self._lease) is not None


_STATE_CLASSES = {
    pybreaker.STATE_CLOSED: pybreaker.CircuitClosedState,
    pybreaker.STATE_OPEN: pybreaker.CircuitOpenState,
    pybreaker.STATE_HALF_OPEN: pybreaker.CircuitHalfOpenState,
}


class _Queue(pybreaker.CircuitBreakerListener):
    """pybreaker's listener: queues each state change for :meth:`OriginBreaker._deliver`,
    with the old state :meth:`OriginBreaker._move` says was left, and none that is no change."""

    def __init__(self) -> None:
        self.changes: Deque[Tuple[Any, Any, Any]] = deque()
        # (state left, state entered) of the transition OriginBreaker._move is
        # making, under the breaker's lock; a change into another state (a
        # sync that found the shared state moved on) keeps pybreaker's old state.
        self.move: Optional[Tuple[str, str]] = None

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        move = self.move
        if move is not None and move[1] == new_state.name and (old_state is None or old_state.name != move[0]):
            # Made without notify: a plain state object, no counters reset, no listeners called.
            old_state = _STATE_CLASSES[move[0]](cb, None)
        if old_state is not None and old_state.name == new_state.name:
            return  # not a change
        self.changes.append((cb, old_state, new_state))


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
