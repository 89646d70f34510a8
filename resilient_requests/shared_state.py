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
trip at all; what that staleness means is said in docs/operations/redis.md.

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

Redis trouble never breaks a call, and does not forget what was known. Each
origin keeps the shared state as last read (with the changes this process made
since, whether or not Redis took them). An operation that fails (an error, a
timeout, an unreadable value) is answered from it: a read gives the last known
value; a failure to count is counted there (and opens the breaker if that
reaches the threshold); a trial verdict is kept there; a trial place is never
claimed on a guess (the caller is refused until Redis answers). Only after
:data:`FAILURES_TO_FALLBACK` (3) operations failed in a row, each started
after the previous one failed (so one stall seen by many threads counts once),
does the origin switch to a local :class:`~.breaker.LocalState` for
``storage_retry`` seconds (logged once); that local state starts from the last
known shared state, on this process's clocks: an open breaker stays open until
its open period (grown by its ``reopens``) ends from its known ``opened_at``;
a half-open one stays half-open, its places held by the known trials until
their leases end; a closed one keeps its failure count. Failures seen from then
on are counted locally. After ``storage_retry`` one operation tries Redis again
(the others stay local meanwhile) and, if it answers, the shared state is used
again (logged once).

A failure count whose script timed out is not sent again: Redis runs a command
it had received once it gets to it (a SIGSTOPped Redis did, on SIGCONT), so a
resend would count it twice; if it never arrived, the shared count is one short
until the next failure.

What an outage costs: while Redis hangs, the first operations each wait one
``storage_timeout`` (three in a row, i.e. 0.75 s at the default 0.25 s, spread
over the first calls, before the fallback takes over), then one operation per
``storage_retry``; a refused connection costs nothing measurable. The
dependency gets nothing more than with Redis up while the known open period
lasts; then each process sends its own trial (with Redis up, one trial in all).
Measured (tests/test_shared_fallback.py: three workers, ``failure_threshold=3``,
the shared breaker open when Redis is SIGSTOPped or killed): 0 requests reached
the dependency during the open period (each worker fell back to a closed breaker
before: 9, its own threshold each), then one trial per worker.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional, Tuple, TypeVar, Union, cast

from .breaker import LocalState
from .config import CircuitBreakerConfig, require_redis

if TYPE_CHECKING:
    import pybreaker
else:  # the pybreaker module LocalState is built on (see breaker._pybreaker_without_redis)
    from .breaker import pybreaker

__all__ = ["RedisState", "connect", "FAILURES_TO_FALLBACK"]

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
    redis = require_redis()
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0,
    )


class _Snapshot(NamedTuple):
    state: str
    failures: int
    opened_at: Optional[float]  # epoch seconds on Redis's clock
    reopens: int
    successes: int
    leases: Tuple[Tuple[str, float], ...]  # the trial leases: (token, end in epoch seconds on Redis's clock)
    offset: float  # Redis's clock minus this host's time.time(), when this was read


def _text(value: Any) -> str:
    """A hash field or value as text (bytes unless the client decodes responses)."""
    return value.decode() if isinstance(value, bytes) else str(value)


_CLOSED = _Snapshot(pybreaker.STATE_CLOSED, 0, None, 0, 0, (), 0.0)


#: Redis operations that must fail in a row before an origin switches to its
#: local fallback (each counted only if it started after the previous one
#: failed, so one stall seen by many threads at once counts once).
FAILURES_TO_FALLBACK = 3

# How far a trial lease read from Redis may reach into the local fallback when no
# session has said how long its trials hold their places (OriginBreaker's default).
_LONGEST_LEASE = 60.0

# The most failures or successful trials carried from Redis into the local counters.
_MOST_COUNTED = 10_000


class RedisState(LocalState):
    """One origin's breaker state in Redis, with a local fallback.

    What was last known of the shared state (the last read, plus the changes
    this process made since) is kept: a Redis operation that fails answers
    from it, until ``failures_to_fallback`` operations failed in a row; then
    the local fallback starts from it and is used for ``retry_after`` seconds.
    """

    def __init__(self, client: Any, key: str, cache_ttl: float, retry_after: float,
                 failures_to_fallback: int = FAILURES_TO_FALLBACK) -> None:
        super().__init__()  # the fallback: this process's own state
        self._client = client
        self._key = key
        self._cache_ttl = cache_ttl
        self._retry_after = retry_after
        self._failures_to_fallback = max(1, int(failures_to_fallback))
        self._record_failure = client.register_script(_RECORD_FAILURE)
        self._claim_trial = client.register_script(_CLAIM_TRIAL)
        self._finish_trial = client.register_script(_FINISH_TRIAL)
        self._set_opened_at = client.register_script(_SET_OPENED_AT)
        # Trial tokens name this process: tokens only need to differ across processes.
        self._token_prefix = f"{os.getpid()}-{os.urandom(4).hex()}-"
        self._snapshot = _CLOSED  # what is known of the shared state: last read, plus our changes
        self._fetched = -1e9  # monotonic time of the last read
        self._failures = 0  # Redis operations failed in a row
        self._failed_at = 0.0  # monotonic: when the last of them failed
        self._down_until = 0.0  # monotonic: use local state until then
        self._longest_lease = _LONGEST_LEASE
        self._lock = threading.Lock()

    # -- falling back --
    def _shared(self, operation: Callable[[], T], fallback: Callable[[], T], known: Callable[[], T]) -> T:
        """Run ``operation`` against Redis. If it fails: ``known`` (answered from
        what was last known of the shared state) while fewer than
        ``failures_to_fallback`` operations failed in a row, else ``fallback``
        (the local state), which is then used without trying Redis for ``retry_after``."""
        down_until = self._down_until
        if down_until:
            now = time.monotonic()
            if now < down_until:
                return fallback()
            with self._lock:  # the period is over: one call tries Redis, the others stay local
                probing = self._down_until == down_until
                if probing:
                    self._down_until = now + self._retry_after
            if not probing:
                return fallback()
        started = time.monotonic()
        try:
            result = operation()
        except Exception as error:  # redis errors, timeouts, garbage: never the caller's problem
            return self._failed(error, started, fallback, known)
        if self._failures or self._down_until:
            with self._lock:
                back = bool(self._down_until)
                self._failures, self._down_until = 0, 0.0
            if back:
                _LOG.warning("shared breaker state for %s is back", self._key, extra={"origin": self._key})
        return result

    def _failed(self, error: Exception, started: float, fallback: Callable[[], T], known: Callable[[], T]) -> T:
        with self._lock:
            now = time.monotonic()
            # An operation that started before the last failure was caught in the same
            # stall (or outage): it is not one more failure in a row.
            if started >= self._failed_at:
                self._failures += 1
                self._failed_at = now
            failures, falling = self._failures, False
            if self._down_until:  # the retry after a fallback period failed: another period
                self._down_until = now + self._retry_after
            elif failures >= self._failures_to_fallback:
                self._start_fallback()
                self._down_until = now + self._retry_after  # set last: the local state is ready
                falling = True
            down = bool(self._down_until)
        if falling:
            _LOG.warning("shared breaker state for %s unavailable (%s, %d failures in a row); using local "
                         "state, starting %s", self._key, error, failures, self._snapshot.state,
                         extra={"origin": self._key})
        if down:
            return fallback()
        _LOG.debug("shared breaker state for %s: Redis failed (%s), %d of %d in a row before the local "
                   "fallback; using the last known state", self._key, error, failures,
                   self._failures_to_fallback, extra={"origin": self._key})
        return known()

    def _start_fallback(self) -> None:
        """Holding the lock: set the local state to what was last known of the shared
        one, on this process's clocks (opened_at on the wall clock, as pybreaker's;
        trial leases on the monotonic clock, as LocalState's)."""
        known = self._snapshot
        now = time.time() + known.offset  # Redis's clock
        clock = time.monotonic()
        memory = pybreaker.CircuitMemoryStorage
        if known.state != pybreaker.STATE_CLOSED or known.opened_at is not None:
            # A future opened_at (a peer's clock ahead) starts now, as the claim script would have it.
            opened_at = min(known.opened_at if known.opened_at is not None else now, now)
            memory.opened_at.fset(self, datetime.fromtimestamp(opened_at - known.offset, timezone.utc))  # type: ignore[attr-defined]
        self._reopens = known.reopens  # so the open period is the one the shared breaker has
        memory.reset_counter(self)
        for _ in range(min(known.failures, _MOST_COUNTED)):
            memory.increment_counter(self)
        memory.reset_success_counter(self)
        for _ in range(min(known.successes, _MOST_COUNTED)):
            memory.increment_success_counter(self)
        # Half-open stays half-open, its places held by the trials known to be out (in
        # other processes, or this one: its own report back to the local state): they
        # keep their places until their leases end, as in Redis, and only then does this
        # process send trials of its own. As open, it would wait a whole open period more
        # for nothing; as half-open with no place held, it would probe at once, beside
        # the trials already out.
        self._trials = {token: clock + min(until - now, self._longest_lease)
                        for token, until in known.leases if until > now}
        memory.state.fset(self, known.state)  # type: ignore[attr-defined]  # last: the rest is in place
        self._forget()  # when Redis is back, read it afresh

    def _redis_now(self) -> float:
        """Redis's clock, estimated from this host's and the last known offset."""
        return time.time() + self._snapshot.offset

    def _note(self, **changes: Any) -> None:
        """A change this process made to the shared state (whether Redis took it or not)."""
        self._snapshot = self._snapshot._replace(**changes)

    def _opened(self, reopens: int) -> None:
        self._note(state=pybreaker.STATE_OPEN, opened_at=self._redis_now(), failures=0, successes=0,
                   reopens=reopens, leases=())

    def _closed(self) -> None:
        self._note(state=pybreaker.STATE_CLOSED, failures=0, reopens=0, successes=0, leases=())

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
            tuple((name[6:], float(until)) for name, until in fields.items() if name.startswith("trial:")),
            offset,
        )
        self._snapshot, self._fetched = snapshot, now
        return snapshot

    def _forget(self) -> None:
        self._fetched = -1e9

    def _read(self, view: Callable[[_Snapshot], T], fallback: Callable[[], T]) -> T:
        """``view`` of the shared state: read (or cached), else as last known, else the local value."""
        if not self._down_until and time.monotonic() - self._fetched < self._cache_ttl:
            return view(self._snapshot)  # the common case, kept cheap: a fresh enough read
        return self._shared(lambda: view(self._fetch()), fallback, lambda: view(self._snapshot))

    def _store(self, write: Callable[[], None], fallback: Callable[[], None], note: Callable[[], None]) -> None:
        """A write to Redis, noted in what is known of the shared state whether Redis took it or not."""
        def operation() -> None:
            write()
            self._forget()
            note()

        self._shared(operation, fallback, note)

    # -- pybreaker's storage interface --
    @property
    def state(self) -> str:
        return self._read(lambda known: known.state, lambda: cast(str, LocalState.state.fget(self)))  # type: ignore[attr-defined]

    @state.setter
    def state(self, state: str) -> None:
        def note() -> None:
            if state == pybreaker.STATE_OPEN:
                self._note(state=state, failures=0, successes=0, leases=())
            elif state == pybreaker.STATE_CLOSED:
                self._closed()
            else:
                self._note(state=state)

        self._store(lambda: self._client.hset(self._key, "state", state),
                    lambda: LocalState.state.fset(self, state), note)  # type: ignore[attr-defined]

    @property
    def counter(self) -> int:
        return self._read(lambda known: known.failures, lambda: cast(int, LocalState.counter.fget(self)))  # type: ignore[attr-defined]

    def increment_counter(self) -> None:
        self._store(lambda: self._client.hincrby(self._key, "failures", 1), super().increment_counter,
                    lambda: self._note(failures=self._snapshot.failures + 1))

    def reset_counter(self) -> None:
        self._store(lambda: self._client.hset(self._key, "failures", 0), super().reset_counter,
                    lambda: self._note(failures=0))

    def reset_success_counter(self) -> None:
        # pybreaker resets the success counter whenever a breaker object notices
        # a state change, including one another process made: that would wipe
        # the shared count of successful trials. The Lua scripts reset it at the
        # real transitions instead; only the local fallback's copy is reset here.
        LocalState.reset_success_counter(self)

    @property
    def opened_at(self) -> Optional[datetime]:
        """When the breaker last opened, on this host's clock (as pybreaker compares it)."""
        def view(known: _Snapshot) -> Optional[datetime]:
            if known.opened_at is None:
                return None
            return datetime.fromtimestamp(known.opened_at - known.offset, timezone.utc)

        return self._read(view, lambda: cast(Optional[datetime], LocalState.opened_at.fget(self)))  # type: ignore[attr-defined]

    @opened_at.setter
    def opened_at(self, when: datetime) -> None:
        # Stored on Redis's clock: as long before Redis's now as ``when`` is before
        # this host's (pybreaker's open() passes its now: an age of microseconds).
        age = time.time() - when.timestamp()
        self._store(lambda: self._set_opened_at(keys=[self._key], args=[repr(age)]),
                    lambda: LocalState.opened_at.fset(self, when),  # type: ignore[attr-defined]
                    lambda: self._note(opened_at=self._redis_now() - age))

    # -- the trials and failure counting, atomic across processes --
    @property
    def reopens(self) -> int:
        return self._read(lambda known: known.reopens, lambda: self._reopens)

    def refusal(self, config: CircuitBreakerConfig, lease: Optional[float] = None) -> Optional[float]:
        if lease is not None:
            self._longest_lease = lease
        return self._read(lambda known: _refusal(known, config, lease),
                          lambda: LocalState.refusal(self, config, lease))

    def claim_trial(self, config: CircuitBreakerConfig, lease: float) -> Union[str, float, None]:
        self._longest_lease = lease

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
                known = self._snapshot
                held = known.leases if known.state == pybreaker.STATE_HALF_OPEN else ()
                self._note(state=pybreaker.STATE_HALF_OPEN, leases=held + ((token, self._redis_now() + lease),),
                           successes=known.successes if held else 0)
                return token
            seconds = float(left)
            return None if seconds < 0 else seconds

        def known() -> Union[str, float, None]:
            # Only Redis hands out trial places: none is claimed on a guess. Until
            # Redis answers, or the local fallback takes over, a due trial waits.
            last = self._snapshot
            if last.state == pybreaker.STATE_CLOSED:
                return None
            left = _refusal(last, config, lease)
            return 0.0 if left is None else left

        return self._shared(claim, lambda: LocalState.claim_trial(self, config, lease), known)

    def finish_trial(self, token: str, failed: Optional[bool], config: CircuitBreakerConfig) -> Optional[str]:
        if not token.startswith(self._token_prefix):  # claimed from the local fallback
            return LocalState.finish_trial(self, token, failed, config)

        def finish() -> Optional[str]:
            verdict = int(self._finish_trial(keys=[self._key], args=[
                token, "" if failed is None else str(int(failed)),
                config.permitted_calls_in_half_open,
            ]))
            self._forget()
            decided = {1: "open", 2: "close"}.get(verdict)
            self._finished(token, failed, decided)
            return decided

        def known() -> Optional[str]:
            # The verdict the script would give on what is known: kept here, and
            # the local fallback starts from it. In Redis the lease runs out.
            last = self._snapshot
            decided = None
            if failed is not None and last.state == pybreaker.STATE_HALF_OPEN \
                    and any(held == token for held, _ in last.leases):
                if failed:
                    decided = "open"
                elif last.successes + 1 >= config.permitted_calls_in_half_open:
                    decided = "close"
            self._finished(token, failed, decided)
            return decided

        # A trial of the shared state that ends on the fallback reports to the local
        # state, which holds its place if it was known when the fallback started.
        return self._shared(finish, lambda: LocalState.finish_trial(self, token, failed, config), known)

    def _finished(self, token: str, failed: Optional[bool], verdict: Optional[str]) -> None:
        last = self._snapshot
        if verdict == "open":
            self._opened(last.reopens + 1)
        elif verdict == "close":
            self._closed()
        else:
            leases = tuple(lease for lease in last.leases if lease[0] != token)
            succeeded = failed is False and len(leases) < len(last.leases)
            self._note(leases=leases, successes=last.successes + succeeded)

    def record_failure(self, threshold: int) -> bool:
        def count() -> bool:
            opened = bool(int(self._record_failure(keys=[self._key], args=[threshold])))
            self._forget()
            if opened:
                self._opened(self._snapshot.reopens)
            elif self._snapshot.state == pybreaker.STATE_CLOSED:
                self._note(failures=self._snapshot.failures + 1)
            return opened

        def known() -> bool:
            # Redis did not answer: the failure still counts, on what is known (it is
            # not sent again later: a timed-out script usually ran, once Redis got to it).
            last = self._snapshot
            if last.state != pybreaker.STATE_CLOSED:
                return False
            if last.failures + 1 >= threshold:
                self._opened(last.reopens)
                return True
            self._note(failures=last.failures + 1)
            return False

        return self._shared(count, lambda: LocalState.record_failure(self, threshold), known)


def _refusal(known: _Snapshot, config: CircuitBreakerConfig, lease: Optional[float]) -> Optional[float]:
    """:meth:`LocalState.refusal` on a snapshot of the shared state.

    A time stamped by a clock ahead of Redis's (see the module docstring) is not
    refused on here: a cached read cannot repair it, and refusing on it would
    keep the caller from the claim script that does."""
    if known.state == pybreaker.STATE_CLOSED:
        return None
    now = time.time() + known.offset  # Redis's clock
    if known.state == pybreaker.STATE_HALF_OPEN:
        if lease is not None and any(until > now + lease for _, until in known.leases):
            return None
        live = sum(until > now for _, until in known.leases)
        return 0.0 if live + known.successes >= config.permitted_calls_in_half_open else None
    opened_at = known.opened_at or 0.0
    if opened_at > now:
        return None
    open_for = config.open_for(known.reopens)
    left = min(opened_at + open_for - now, open_for)
    return left if left > 0 else None
