"""Breaker state shared through Redis, so every worker on every host fails fast together.

:class:`RedisState` implements pybreaker's ``CircuitBreakerStorage`` interface
(``state``, ``counter``, ``opened_at``, ...) plus the trial slot of
:class:`~.breaker.LocalState`, for one origin. We do not subclass pybreaker's
``CircuitRedisStorage`` because of what it does when things go wrong or get
busy (pybreaker 1.4): with Redis down it reads the state as closed with zero
failures, so the breaker can never open; ``opened_at`` is kept in whole seconds
(a 1 s ``recovery_timeout`` lasted 0.15-0.76 s); a closed-state success costs
two round trips and a trip eight; and it has no shared half-open trial, so
every process probes a recovering upstream at once.

Here one origin is one Redis hash (``{namespace}:{origin}``: ``state``,
``failures``, ``opened_at`` in float seconds, ``trial_until``). Changes that
must be atomic across processes (counting a failure, claiming the one trial)
are small Lua scripts. Reads come from a local snapshot at most
``state_cache_ttl`` seconds old, so on the happy path most calls make no round
trip at all; what that staleness means is said in the README.

Redis trouble never breaks a call: any error, timeout or unreadable value
switches this origin to a local :class:`~.breaker.LocalState` for
``storage_retry`` seconds (logged once), after which the next operation tries
Redis again and, if it answers, the shared state is used again (logged once).
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Tuple, TypeVar, cast

import pybreaker

from .breaker import LocalState

__all__ = ["RedisState", "connect"]

T = TypeVar("T")
_LOG = logging.getLogger("resilient_requests.shared_state")

# KEYS[1] = the origin's hash. ARGV: threshold, now.
# Counts a failure while closed; opens the breaker when the threshold is reached.
_RECORD_FAILURE = """
if (redis.call('HGET', KEYS[1], 'state') or 'closed') ~= 'closed' then return 0 end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[2], 'failures', 0)
  return 1
end
return 0
"""

# ARGV: recovery_timeout, now, lease. Returns {granted (1/0), seconds left}.
# Open with time left, or half-open with a live trial: refused. Otherwise this
# caller becomes the trial, for at most `lease` seconds.
_CLAIM_TRIAL = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local now = tonumber(ARGV[2])
if state == 'open' then
  local left = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0') + tonumber(ARGV[1]) - now
  if left > 0 then return {0, tostring(left)} end
elseif state == 'half-open' then
  if tonumber(redis.call('HGET', KEYS[1], 'trial_until') or '0') > now then return {0, '0'} end
else
  return {1, '0'}
end
redis.call('HSET', KEYS[1], 'state', 'half-open', 'trial_until', now + tonumber(ARGV[3]))
return {1, '0'}
"""

_STATES = (pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN)


def connect(url: str, timeout: float) -> Any:
    """A redis-py client for ``url`` that fails fast: no retries, short timeouts.

    redis-py's default client retries with backoff, which made each breaker
    call take 8-17 s while Redis was down."""
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise ImportError(
            "shared breaker state needs the redis package: pip install 'resilient_requests[redis]'"
        ) from None
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0,
    )


class RedisState(LocalState):
    """One origin's breaker state in Redis, with a local fallback."""

    def __init__(self, client: Any, key: str, lease: float, cache_ttl: float, retry_after: float) -> None:
        super().__init__()  # the fallback: this process's own state
        self._client = client
        self._key = key
        self._lease = lease
        self._cache_ttl = cache_ttl
        self._retry_after = retry_after
        self._record_failure = client.register_script(_RECORD_FAILURE)
        self._claim_trial = client.register_script(_CLAIM_TRIAL)
        self._snapshot: Tuple[str, int, Optional[float], float] = (pybreaker.STATE_CLOSED, 0, None, 0.0)
        self._fetched = -1e9  # monotonic time of the snapshot
        self._down_until = 0.0  # monotonic: use local state until then
        self._lock = threading.Lock()

    # -- falling back --
    def _shared(self, operation: Callable[[], T], fallback: Callable[[], T]) -> T:
        """Run ``operation`` against Redis, or ``fallback`` locally while Redis is in trouble."""
        if self._down_until:
            if time.monotonic() < self._down_until:
                return fallback()
        try:
            result = operation()
        except Exception as error:  # redis errors, timeouts, garbage: never the caller's problem
            with self._lock:
                first = not self._down_until
                self._down_until = time.monotonic() + self._retry_after
            if first:
                _LOG.warning("shared breaker state for %s unavailable (%s); using local state",
                             self._key, error, extra={"origin": self._key})
            return fallback()
        if self._down_until:
            with self._lock:
                self._down_until = 0.0
            _LOG.warning("shared breaker state for %s is back", self._key, extra={"origin": self._key})
        return result

    def _fetch(self) -> Tuple[str, int, Optional[float], float]:
        """The origin's hash as (state, failures, opened_at, trial_until), cached briefly."""
        now = time.monotonic()
        if now - self._fetched < self._cache_ttl:
            return self._snapshot
        state, failures, opened_at, trial_until = self._client.hmget(
            self._key, "state", "failures", "opened_at", "trial_until")
        state = state.decode() if state else pybreaker.STATE_CLOSED
        if state not in _STATES:
            raise ValueError(f"unreadable breaker state {state!r}")
        snapshot = (state, int(failures or 0), float(opened_at) if opened_at else None,
                    float(trial_until or 0.0))
        self._snapshot, self._fetched = snapshot, now
        return snapshot

    def _forget(self) -> None:
        self._fetched = -1e9

    # -- pybreaker's storage interface --
    @property
    def state(self) -> str:
        return self._shared(lambda: self._fetch()[0], lambda: cast(str, LocalState.state.fget(self)))  # type: ignore[attr-defined]

    @state.setter
    def state(self, state: str) -> None:
        def write() -> None:
            self._client.hset(self._key, "state", state)
            self._forget()

        self._shared(write, lambda: LocalState.state.fset(self, state))  # type: ignore[attr-defined]

    @property
    def counter(self) -> int:
        return self._shared(lambda: self._fetch()[1], lambda: cast(int, LocalState.counter.fget(self)))  # type: ignore[attr-defined]

    def increment_counter(self) -> None:
        def write() -> None:
            self._client.hincrby(self._key, "failures", 1)
            self._forget()

        self._shared(write, super().increment_counter)

    def reset_counter(self) -> None:
        def write() -> None:
            self._client.hset(self._key, "failures", 0)
            self._forget()

        self._shared(write, super().reset_counter)

    @property
    def opened_at(self) -> Optional[datetime]:
        def read() -> Optional[datetime]:
            seconds = self._fetch()[2]
            return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)

        return self._shared(read, lambda: cast(Optional[datetime], LocalState.opened_at.fget(self)))  # type: ignore[attr-defined]

    @opened_at.setter
    def opened_at(self, when: datetime) -> None:
        def write() -> None:
            self._client.hset(self._key, "opened_at", repr(when.timestamp()))  # float seconds
            self._forget()

        self._shared(write, lambda: LocalState.opened_at.fset(self, when))  # type: ignore[attr-defined]

    # -- the trial slot and failure counting, atomic across processes --
    def refusal(self, recovery_timeout: float) -> Optional[float]:
        def read() -> Optional[float]:
            state, _, opened_at, trial_until = self._fetch()
            now = time.time()
            if state == pybreaker.STATE_CLOSED:
                return None
            if state == pybreaker.STATE_HALF_OPEN:
                return 0.0 if trial_until > now else None
            left = (opened_at or 0.0) + recovery_timeout - now
            return left if left > 0 else None

        return self._shared(read, lambda: LocalState.refusal(self, recovery_timeout))

    def claim_trial(self, recovery_timeout: float) -> Optional[float]:
        def claim() -> Optional[float]:
            granted, left = self._claim_trial(keys=[self._key], args=[recovery_timeout, time.time(), self._lease])
            self._forget()
            return None if int(granted) else float(left)

        return self._shared(claim, lambda: LocalState.claim_trial(self, recovery_timeout))

    def end_trial(self) -> None:
        def write() -> None:
            self._client.hset(self._key, "trial_until", 0)
            self._forget()

        LocalState.end_trial(self)
        self._shared(write, lambda: None)

    def record_failure(self, threshold: int) -> bool:
        def count() -> bool:
            opened = bool(int(self._record_failure(keys=[self._key], args=[threshold, repr(time.time())])))
            self._forget()
            return opened

        return self._shared(count, lambda: LocalState.record_failure(self, threshold))
