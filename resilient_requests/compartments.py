"""Compartments: what the calls to one dependency share, process-wide.

A :class:`Compartment` holds one dependency's circuit breaker, bulkhead, retry
budget, adaptive throttle, rate limiter, latency window and counters. A dependency is an
origin (``scheme://host:port``) or a name for a group of origins
(:attr:`ClientConfig.dependencies <resilient_requests.ClientConfig>`).

The :class:`Registry` keeps one compartment per dependency *and policy*, as
Resilience4j's registries keep one breaker per name and Envoy one set of
circuit breakers per upstream cluster. Every session finds its compartments
there: a session made per task, per request or per thread shares the breaker
and the bulkhead of every other session that calls the same dependency with
the same policy, and so does the module-level API. One slow dependency fills
its own bulkhead, never another's.

*Same policy* means the same settings a compartment's state is built from
(:func:`policy_key`): the ``circuit_breaker``, ``bulkhead``, ``throttle``,
``hedge`` and ``rate_limit`` sections and retry's budget fields. Timeouts and attempts are not
part of it: they shape one call, not the shared state (a half-open trial's
lease, which the timeouts imply when ``trial_timeout`` is unset, is that of the
session that made the compartment). Sessions that give one dependency different policies get
separate compartments, each behaving exactly as its session asked: a session
never changes what another was configured to get, and a stricter breaker
asked for is a stricter breaker had. The price is that the two do not pool
what they learn; give both the same policy to share.

The registry is bounded (idle compartments with a closed breaker are
forgotten first, never an open one), starts empty in a forked child, and
:meth:`Registry.reset` (``resilient_requests.reset()``) forgets everything —
for tests and for an operator's admin view. Calls in flight finish on the
compartments they hold; the next call gets a fresh one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import weakref
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Set, Tuple

from . import forking
from .breaker import BreakerEvents, LocalState, OriginBreaker, TransitionLog
from .budget import RetryBudget
from .bulkhead import Bulkhead
from .config import ClientConfig
from .events import Events
from .latency import LatencyWindow
from .ratelimit import RateLimiter
from .throttle import AdaptiveThrottle

if TYPE_CHECKING:
    from .shared_limit import SharedLimit

__all__ = ["Compartment", "Registry", "REGISTRY", "COUNTERS", "policy_key", "breaker_key"]

#: The counters of :meth:`Compartment.snapshot`, in order.
COUNTERS = ("calls", "successes", "failures", "retries", "short_circuited", "rejected", "throttled", "hedges",
            "rate_limited", "not_sent")


def _lease(config: ClientConfig) -> float:
    """How long a half-open trial holds its place: as long as one attempt can last."""
    timeout = config.timeout
    return timeout.total or (timeout.connect + timeout.write + timeout.read)


def _plain(value: Any) -> Any:
    """``value`` as JSON-able data whose text is the same in every process."""
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset, list, tuple)):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return type(value).__name__  # a redis.Redis client passed as storage


def _digest(data: Any) -> str:
    text = json.dumps(_plain(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def breaker_key(config: ClientConfig) -> str:
    """A digest of what decides a breaker's behaviour (not where it is stored):
    the part of the policy the Redis key carries, so processes share a breaker
    exactly when they would share it in one process."""
    breaker = {k: v for k, v in asdict(config.circuit_breaker).items()
               if k not in ("storage", "storage_timeout", "state_cache_ttl", "storage_retry")}
    return _digest({"breaker": breaker})


def policy_key(config: ClientConfig) -> str:
    """The identity of a compartment's policy: equal for equal settings, in any process."""
    retry = config.retry
    return _digest({
        "breaker": config.circuit_breaker, "bulkhead": config.bulkhead,
        "throttle": config.throttle, "hedge": config.hedge, "rate_limit": config.rate_limit,
        "budget": [retry.budget_ratio, retry.budget_floor, retry.budget_window],
    })


class _Audience:
    """The sessions' event hubs a compartment's breaker reports to. Each
    listener hears a change once, however many of its sessions share the
    compartment; a closed session drops out with its hub (weakly held)."""

    def __init__(self) -> None:
        self._hubs: "weakref.WeakSet[Events]" = weakref.WeakSet()

    def join(self, hub: Events) -> None:
        self._hubs.add(hub)

    @property
    def listeners(self) -> Tuple[Any, ...]:
        unique: Dict[int, Any] = {}
        for hub in list(self._hubs):
            for listener in hub.listeners:
                unique.setdefault(id(listener), listener)
        return tuple(unique.values())

    def emit(self, hook: str, event: Any) -> None:
        hubs = list(self._hubs)
        if not hubs:
            return
        seen: Set[int] = set()
        for hub in hubs:
            fresh = tuple(x for x in hub.listeners if id(x) not in seen)
            seen.update(id(x) for x in fresh)
            if fresh:
                hub.emit_to(fresh, hook, event)


class Compartment:
    """One dependency under one policy: its breaker, bulkhead, budget,
    throttle, latency window and counters. ``origin`` names the dependency
    (an origin, or a group's name) in events, logs and ``stats()``."""

    __slots__ = ("origin", "policy", "config", "breaker", "bulkhead", "budget", "throttle", "latency",
                 "limiter", "audience", "used", "live", "_counts", "_lock")

    def __init__(self, dependency: str, policy: str, config: ClientConfig, logger: logging.Logger,
                 storage: Optional[LocalState] = None, shared_limit: Optional["SharedLimit"] = None) -> None:
        self.origin = dependency
        self.policy = policy
        self.config = config
        self.audience = _Audience()
        self.breaker = OriginBreaker(dependency, config.circuit_breaker,
                                     (TransitionLog(logger), BreakerEvents(self.audience)),  # type: ignore[arg-type]
                                     storage, trial_timeout=_lease(config))
        self.bulkhead = Bulkhead(config.bulkhead)
        retry = config.retry
        self.budget = None if retry.budget_ratio is None else \
            RetryBudget(retry.budget_ratio, retry.budget_floor, retry.budget_window)
        throttling = config.throttle
        self.throttle = AdaptiveThrottle(throttling.k, throttling.window) if throttling.enabled else None
        hedge = config.hedge
        # kept only to hedge at a latency percentile
        self.latency = LatencyWindow(hedge.percentile, hedge.min_samples) \
            if hedge.enabled and hedge.delay is None else None
        self.limiter = RateLimiter(config.rate_limit, shared_limit) if config.rate_limit.enabled else None
        self.used = time.monotonic()  # last looked up: the least recently used idle ones go first
        self.live = True  # False once the registry forgot it: sessions look it up again
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()

    def count(self, *names: str) -> None:
        """Add one to each named counter."""
        with self._lock:
            counts = self._counts
            for name in names:
                counts[name] += 1

    def snapshot(self) -> Dict[str, object]:
        """The counters, the breaker's state and open period, and the bulkhead, as plain values."""
        with self._lock:
            counts: Dict[str, object] = dict(self._counts)
        counts["breaker_state"] = self.breaker.state.value
        counts["breaker_open_for"] = self.breaker.open_for
        counts["bulkhead_in_use"] = self.bulkhead.in_use
        counts["bulkhead_capacity"] = self.bulkhead.capacity
        counts["policy"] = self.policy
        if self.limiter is not None:
            counts["rate_limit"] = self.limiter.snapshot()
        return counts


class Registry:
    """Compartments by (dependency, policy), made on first use; thread-safe.

    :data:`REGISTRY` is the process's; a session given ``registry=Registry()``
    (or ``isolated=True``) keeps private state instead.
    """

    #: The bound on compartments kept; a quarter is swept at once when exceeded.
    max_compartments = 512

    def __init__(self) -> None:
        self._start()
        forking.track(self)

    def _start(self) -> None:
        self._compartments: Dict[Tuple[str, str], Compartment] = {}
        self._lock = threading.Lock()
        self._clients: Dict[Tuple[str, float], Any] = {}  # the Redis clients this registry made

    def compartment(self, dependency: str, config: ClientConfig, policy: str,
                    logger: logging.Logger) -> Compartment:
        """The compartment of ``dependency`` under ``config`` (whose :func:`policy_key` is ``policy``)."""
        key = (dependency, policy)
        found = self._compartments.get(key)
        if found is None:
            with self._lock:
                found = self._compartments.get(key)
                if found is None:
                    if len(self._compartments) >= self.max_compartments:
                        self._sweep()
                    found = Compartment(dependency, policy, config, logger, self._storage(dependency, config),
                                        self._shared_limit(dependency, config, policy))
                    self._compartments[key] = found
        found.used = time.monotonic()
        return found

    def _sweep(self) -> None:
        """Holding the lock: forget the least recently used idle compartments."""
        from .breaker import CircuitState

        idle = sorted((c for c in self._compartments.values()
                       if c.bulkhead.in_use == 0 and c.breaker.state is CircuitState.CLOSED),
                      key=lambda c: c.used)
        for gone in idle[: max(1, self.max_compartments // 4)]:
            gone.live = False
            del self._compartments[(gone.origin, gone.policy)]

    def _client(self, config: ClientConfig) -> Any:
        """The Redis client of the breaker's ``storage`` (made once per URL)."""
        from .shared_state import connect

        breaker = config.circuit_breaker
        storage = breaker.storage
        if not isinstance(storage, str):
            return storage
        client = self._clients.get((storage, breaker.storage_timeout))
        if client is None:
            client = self._clients[(storage, breaker.storage_timeout)] = connect(storage, breaker.storage_timeout)
        return client

    def _shared_limit(self, dependency: str, config: ClientConfig, policy: str) -> Optional["SharedLimit"]:
        """The Redis side of the dependency's rate limit, if it is shared."""
        if not (config.rate_limit.enabled and config.rate_limit.shared and config.circuit_breaker.storage):
            return None
        from .shared_limit import SharedLimit

        breaker = config.circuit_breaker
        return SharedLimit(self._client(config), f"{breaker.namespace}:ratelimit:{dependency}:{policy}",
                           breaker.storage_retry)

    def _storage(self, dependency: str, config: ClientConfig) -> Optional[LocalState]:
        """Shared breaker state for ``dependency`` if the config names a Redis storage."""
        breaker = config.circuit_breaker
        if breaker.storage is None:
            return None
        from .shared_state import RedisState

        client = self._client(config)
        return RedisState(client, f"{breaker.namespace}:breaker:{dependency}:{breaker_key(config)}",
                          breaker.state_cache_ttl, breaker.storage_retry)

    def compartments(self) -> List[Compartment]:
        """Every compartment kept now."""
        return list(self._compartments.values())

    def __iter__(self) -> Iterator[Compartment]:
        return iter(self.compartments())

    def __len__(self) -> int:
        return len(self._compartments)

    def reset(self, dependency: Optional[str] = None) -> None:
        """Forget every compartment (breakers closed, bulkheads empty, budgets
        full from the next call on), or only ``dependency``'s (an origin URL or
        a group name). Calls in flight finish on what they hold. A full reset
        also closes the Redis clients the registry made (made again on use)."""
        if dependency is not None and dependency.lower().startswith(("http://", "https://")):
            from .origins import origin_of

            dependency = origin_of(dependency)
        with self._lock:
            for key in list(self._compartments):
                if dependency is None or key[0] == dependency:
                    self._compartments.pop(key).live = False
            clients = list(self._clients.values()) if dependency is None else []
            if dependency is None:
                self._clients = {}
        for client in clients:
            client.close()

    def stats(self) -> List[Dict[str, object]]:
        """Every compartment: its dependency, policy, breaker, bulkhead and counters."""
        return [{"dependency": c.origin, **c.snapshot()} for c in self.compartments()]

    def _after_fork(self) -> None:
        """In a forked child: start empty (the parent's locks, counters and
        Redis connections are the parent's; redis-py drops its own)."""
        for compartment in self._compartments.values():
            compartment.live = False
        self._start()


#: The process-wide registry.
REGISTRY = Registry()
