"""What one session uses for each origin it calls: a :class:`Route`.

A route joins the shared part — the dependency's compartment, from the
registry (:mod:`.compartments`) — with the session's own part: the config its
session gives that dependency (timeouts, attempts, statuses), and the retry
loop built from it. Routes are made on first use and cached per origin, so
the hot path is one dictionary read and a flag check, as the per-session
origin table it replaced was.
"""
from __future__ import annotations

import logging
import threading
import weakref
from typing import Dict, FrozenSet, Iterator, List, Tuple

from .compartments import Compartment, Registry, policy_key
from .config import ClientConfig
from .events import Events
from .origins import origin_of
from .retry import RetryLoop

__all__ = ["Route", "Routes"]


#: Per config object (by id, while it lives): its policy key and its retry loop.
#: Both are pure functions of the config, and a session made per task would
#: otherwise pay for them on its first call (the key's digest is ~80 us).
_POLICIES: Dict[int, Tuple["weakref.ref[ClientConfig]", str, RetryLoop]] = {}
_POLICIES_LOCK = threading.Lock()


def _policy(config: ClientConfig) -> Tuple[str, RetryLoop]:
    """``config``'s policy key and retry loop, computed once per config object
    (a config is read when a session first uses it, as everywhere)."""
    known = _POLICIES.get(id(config))
    if known is not None and known[0]() is config:
        return known[1], known[2]
    made = (policy_key(config), RetryLoop(config.retry))
    key = id(config)

    def forget(_: "weakref.ref[ClientConfig]") -> None:
        _POLICIES.pop(key, None)

    with _POLICIES_LOCK:
        _POLICIES[key] = (weakref.ref(config, forget), *made)
    return made


class Route:
    """One origin as one session calls it."""

    __slots__ = ("compartment", "config", "retry", "failure_statuses", "retry_statuses", "default_timeout")

    def __init__(self, compartment: Compartment, config: ClientConfig, retry: RetryLoop) -> None:
        self.compartment = compartment
        self.config = config
        self.retry = retry
        self.failure_statuses: FrozenSet[int] = config.circuit_breaker.failure_statuses
        self.retry_statuses: FrozenSet[int] = config.retry.retry_on_status
        self.default_timeout: Tuple[float, float] = (config.timeout.connect, config.timeout.read)


class Routes:
    """A session's routes by origin, made on first use; thread-safe."""

    #: Routes cached per session before the cache is emptied (a crawler's session).
    max_routes = 512
    #: URLs remembered with their route before that cache is emptied.
    max_urls = 256

    def __init__(self, config: ClientConfig, registry: Registry, events: Events, logger: logging.Logger) -> None:
        self.config = config
        self.registry = registry
        self._events = events
        self._logger = logger
        self._routes: Dict[str, Route] = {}
        self._by_url: Dict[str, Route] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> Route:
        """The route of ``url``'s origin."""
        route = self._by_url.get(url)  # a call asks three times (start, send, hop): once parsed
        if route is not None and route.compartment.live:
            return route
        origin = origin_of(url)
        route = self._routes.get(origin)
        if route is None or not route.compartment.live:
            route = self._make(origin)
        by_url = self._by_url
        if len(by_url) >= self.max_urls:
            self._by_url = by_url = {}
        by_url[url] = route
        return route

    def compartment(self, url: str) -> Compartment:
        """The compartment of ``url``'s origin."""
        return self.get(url).compartment

    def _make(self, origin: str) -> Route:
        dependency, config = self.config.policy_for(origin)
        policy, retry = _policy(config)
        compartment = self.registry.compartment(dependency, config, policy, self._logger)
        compartment.audience.join(self._events)
        route = Route(compartment, config, retry)
        with self._lock:
            if len(self._routes) >= self.max_routes:
                self._routes = {}
            self._routes[origin] = route
        return route

    def compartments(self) -> List[Compartment]:
        """The live compartments this session has used, each once."""
        seen: Dict[int, Compartment] = {}
        for route in list(self._routes.values()):
            if route.compartment.live:
                seen.setdefault(id(route.compartment), route.compartment)
        return list(seen.values())

    def __iter__(self) -> Iterator[Compartment]:
        return iter(self.compartments())
