"""Breaker state shared through Redis, so every worker on every host fails fast together.

:class:`RedisState` implements pybreaker's ``CircuitBreakerStorage`` interface
(``state``, ``counter``, ``opened_at``, ...) plus the half-open trials of
:class:`~.breaker.LocalState`, for one origin. We do not subclass pybreaker's
``CircuitRedisStorage`` because of what it does when things go wrong or get
busy (pybreaker 1.4): with Redis down it reads the state as closed with zero
failures, so the breaker can never open; ``opened_at`` is kept in whole seconds
(a 1 s ``recovery_timeout`` lasted 0.15-0.76 s); a closed-state success costs
two round trips and a trip eight; and it has no shared half-open trial, so
every process probes a recovering upstream at once.

Here one origin is one Redis hash (``{namespace}:breaker:{origin}``: ``state``,
``failures``, ``opened_at`` in float seconds, ``reopens``, ``successes``, and a
``trial:<token>`` field per half-open trial holding its lease's end). Changes
that must be atomic across processes (counting a failure, claiming a trial
place, recording a trial's verdict) are small Lua scripts. Reads come from a local snapshot at most
``state_cache_ttl`` seconds old, so on the happy path most calls make no round
trip at all; what that staleness means is said in the README.

Redis trouble never breaks a call: any error, timeout or unreadable value
switches this origin to a local :class:`~.breaker.LocalState` for
``storage_retry`` seconds (logged once), after which the next operation tries
Redis again and, if it answers, the shared state is used again (logged once).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, NamedTuple, Optional, Tuple, TypeVar, Union, cast

import pybreaker

from .breaker import LocalState
from .config import CircuitBreakerConfig

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

# Drops the trial leases (fields 'trial:<token>') that ended before ARGV[1]
# (all of them when it is 'all'); returns how many are left.
_LEASES = """
local function leases(key, now)
  local fields, live = redis.call('HGETALL', key), 0
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 6) == 'trial:' then
      if now == 'all' or tonumber(fields[i + 1]) <= tonumber(now) then
        redis.call('HDEL', key, fields[i])
      else
        live = live + 1
      end
    end
  end
  return live
end
"""

# ARGV: recovery_timeout, multiplier, cap, permitted, now, lease, token.
# Returns {granted (1/0), seconds left (-1: closed, no trial needed)}. Open with
# time left (the open period grows with 'reopens'), or half-open with every
# place taken: refused. Otherwise this caller holds a trial lease until now + lease.
_CLAIM_TRIAL = _LEASES + """
local key, now = KEYS[1], tonumber(ARGV[5])
local state = redis.call('HGET', key, 'state') or 'closed'
if state == 'closed' then return {0, '-1'} end
if state == 'open' then
  local reopens = tonumber(redis.call('HGET', key, 'reopens') or '0')
  local open_for = math.min(tonumber(ARGV[3]), tonumber(ARGV[1]) * tonumber(ARGV[2]) ^ reopens)
  local left = tonumber(redis.call('HGET', key, 'opened_at') or '0') + open_for - now
  if left > 0 then return {0, tostring(left)} end
  leases(key, 'all')
  redis.call('HSET', key, 'state', 'half-open', 'successes', 0)
elseif leases(key, ARGV[5]) + tonumber(redis.call('HGET', key, 'successes') or '0') >= tonumber(ARGV[4]) then
  return {0, '0'}
end
redis.call('HSET', key, 'trial:' .. ARGV[7], now + tonumber(ARGV[6]))
return {1, '0'}
"""

# ARGV: token, verdict ('1' failed, '0' succeeded, '' none), permitted, now.
# Returns 1 if the trial opened the breaker, 2 if it closed it, else 0. A trial
# whose lease is gone (ended, or its half-open period is over) changes nothing.
_FINISH_TRIAL = _LEASES + """
local key = KEYS[1]
if redis.call('HDEL', key, 'trial:' .. ARGV[1]) == 0 or ARGV[2] == '' then return 0 end
if (redis.call('HGET', key, 'state') or 'closed') ~= 'half-open' then return 0 end
if ARGV[2] == '1' then
  redis.call('HINCRBY', key, 'reopens', 1)
  redis.call('HSET', key, 'state', 'open', 'opened_at', ARGV[4], 'successes', 0)
  leases(key, 'all')
  return 1
end
if redis.call('HINCRBY', key, 'successes', 1) < tonumber(ARGV[3]) then return 0 end
redis.call('HSET', key, 'state', 'closed', 'failures', 0, 'reopens', 0, 'successes', 0)
leases(key, 'all')
return 2
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


class _Snapshot(NamedTuple):
    state: str
    failures: int
    opened_at: Optional[float]  # epoch seconds
    reopens: int
    successes: int
    leases: Tuple[float, ...]  # the trial leases' end times, epoch seconds


def _text(value: Any) -> str:
    """A hash field or value as text (bytes unless the client decodes responses)."""
    return value.decode() if isinstance(value, bytes) else str(value)


_CLOSED = _Snapshot(pybreaker.STATE_CLOSED, 0, None, 0, 0, ())


class RedisState(LocalState):
    """One origin's breaker state in Redis, with a local fallback."""

    def __init__(self, client: Any, key: str, cache_ttl: float, retry_after: float) -> None:
        super().__init__()  # the fallback: this process's own state
        self._client = client
        self._key = key
        self._cache_ttl = cache_ttl
        self._retry_after = retry_after
        self._record_failure = client.register_script(_RECORD_FAILURE)
        self._claim_trial = client.register_script(_CLAIM_TRIAL)
        self._finish_trial = client.register_script(_FINISH_TRIAL)
        # Trial tokens name this process: tokens only need to differ across processes.
        self._token_prefix = f"{os.getpid()}-{os.urandom(4).hex()}-"
        self._snapshot = _CLOSED
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

    def _fetch(self) -> _Snapshot:
        """The origin's hash, cached briefly."""
        now = time.monotonic()
        if now - self._fetched < self._cache_ttl:
            return self._snapshot
        fields = {_text(key): _text(value) for key, value in self._client.hgetall(self._key).items()}
        state = fields.get("state", pybreaker.STATE_CLOSED)
        if state not in _STATES:
            raise ValueError(f"unreadable breaker state {state!r}")
        opened_at = fields.get("opened_at")
        snapshot = _Snapshot(
            state, int(fields.get("failures", 0)), float(opened_at) if opened_at else None,
            int(fields.get("reopens", 0)), int(fields.get("successes", 0)),
            tuple(float(until) for name, until in fields.items() if name.startswith("trial:")),
        )
        self._snapshot, self._fetched = snapshot, now
        return snapshot

    def _forget(self) -> None:
        self._fetched = -1e9

    def _write(self, **fields: Any) -> Callable[[], None]:
        def write() -> None:
            self._client.hset(self._key, mapping=fields)
            self._forget()

        return write

    # -- pybreaker's storage interface --
    @property
    def state(self) -> str:
        return self._shared(lambda: self._fetch().state, lambda: cast(str, LocalState.state.fget(self)))  # type: ignore[attr-defined]

    @state.setter
    def state(self, state: str) -> None:
        self._shared(self._write(state=state), lambda: LocalState.state.fset(self, state))  # type: ignore[attr-defined]

    @property
    def counter(self) -> int:
        return self._shared(lambda: self._fetch().failures, lambda: cast(int, LocalState.counter.fget(self)))  # type: ignore[attr-defined]

    def increment_counter(self) -> None:
        def write() -> None:
            self._client.hincrby(self._key, "failures", 1)
            self._forget()

        self._shared(write, super().increment_counter)

    def reset_counter(self) -> None:
        self._shared(self._write(failures=0), super().reset_counter)

    def reset_success_counter(self) -> None:
        # pybreaker resets the success counter whenever a breaker object notices
        # a state change, including one another process made: that would wipe
        # the shared count of successful trials. The Lua scripts reset it at the
        # real transitions instead; only the local fallback's copy is reset here.
        LocalState.reset_success_counter(self)

    @property
    def opened_at(self) -> Optional[datetime]:
        def read() -> Optional[datetime]:
            seconds = self._fetch().opened_at
            return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)

        return self._shared(read, lambda: cast(Optional[datetime], LocalState.opened_at.fget(self)))  # type: ignore[attr-defined]

    @opened_at.setter
    def opened_at(self, when: datetime) -> None:
        self._shared(self._write(opened_at=repr(when.timestamp())),  # float seconds
                     lambda: LocalState.opened_at.fset(self, when))  # type: ignore[attr-defined]

    # -- the trials and failure counting, atomic across processes --
    @property
    def reopens(self) -> int:
        return self._shared(lambda: self._fetch().reopens, lambda: self._reopens)

    def refusal(self, config: CircuitBreakerConfig) -> Optional[float]:
        def read() -> Optional[float]:
            shared = self._fetch()
            now = time.time()
            if shared.state == pybreaker.STATE_CLOSED:
                return None
            if shared.state == pybreaker.STATE_HALF_OPEN:
                live = sum(until > now for until in shared.leases)
                return 0.0 if live + shared.successes >= config.permitted_calls_in_half_open else None
            left = (shared.opened_at or 0.0) + config.open_for(shared.reopens) - now
            return left if left > 0 else None

        return self._shared(read, lambda: LocalState.refusal(self, config))

    def claim_trial(self, config: CircuitBreakerConfig, lease: float) -> Union[str, float, None]:
        def claim() -> Union[str, float, None]:
            token = self._token_prefix + str(next(self._tokens))
            # The script computes the open period as CircuitBreakerConfig.open_for
            # does, from the 'reopens' it reads in the same atomic step.
            granted, left = self._claim_trial(keys=[self._key], args=[
                repr(config.recovery_timeout), repr(config.recovery_multiplier), repr(config.recovery_cap),
                config.permitted_calls_in_half_open, repr(time.time()), repr(lease), token,
            ])
            self._forget()
            if int(granted):
                return token
            seconds = float(left)
            return None if seconds < 0 else seconds

        return self._shared(claim, lambda: LocalState.claim_trial(self, config, lease))

    def finish_trial(self, token: str, failed: Optional[bool], config: CircuitBreakerConfig) -> Optional[str]:
        if not token.startswith(self._token_prefix):  # claimed from the local fallback
            return LocalState.finish_trial(self, token, failed, config)

        def finish() -> Optional[str]:
            verdict = int(self._finish_trial(keys=[self._key], args=[
                token, "" if failed is None else str(int(failed)),
                config.permitted_calls_in_half_open, repr(time.time()),
            ]))
            self._forget()
            return {1: "open", 2: "close"}.get(verdict)

        return self._shared(finish, lambda: None)

    def record_failure(self, threshold: int) -> bool:
        def count() -> bool:
            opened = bool(int(self._record_failure(keys=[self._key], args=[threshold, repr(time.time())])))
            self._forget()
            return opened

        return self._shared(count, lambda: LocalState.record_failure(self, threshold))
