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

Times come from one clock, Redis's own (``TIME``), because the hosts' wall
clocks disagree and every host reads what the others wrote: stamped with its own
clock, a host running an hour ahead would put ``opened_at`` an hour into the
future, and every session would refuse calls for an hour. The Lua scripts read
``TIME`` for each "now" they compare or store (a script's writes are replicated
as effects, so a non-deterministic ``TIME`` is allowed before them). The cached
reads fetch ``TIME`` in the same pipelined round trip as the hash and keep the
offset between it and this host's ``time.time()`` (right to half a round trip),
so "now" on this side is ``time.time()`` plus that offset: Redis's time again.
pybreaker's own write of ``opened_at`` (``open()`` passes its
``datetime.now()``) is stored as Redis's time minus the age of the value it was
given, so no host's clock is ever stored; ``opened_at`` is read back on this
host's clock, as pybreaker compares it.

Values stamped by another clock can still be in the hash: a peer running an
older version, or a Redis replica promoted after a failover whose clock differs.
So the scripts also refuse to trust a time in the future: an ``opened_at``
ahead of Redis's "now" becomes "now" (the open period starts when first seen,
so a refusal never lasts longer than one open period), and a trial lease ending
later than one lease length from now is cut to that length. A cached read that
sees such a value does not refuse on it: it lets the caller on to the claim
script, which repairs the hash and answers. A time in the past cannot be told
from a genuine one and is trusted: at worst an open period is cut short.

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

# Redis's clock, read by every script for "now" (seconds, to the microsecond), and
# the text a time is stored as. replicate_commands() lets Redis 3.2-4 replicate a
# script that writes after TIME by its effects (the default from Redis 5 on).
_CLOCK = """
if redis.replicate_commands then redis.replicate_commands() end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function stamp(t) return string.format('%.6f', t) end
"""

# KEYS[1] = the origin's hash. ARGV: threshold.
# Counts a failure while closed; opens the breaker when the threshold is reached.
_RECORD_FAILURE = _CLOCK + """
if (redis.call('HGET', KEYS[1], 'state') or 'closed') ~= 'closed' then return 0 end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', stamp(clock()), 'failures', 0)
  return 1
end
return 0
"""

# Drops the trial leases (fields 'trial:<token>') that ended before 'now' (all
# of them when it is 'all'); cuts one ending more than 'longest' seconds after
# 'now' (stamped by a clock ahead of Redis's) to end then. Returns how many are left.
_LEASES = _CLOCK + """
local function leases(key, now, longest)
  local fields, live = redis.call('HGETALL', key), 0
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 6) == 'trial:' then
      local ends = tonumber(fields[i + 1])
      if now == 'all' or ends <= now then
        redis.call('HDEL', key, fields[i])
      else
        if ends > now + longest then redis.call('HSET', key, fields[i], stamp(now + longest)) end
        live = live + 1
      end
    end
  end
  return live
end
"""

# ARGV: recovery_timeout, multiplier, cap, permitted, lease, token.
# Returns {granted (1/0), seconds left (-1: closed, no trial needed)}. Open with
# time left (the open period grows with 'reopens'), or half-open with every
# place taken: refused. Otherwise this caller holds a trial lease until now + lease.
# An opened_at in the future becomes now, so the time left is at most one open period.
_CLAIM_TRIAL = _LEASES + """
local key, now, lease = KEYS[1], clock(), tonumber(ARGV[5])
local state = redis.call('HGET', key, 'state') or 'closed'
if state == 'closed' then return {0, '-1'} end
if state == 'open' then
  local reopens = tonumber(redis.call('HGET', key, 'reopens') or '0')
  local open_for = math.min(tonumber(ARGV[3]), tonumber(ARGV[1]) * tonumber(ARGV[2]) ^ reopens)
  local opened_at = tonumber(redis.call('HGET', key, 'opened_at') or '0')
  if opened_at > now then
    opened_at = now
    redis.call('HSET', key, 'opened_at', stamp(now))
  end
  local left = opened_at + open_for - now
  if left > 0 then return {0, tostring(left)} end
  leases(key, 'all', 0)
  redis.call('HSET', key, 'state', 'half-open', 'successes', 0)
elseif leases(key, now, lease) + tonumber(redis.call('HGET', key, 'successes') or '0') >= tonumber(ARGV[4]) then
  return {0, '0'}
end
redis.call('HSET', key, 'trial:' .. ARGV[6], stamp(now + lease))
return {1, '0'}
"""

# ARGV: token, verdict ('1' failed, '0' succeeded, '' none), permitted.
# Returns 1 if the trial opened the breaker, 2 if it closed it, else 0. A trial
# whose lease is gone (ended, or its half-open period is over) changes nothing.
_FINISH_TRIAL = _LEASES + """
local key = KEYS[1]
if redis.call('HDEL', key, 'trial:' .. ARGV[1]) == 0 or ARGV[2] == '' then return 0 end
if (redis.call('HGET', key, 'state') or 'closed') ~= 'half-open' then return 0 end
if ARGV[2] == '1' then
  redis.call('HINCRBY', key, 'reopens', 1)
  redis.call('HSET', key, 'state', 'open', 'opened_at', stamp(clock()), 'successes', 0)
  leases(key, 'all', 0)
  return 1
end
if redis.call('HINCRBY', key, 'successes', 1) < tonumber(ARGV[3]) then return 0 end
redis.call('HSET', key, 'state', 'closed', 'failures', 0, 'reopens', 0, 'successes', 0)
leases(key, 'all', 0)
return 2
"""

# ARGV: age. Stores opened_at as Redis's now minus 'age' seconds: pybreaker's
# open() hands over its own clock's now, whose age on that clock is what it means.
_SET_OPENED_AT = _CLOCK + """
redis.call('HSET', KEYS[1], 'opened_at', stamp(clock() - tonumber(ARGV[1])))
return 0
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
    opened_at: Optional[float]  # epoch seconds on Redis's clock
    reopens: int
    successes: int
    leases: Tuple[float, ...]  # the trial leases' end times, epoch seconds on Redis's clock
    offset: float  # Redis's clock minus this host's time.time(), when this was read


def _text(value: Any) -> str:
    """A hash field or value as text (bytes unless the client decodes responses)."""
    return value.decode() if isinstance(value, bytes) else str(value)


_CLOSED = _Snapshot(pybreaker.STATE_CLOSED, 0, None, 0, 0, (), 0.0)


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
        self._set_opened_at = client.register_script(_SET_OPENED_AT)
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
        """The origin's hash and Redis's clock, read in one round trip, cached briefly."""
        now = time.monotonic()
        if now - self._fetched < self._cache_ttl:
            return self._snapshot
        pipe = self._client.pipeline(transaction=False)
        pipe.time()
        pipe.hgetall(self._key)
        sent = time.time()
        (seconds, microseconds), raw = pipe.execute()
        # TIME ran somewhere in the round trip: its middle is the best guess (off by half of it at most).
        offset = int(seconds) + int(microseconds) / 1e6 - (sent + time.time()) / 2
        fields = {_text(key): _text(value) for key, value in raw.items()}
        state = fields.get("state", pybreaker.STATE_CLOSED)
        if state not in _STATES:
            raise ValueError(f"unreadable breaker state {state!r}")
        opened_at = fields.get("opened_at")
        snapshot = _Snapshot(
            state, int(fields.get("failures", 0)), float(opened_at) if opened_at else None,
            int(fields.get("reopens", 0)), int(fields.get("successes", 0)),
            tuple(float(until) for name, until in fields.items() if name.startswith("trial:")),
            offset,
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
        """When the breaker last opened, on this host's clock (as pybreaker compares it)."""
        def read() -> Optional[datetime]:
            shared = self._fetch()
            if shared.opened_at is None:
                return None
            return datetime.fromtimestamp(shared.opened_at - shared.offset, timezone.utc)

        return self._shared(read, lambda: cast(Optional[datetime], LocalState.opened_at.fget(self)))  # type: ignore[attr-defined]

    @opened_at.setter
    def opened_at(self, when: datetime) -> None:
        # Stored on Redis's clock: as long before Redis's now as ``when`` is before
        # this host's (pybreaker's open() passes its now: an age of microseconds).
        def write() -> None:
            self._set_opened_at(keys=[self._key], args=[repr(time.time() - when.timestamp())])
            self._forget()

        self._shared(write, lambda: LocalState.opened_at.fset(self, when))  # type: ignore[attr-defined]

    # -- the trials and failure counting, atomic across processes --
    @property
    def reopens(self) -> int:
        return self._shared(lambda: self._fetch().reopens, lambda: self._reopens)

    def refusal(self, config: CircuitBreakerConfig, lease: Optional[float] = None) -> Optional[float]:
        # A time stamped by a clock ahead of Redis's (see the module docstring) is
        # not refused on here: a cached read cannot repair it, and refusing on it
        # would keep the caller from the claim script that does.
        def read() -> Optional[float]:
            shared = self._fetch()
            if shared.state == pybreaker.STATE_CLOSED:
                return None
            now = time.time() + shared.offset  # Redis's clock
            if shared.state == pybreaker.STATE_HALF_OPEN:
                if lease is not None and any(until > now + lease for until in shared.leases):
                    return None
                live = sum(until > now for until in shared.leases)
                return 0.0 if live + shared.successes >= config.permitted_calls_in_half_open else None
            opened_at = shared.opened_at or 0.0
            if opened_at > now:
                return None
            open_for = config.open_for(shared.reopens)
            left = min(opened_at + open_for - now, open_for)
            return left if left > 0 else None

        return self._shared(read, lambda: LocalState.refusal(self, config, lease))

    def claim_trial(self, config: CircuitBreakerConfig, lease: float) -> Union[str, float, None]:
        def claim() -> Union[str, float, None]:
            token = self._token_prefix + str(next(self._tokens))
            # The script computes the open period as CircuitBreakerConfig.open_for
            # does, from the 'reopens' it reads in the same atomic step.
            granted, left = self._claim_trial(keys=[self._key], args=[
                repr(config.recovery_timeout), repr(config.recovery_multiplier), repr(config.recovery_cap),
                config.permitted_calls_in_half_open, repr(lease), token,
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
                config.permitted_calls_in_half_open,
            ]))
            self._forget()
            return {1: "open", 2: "close"}.get(verdict)

        return self._shared(finish, lambda: None)

    def record_failure(self, threshold: int) -> bool:
        def count() -> bool:
            opened = bool(int(self._record_failure(keys=[self._key], args=[threshold])))
            self._forget()
            return opened

        return self._shared(count, lambda: LocalState.record_failure(self, threshold))
