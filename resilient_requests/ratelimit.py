"""A dependency's rate limit, kept by the client: permits, a shared cool-down, a learnt rate.

One :class:`RateLimiter` per compartment, so every thread and session calling
a dependency draws on the same permits. Three parts, each optional
(:class:`~resilient_requests.RateLimitConfig`):

* **Permits** (``rate`` per ``per`` seconds, bursts of ``burst``): a token
  bucket. A caller that finds none free *reserves* the next one and sleeps
  until it is due (bounded by ``max_wait`` and the call's deadline), so waiting
  callers are served in order and the dependency sees an even rate; one that
  would wait longer takes nothing and is refused with the time a permit would
  be due (``RateLimitedError.retry_after``).
* **Cool-down** (``cooldown=True``): a 429 or 503 carrying ``Retry-After``, or a
  response saying no requests are left (``RateLimit-Remaining: 0`` /
  ``X-RateLimit-Remaining: 0`` with a reset), pauses the whole dependency until
  then — every thread waits or is refused instead of collecting 429s of its own,
  as GitHub's guidance asks. When the pause ends, one call goes alone; the
  others follow once it got an answer that is not another refusal.
* **Adaptive** (``adaptive=True``, like the AWS SDKs' adaptive retry mode):
  without a configured rate the limiter learns one. Each throttling response
  cuts the rate to 70% of what was being sent (at least ``min_rate``); each
  success grows it by 2%. Until the first throttling response nothing is limited.

We write the bucket ourselves rather than use pyrate-limiter: a rate that
changes at run time (adaptive mode, a server's ``RateLimit`` headers), a
reservation that is given back when a call is refused, and the pause are a few
lines on a bucket of our own, and would be a fight with a library whose rates
are fixed when it is built.

With Redis storage (``shared=True``) the cool-down and the permits live in
Redis (:mod:`.shared_state`), so all workers together keep one limit; while Redis is
unreachable each process falls back to ``fallback_share`` of the rate locally.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Deque, Dict, Mapping, Optional, Tuple

from .config import RateLimitConfig

if TYPE_CHECKING:
    from .shared_limit import SharedLimit

__all__ = ["RateLimiter", "throttling_pause", "DECREASE", "PLATEAU", "GROWTH"]

#: Adaptive mode: the share of the accepted rate kept after a throttling answer,
#: the share of that level grown back to in about two seconds, and the growth
#: per second beyond it (in the spirit of the AWS SDKs' CUBIC-based adaptive
#: mode, simpler: -20% at once, back to 97% of the level, then +0.5% a second).
DECREASE, PLATEAU, GROWTH = 0.8, 0.97, 1.005

#: Statuses that say "too many requests": a 429, or a 503 with Retry-After.
THROTTLING = frozenset({429, 503})


def _header_seconds(headers: Mapping[str, str], names: Tuple[str, ...]) -> Optional[float]:
    for name in names:
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(str(value).split(",")[0].strip())
        except ValueError:
            continue
    return None


def throttling_pause(status: int, headers: Mapping[str, str], retry_after: Optional[float]) -> Optional[float]:
    """Seconds the server asked every caller to hold off, or ``None``: a 429/503
    with ``Retry-After``; or no requests left in the current window
    (``RateLimit-Remaining``/``X-RateLimit-Remaining`` 0) until its reset
    (``RateLimit-Reset`` in seconds; ``X-RateLimit-Reset`` as seconds or, as
    GitHub sends it, an epoch time)."""
    if status in THROTTLING and retry_after is not None:
        return retry_after
    remaining = _header_seconds(headers, ("RateLimit-Remaining", "X-RateLimit-Remaining"))
    if remaining is None or remaining > 0:
        return None
    reset = _header_seconds(headers, ("RateLimit-Reset", "X-RateLimit-Reset"))
    if reset is None:
        return None
    if reset > 1e9:  # an epoch time (GitHub's x-ratelimit-reset)
        reset -= time.time()
    return max(0.0, reset)


class RateLimiter:
    """Permits, cool-down and learnt rate of one dependency in this process."""

    def __init__(self, config: RateLimitConfig, shared: Optional["SharedLimit"] = None) -> None:
        self.config = config
        self._shared = shared
        # Paced a little under the configured rate: exactly at it, every arrival
        # finds a server's window exactly full, and any jitter trips it (at
        # rate=50, one 429 a second; 2% under, none in most runs).
        self._ceiling = config.rate / config.per * (1.0 - config.margin) if config.rate is not None else None
        self._rate: Optional[float] = self._ceiling
        self._grown = time.monotonic()
        self._cut_at = 0.0  # when adaptive mode last cut the rate
        self._level = 0.0  # the rate sent when it did
        self._burst = float(config.burst if config.burst is not None else 1)
        self._tokens = self._burst
        self._stamp = time.monotonic()
        self._paused_until = 0.0
        self._probe: Optional[threading.Event] = None  # set while the first call after a pause is out
        self._probe_owner = 0  # the thread making that call
        self._sent: Deque[float] = deque(maxlen=512)  # recent permits
        self._accepted: Deque[float] = deque(maxlen=512)  # when answers that were not refusals were sent
        self._lock = threading.Lock()
        # Counters for stats(): permits taken, waits, seconds waited, refusals, pauses.
        self.permits = self.waits = self.refused = self.pauses = 0
        self.waited = 0.0

    @property
    def rate(self) -> Optional[float]:
        """Permits per second now (``None``: unlimited)."""
        return self._rate

    def paused_for(self) -> float:
        """Seconds the dependency stays paused (0 if not)."""
        return max(0.0, self._paused_until - time.monotonic())

    # -- taking a permit --
    def acquire(self, wait_limit: float) -> Optional[float]:
        """Take a permit, sleeping at most ``wait_limit`` seconds for it: ``None``
        when taken, else the seconds until one would be (nothing taken)."""
        shared = self._shared
        if shared is not None and shared.usable and self._probe is None and self._paused_until <= time.monotonic():
            answer = shared.take(self._rate, self._burst, wait_limit)
            if answer is not None:
                granted, wait = answer
                with self._lock:
                    if not granted:
                        self.refused += 1
                        return wait
                    self._count(time.monotonic() + wait, wait)
                if wait > 0.0:
                    time.sleep(wait)  # to the end of the shared pause, or until the permit is due
                return None
        deadline = time.monotonic() + wait_limit
        while True:
            gate: Optional[threading.Event] = None
            reserved: Optional[float] = None
            with self._lock:
                now = time.monotonic()
                if self._paused_until > now:
                    until = self._paused_until  # paused: wait for the end of it
                elif self._probe is not None:
                    gate, until = self._probe, now  # the lone call after a pause is out
                elif self._paused_until:
                    self._paused_until = 0.0  # the pause is over: this caller goes alone
                    self._probe = threading.Event()
                    self._probe_owner = threading.get_ident()
                    self._count(now, 0.0)
                    return None
                else:
                    reserved = self._from_bucket(now, deadline)
                    if reserved is None:
                        return None
                    if reserved < 0.0:
                        self.refused += 1
                        return -reserved
                    until = -1.0  # a permit is reserved: sleep until it is due
                if until > deadline or (gate is not None and now >= deadline):
                    self.refused += 1
                    return max(0.0, until - now)
            if reserved is not None:
                time.sleep(reserved)  # the permit reserved for us is due then
                if self._paused_until <= time.monotonic():
                    return None
                continue  # a pause began while we slept: it holds us too
            if gate is not None:
                gate.wait(max(0.0, deadline - time.monotonic()))
            else:
                time.sleep(max(0.0, until - time.monotonic()))

    def _from_bucket(self, now: float, deadline: float) -> Optional[float]:
        """Holding the lock: ``None`` if a permit was taken now; the seconds to
        sleep for one reserved now; or minus the seconds until one would be free,
        if that is past ``deadline`` (nothing reserved)."""
        rate = self._rate
        if rate is not None and self._shared is not None:
            rate *= self.config.fallback_share  # Redis is out of reach: this process's share
        if rate is None:
            self._count(now, 0.0)
            return None
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self._count(now, 0.0)
            return None
        wait = (1.0 - self._tokens) / rate
        if now + wait > deadline:
            return -wait
        self._tokens -= 1.0  # a reservation: the next permit is ours
        self._count(now + wait, wait)
        return wait

    def _count(self, sent_at: float, waited: float) -> None:
        self._sent.append(sent_at)
        self.permits += 1
        if waited > 0.0:
            self.waits += 1
            self.waited += waited

    def try_acquire(self) -> bool:
        """Take a permit only if one is free now (a hedge never waits)."""
        return self.acquire(0.0) is None

    # -- what the dependency answered --
    def answered(self, status: Optional[int], headers: Mapping[str, str], retry_after: Optional[float],
                 sent_at: float = 0.0) -> None:
        """An attempt ended with ``status`` (``None``: no response): pause on a
        throttling answer if cool-down is on, adapt the rate if adaptive, and
        once the lone call after a pause got an answer that is not another
        refusal, let the others go."""
        throttled = status == 429 or (status == 503 and retry_after is not None)
        pause = throttling_pause(status, headers, retry_after) if status is not None else None
        with self._lock:
            now = time.monotonic()
            shared_pause = None
            if pause is not None and self.config.cooldown:
                until = now + min(pause, self.config.max_pause)
                if until > self._paused_until:
                    self._paused_until = until
                    self.pauses += 1
                    shared_pause = until - now
            if status is not None and not throttled:
                self._accepted.append(sent_at)
            if self.config.adaptive and status is not None:
                self._adapt(now, throttled, sent_at, retry_after)
            probe = self._probe
            if probe is not None and self._probe_owner != threading.get_ident():
                probe = None  # another call, sent before the pause: not the one that goes alone
            if probe is not None:
                self._probe = None
            if probe is not None and self._rate is not None:
                self._tokens = min(self._tokens, 1.0)  # ramp back from one permit, not a burst
                self._stamp = now
        if probe is not None:
            probe.set()  # the others go, or find the new pause
        if shared_pause is not None and self._shared is not None:
            self._shared.pause(shared_pause)

    def _adapt(self, now: float, throttled: bool, sent_at: float, retry_after: Optional[float]) -> None:
        """Holding the lock. A throttling answer to a call sent after the last
        cut settled (the calls sent at the old rate, or before the server's
        ``Retry-After`` passed, at least a second, say nothing new) cuts the rate
        to :data:`DECREASE` of the level the dependency *accepted* in the last
        second; the first cut from "unlimited" also holds the next permit for
        the ``Retry-After`` (the burst that found the limit filled the window).
        Answers that are not refusals grow the rate back to just under that
        level (:data:`PLATEAU`) in about two seconds, then probe above it by
        :data:`GROWTH` per second."""
        if throttled:
            if sent_at < self._cut_at:
                return
            accepted = self._measured(now)
            current = self._rate
            level = min(x for x in (accepted, current, self._ceiling) if x is not None) \
                if (accepted, current) != (None, None) else self.config.min_rate
            first = current is None
            self._level = level
            self._rate = max(self.config.min_rate, level * DECREASE)
            self._burst = 1.0
            self._tokens = min(self._tokens, 0.0)
            if first and retry_after:
                self._tokens -= retry_after * self._rate  # nothing more until the window has room
            self._stamp = self._grown = now
            self._cut_at = now + max(1.0, retry_after or 0.0)
        elif self._rate is not None:
            elapsed = max(0.0, now - self._grown)
            self._grown = now
            target = self._level * PLATEAU
            if self._rate < target:
                self._rate = min(target, self._rate + 0.1 * self._level * elapsed)
            else:
                self._rate *= GROWTH ** elapsed
            if self._ceiling is not None:
                self._rate = min(self._rate, self._ceiling)

    def _measured(self, now: float) -> Optional[float]:
        """Calls the dependency accepted (answers that were not refusals) that
        were sent in the last second (``None`` if none): over a whole second
        even if sending began later, so a burst right after start is not taken
        for a sustained rate (most APIs count over a window of a second or more;
        underestimating only errs on the gentle side)."""
        recent = sum(1 for t in self._accepted if now - 1.0 <= t <= now)
        return float(recent) if recent else None

    def snapshot(self) -> Dict[str, object]:
        """Counters and state for ``stats()``."""
        with self._lock:
            return {"rate": self._rate, "paused_for": self.paused_for(),
                    "permits": self.permits, "waits": self.waits, "waited": round(self.waited, 6),
                    "refused": self.refused, "pauses": self.pauses}
