"""Origins (scheme, host, port): the unit that breakers and retry budgets track."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, Iterator, Optional
from urllib.parse import urlsplit

from .breaker import BreakerEvents, CircuitState, LocalState, OriginBreaker, TransitionLog
from .budget import RetryBudget
from .config import ClientConfig
from .events import Events
from .latency import LatencyWindow
from .throttle import AdaptiveThrottle

__all__ = ["origin_of", "url_prefix", "loggable_url", "OriginState", "Origins", "COUNTERS"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGINS: Dict[str, str] = {}


def url_prefix(url: str) -> str:
    """``url`` up to its path: ``scheme://netloc``, a cheap key for per-origin caches."""
    start = url.find("//")
    slash = url.find("/", start + 2) if start >= 0 else -1
    return url[:slash] if slash > 0 else url


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url`` (cached per :func:`url_prefix`)."""
    key = url_prefix(url)
    origin = _ORIGINS.get(key)
    if origin is None:
        if len(_ORIGINS) >= 1024:
            _ORIGINS.clear()  # a crude bound; a process talks to few origins
        origin = _ORIGINS[key] = _parse_origin(key)
    return origin


def _host_and_port(url: str) -> "tuple[str, str, Optional[int]]":
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), host, port


def _parse_origin(url: str) -> str:
    scheme, host, port = _host_and_port(url)
    return f"{scheme}://{host}:{port or _DEFAULT_PORTS.get(scheme, 0)}"


def loggable_url(url: str) -> str:
    """``url`` without credentials, query string or fragment."""
    scheme, host, port = _host_and_port(url)
    path = urlsplit(url).path
    return f"{scheme}://{host}{f':{port}' if port else ''}{path}"


#: The counters of :meth:`OriginState.snapshot`, in order.
COUNTERS = ("calls", "successes", "failures", "retries", "short_circuited", "rejected", "throttled", "hedges")


class OriginState:
    """What one session keeps per origin: its breaker, its retry budget, its counters."""

    __slots__ = ("origin", "breaker", "budget", "throttle", "latency", "used", "_counts", "_lock")

    def __init__(self, origin: str, breaker: OriginBreaker, budget: Optional[RetryBudget],
                 throttle: Optional[AdaptiveThrottle] = None, latency: Optional[LatencyWindow] = None) -> None:
        self.origin = origin
        self.breaker = breaker
        self.budget = budget
        self.throttle = throttle
        self.latency = latency  # kept only to hedge at a latency percentile
        self.used = time.monotonic()  # last looked up: the least recently used idle states go first
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()

    def count(self, *names: str) -> None:
        """Add one to each named counter."""
        with self._lock:
            counts = self._counts
            for name in names:
                counts[name] += 1

    def snapshot(self) -> Dict[str, object]:
        """The counters, the breaker's state, and how long it stays open when
        it next opens (or now, while open), as plain values."""
        with self._lock:
            counts: Dict[str, object] = dict(self._counts)
        counts["breaker_state"] = self.breaker.state.value
        counts["breaker_open_for"] = self.breaker.open_for
        return counts


class Origins:
    """One :class:`OriginState` per origin, made on first use; thread-safe.

    At most :attr:`max_states` are kept: a webhook sender or a crawler talks to
    thousands of origins once each, and each state costs a few KB and a line
    in ``stats()``. Past the bound, the least recently used states whose
    breaker is closed are forgotten (a call in flight keeps its own); an open
    or half-open breaker is never forgotten.
    """

    #: The bound on states kept; a quarter of them is swept at once when exceeded.
    max_states = 512

    def __init__(self, config: ClientConfig, logger: logging.Logger, events: Events) -> None:
        self._config = config
        self._listeners = (TransitionLog(logger), BreakerEvents(events))
        self._states: Dict[str, OriginState] = {}
        self._lock = threading.Lock()
        self._redis: Any = None  # the shared-state client, made on first use

    def get(self, url: str) -> OriginState:
        """The state of ``url``'s origin."""
        origin = origin_of(url)
        state = self._states.get(origin)
        if state is None:
            with self._lock:
                state = self._states.get(origin)
                if state is None:
                    if len(self._states) >= self.max_states:
                        self._sweep()
                    state = self._states[origin] = self._make(origin)
        else:
            state.used = time.monotonic()
        return state

    def _sweep(self) -> None:
        """Holding the lock: forget the least recently used idle states, so a
        quarter of the room is free again."""
        idle = sorted((s for s in self._states.values() if s.breaker.state is CircuitState.CLOSED),
                      key=lambda s: s.used)
        for state in idle[: max(1, self.max_states // 4)]:
            del self._states[state.origin]

    def _make(self, origin: str) -> OriginState:
        retry = self._config.retry
        budget = None
        if retry.budget_ratio is not None:
            budget = RetryBudget(retry.budget_ratio, retry.budget_floor, retry.budget_window)
        timeout = self._config.timeout
        # A trial holds its place at most as long as one attempt can last.
        lease = timeout.total or (timeout.connect + timeout.write + timeout.read)
        breaker = OriginBreaker(origin, self._config.circuit_breaker, self._listeners,
                                self._storage(origin), trial_timeout=lease)
        throttling = self._config.throttle
        throttle = AdaptiveThrottle(throttling.k, throttling.window) if throttling.enabled else None
        hedge = self._config.hedge
        latency = None
        if hedge.enabled and hedge.delay is None:
            latency = LatencyWindow(hedge.percentile, hedge.min_samples)
        return OriginState(origin, breaker, budget, throttle, latency)

    def _storage(self, origin: str) -> Optional[LocalState]:
        """Shared state for ``origin`` if the config names a Redis storage."""
        config = self._config.circuit_breaker
        if config.storage is None:
            return None
        from .shared_state import RedisState, connect

        if self._redis is None:
            storage = config.storage
            self._redis = connect(storage, config.storage_timeout) if isinstance(storage, str) else storage
        return RedisState(self._redis, f"{config.namespace}:breaker:{origin}",
                          config.state_cache_ttl, config.storage_retry)

    def close(self) -> None:
        """Close the Redis client if this object made it (not one the caller passed in)."""
        client, self._redis = self._redis, None
        if client is not None and isinstance(self._config.circuit_breaker.storage, str):
            client.close()

    def __iter__(self) -> Iterator[OriginState]:
        return iter(list(self._states.values()))
