"""Prometheus metrics for a :class:`~resilient_requests.ResilientSession` (extra ``prometheus``).

::

    from resilient_requests.contrib.prometheus import PrometheusListener

    session.add_listener(PrometheusListener())             # prometheus_client.REGISTRY
    other.add_listener(PrometheusListener())               # same metrics, reused

The metrics (``resilient_requests`` is the default ``namespace``):

==========================================================  ==============================
``resilient_requests_calls_total``                          origin, method, outcome
``resilient_requests_call_duration_seconds`` (histogram)    origin, method, outcome
``resilient_requests_retries_total``                        origin, method
``resilient_requests_attempts_failed_total``                origin, method, reason
``resilient_requests_short_circuited_total``                origin, method
``resilient_requests_bulkhead_rejected_total``              origin, method
``resilient_requests_breaker_state`` (gauge)                origin
``resilient_requests_breaker_transitions_total``            origin, from_state, to_state
==========================================================  ==============================

* ``outcome`` is ``success``, ``failure``, ``short_circuited``, ``rejected`` or ``not_sent``
  (failed before any attempt for a reason of the caller's: an invalid URL, header or
  timeout). Every call a caller made is in ``calls_total`` once; the duration histogram
  holds the calls that got past the bulkhead (a call refused up front has no duration
  worth plotting).
* ``reason`` of a failed attempt is its status code (``"503"``) or the exception's class
  name (``"ReadTimeout"``): bounded, unlike the free-text reasons in the logs.
* ``breaker_state`` is one gauge per origin: ``0`` closed, ``1`` open, ``2`` half-open
  (:data:`BREAKER_STATES`). An origin appears with ``0`` on its first finished call and
  follows every transition after that; add the listener before the session's first
  call, or an origin whose breaker is already open shows ``0`` until it next changes.
  Sessions that share a registry share the gauge: two sessions calling one origin
  with separate breakers overwrite each other's value.
* ``short_circuited_total`` and the other counters match ``session.stats()``'s
  per-origin counters for the calls made while the listener was registered.

:class:`CompartmentCollector` reads the process-wide registry of compartments at each
scrape (``CompartmentCollector().register()``), one series per dependency and policy:

==========================================================  ==============================
``resilient_requests_compartment_breaker_state`` (gauge)    dependency, policy
``resilient_requests_compartment_bulkhead_in_use`` (gauge)  dependency, policy
``resilient_requests_compartment_bulkhead_capacity``        dependency, policy
``resilient_requests_compartment_rate_limit_permits``       dependency, policy (a counter)
``resilient_requests_compartment_rate_limit_waited_seconds`` dependency, policy (a counter)
``resilient_requests_compartment_rate_limit_refused``       dependency, policy (a counter)
``resilient_requests_compartment_rate_limit_paused_seconds`` dependency, policy (left of a pause)
``resilient_requests_compartment_rate_limit_rate``          dependency, policy (permits/s; NaN: unlimited)
==========================================================  ==============================

The ``rate_limit`` series appear for dependencies with a rate limit.

It needs no listener and shows every session's compartments, including the state a
breaker already had before any listener was added.

Listeners for the same registry and namespace share one set of metrics, so adding a
``PrometheusListener`` to several sessions (or building one per app in tests) never
registers a name twice. A different ``buckets`` for an existing set, or a name that
something else already registered, raises ``ValueError`` saying so.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any, Dict, Optional, Sequence, Set, Tuple

from ..compartments import REGISTRY, Registry
from ..events import (
    AttemptFailed,
    BreakerStateChanged,
    BulkheadRejected,
    CallFinished,
    CallShortCircuited,
    Listener,
    RetryScheduled,
)
from ._http import BREAKER_STATES, missing_extra

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
except ImportError as _error:
    raise missing_extra(__name__, "prometheus-client", "prometheus", _error) from _error

__all__ = ["PrometheusListener", "CompartmentCollector", "BREAKER_STATES", "DEFAULT_BUCKETS"]


#: Histogram buckets for the call duration, in seconds: prometheus_client's defaults,
#: which span a fast microservice (5 ms) to a slow batch endpoint (10 s).
DEFAULT_BUCKETS: Tuple[float, ...] = tuple(Histogram.DEFAULT_BUCKETS)


class _Metrics:
    """One namespace's metrics in one registry (shared by every listener that asks)."""

    def __init__(self, namespace: str, buckets: Tuple[float, ...]) -> None:
        self.namespace = namespace
        self.buckets = buckets
        call = ("origin", "method", "outcome")
        # Made unregistered (registry=None), then registered together by _metrics_for,
        # so a clash leaves nothing half-registered behind.
        self.calls = Counter("calls", "Calls made through ResilientSession, by outcome.",
                             call, namespace=namespace, registry=None)
        self.duration = Histogram("call_duration_seconds",
                                  "Duration of calls that got past the bulkhead, waits and retries included.",
                                  call, namespace=namespace, buckets=buckets, registry=None)
        self.retries = Counter("retries", "Retries scheduled after a failed attempt.",
                               ("origin", "method"), namespace=namespace, registry=None)
        self.attempts_failed = Counter("attempts_failed", "Failed attempts, by status code or exception class.",
                                       ("origin", "method", "reason"), namespace=namespace, registry=None)
        self.short_circuited = Counter("short_circuited", "Calls that failed fast on an open breaker.",
                                       ("origin", "method"), namespace=namespace, registry=None)
        self.bulkhead_rejected = Counter("bulkhead_rejected", "Calls refused for want of a bulkhead slot.",
                                         ("origin", "method"), namespace=namespace, registry=None)
        self.breaker_state = Gauge("breaker_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
                                   ("origin",), namespace=namespace, registry=None)
        self.breaker_transitions = Counter("breaker_transitions", "Circuit breaker state changes.",
                                           ("origin", "from_state", "to_state"), namespace=namespace,
                                           registry=None)

    def collectors(self) -> Tuple[Any, ...]:
        """Every metric, in registration order."""
        return (self.calls, self.duration, self.retries, self.attempts_failed, self.short_circuited,
                self.bulkhead_rejected, self.breaker_state, self.breaker_transitions)

    def register(self, registry: CollectorRegistry) -> None:
        """Register every metric in ``registry``, or none of them."""
        done = []
        try:
            for collector in self.collectors():
                registry.register(collector)
                done.append(collector)
        except ValueError as error:
            for collector in done:
                registry.unregister(collector)
            raise ValueError(
                f"cannot register the resilient_requests metrics with namespace {self.namespace!r}: "
                f"{error}. Another collector already uses that name; pass a different "
                f"namespace= or registry= to PrometheusListener."
            ) from error


_lock = threading.Lock()
_by_registry: "weakref.WeakKeyDictionary[CollectorRegistry, Dict[str, _Metrics]]" = weakref.WeakKeyDictionary()


def _metrics_for(registry: CollectorRegistry, namespace: str, buckets: Tuple[float, ...]) -> _Metrics:
    """The metrics of ``namespace`` in ``registry``, registered on first use."""
    with _lock:
        known = _by_registry.setdefault(registry, {})
        metrics = known.get(namespace)
        if metrics is None:
            metrics = _Metrics(namespace, buckets)
            metrics.register(registry)
            known[namespace] = metrics
        elif metrics.buckets != buckets:
            raise ValueError(
                f"the resilient_requests metrics with namespace {namespace!r} are already registered "
                f"in this registry with buckets {metrics.buckets}, not {buckets}; use the same "
                f"buckets, or a different namespace"
            )
        return metrics


def _failure_reason(event: AttemptFailed) -> str:
    if event.status is not None:
        return str(event.status)
    if event.exception is not None:
        return type(event.exception).__name__
    return "unknown"


class PrometheusListener(Listener):
    """A listener that records a session's calls as Prometheus metrics.

    ``registry`` defaults to ``prometheus_client.REGISTRY``; ``namespace`` prefixes
    every metric name; ``buckets`` are the call-duration histogram's upper bounds
    in seconds. See the module documentation for the metrics and their labels.
    Add it with ``session.add_listener(PrometheusListener())``; one listener may
    serve several sessions.
    """

    def __init__(self, registry: Optional[CollectorRegistry] = None, namespace: str = "resilient_requests",
                 buckets: Optional[Sequence[float]] = None) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ValueError(f"namespace must be a non-empty str, got {namespace!r}")
        self.registry: CollectorRegistry = prometheus_client.REGISTRY if registry is None else registry
        self.namespace = namespace
        chosen = DEFAULT_BUCKETS if buckets is None else tuple(float(b) for b in buckets)
        self._metrics = _metrics_for(self.registry, namespace, chosen)
        self._states_lock = threading.Lock()
        self._seen: Set[str] = set()  # origins whose breaker_state this listener has set

    def __repr__(self) -> str:
        return f"PrometheusListener(namespace={self.namespace!r})"

    def call_finished(self, event: CallFinished) -> None:
        """Count the call and observe its duration; first sighting of an origin sets its gauge to closed."""
        metrics = self._metrics
        metrics.calls.labels(event.origin, event.method, event.outcome).inc()
        metrics.duration.labels(event.origin, event.method, event.outcome).observe(event.elapsed)
        if event.outcome == "short_circuited":  # the breaker opened after the call started
            metrics.short_circuited.labels(event.origin, event.method).inc()
        if event.origin not in self._seen:
            # No transition seen since this listener was added: the breaker is still closed.
            self._set_state(event.origin, "closed", only_if_unseen=True)

    def call_short_circuited(self, event: CallShortCircuited) -> None:
        """Count a call refused by an open breaker (it produces no ``call_finished``)."""
        metrics = self._metrics
        metrics.calls.labels(event.origin, event.method, "short_circuited").inc()
        metrics.short_circuited.labels(event.origin, event.method).inc()

    def bulkhead_rejected(self, event: BulkheadRejected) -> None:
        """Count a call refused by a full bulkhead (it produces no ``call_finished``)."""
        metrics = self._metrics
        metrics.calls.labels(event.origin, event.method, "rejected").inc()
        metrics.bulkhead_rejected.labels(event.origin, event.method).inc()

    def retry_scheduled(self, event: RetryScheduled) -> None:
        """Count a retry."""
        self._metrics.retries.labels(event.origin, event.method).inc()

    def attempt_failed(self, event: AttemptFailed) -> None:
        """Count a failed attempt by its status code or exception class."""
        self._metrics.attempts_failed.labels(event.origin, event.method, _failure_reason(event)).inc()

    def breaker_state_changed(self, event: BreakerStateChanged) -> None:
        """Set the origin's ``breaker_state`` gauge and count the transition."""
        self._metrics.breaker_transitions.labels(event.origin, event.old, event.new).inc()
        self._set_state(event.origin, event.new, only_if_unseen=False)

    def _set_state(self, origin: str, state: str, *, only_if_unseen: bool) -> None:
        value = BREAKER_STATES.get(state)
        if value is None:
            return
        with self._states_lock:  # a first call_finished must not overwrite a transition that raced it
            if only_if_unseen and origin in self._seen:
                return
            self._seen.add(origin)
            self._metrics.breaker_state.labels(origin).set(value)


class CompartmentCollector:
    """A Prometheus collector of every compartment's breaker state and bulkhead,
    read from ``compartments`` (default: the process-wide registry) at each scrape."""

    def __init__(self, compartments: Optional[Registry] = None, namespace: str = "resilient_requests") -> None:
        if not isinstance(namespace, str) or not namespace:
            raise ValueError(f"namespace must be a non-empty str, got {namespace!r}")
        self.compartments = REGISTRY if compartments is None else compartments
        self.namespace = namespace

    def register(self, registry: Optional[CollectorRegistry] = None) -> "CompartmentCollector":
        """Register with ``registry`` (default ``prometheus_client.REGISTRY``); returns self."""
        (prometheus_client.REGISTRY if registry is None else registry).register(self)
        return self

    def describe(self) -> Tuple[Any, ...]:
        """No fixed series: the dependencies come and go (collected on each scrape)."""
        return ()

    def collect(self) -> Any:
        """One gauge family per measure, a series per compartment."""
        labels = ["dependency", "policy"]
        name = f"{self.namespace}_compartment_"
        state = GaugeMetricFamily(name + "breaker_state", "Breaker state: 0 closed, 1 open, 2 half-open.",
                                  labels=labels)
        in_use = GaugeMetricFamily(name + "bulkhead_in_use", "Bulkhead slots taken now.", labels=labels)
        capacity = GaugeMetricFamily(name + "bulkhead_capacity", "Bulkhead slots in all.", labels=labels)
        permits = CounterMetricFamily(name + "rate_limit_permits", "Rate-limit permits taken.", labels=labels)
        waited = CounterMetricFamily(name + "rate_limit_waited_seconds", "Seconds waited for permits.",
                                     labels=labels)
        refused = CounterMetricFamily(name + "rate_limit_refused", "Calls refused a permit.", labels=labels)
        paused = GaugeMetricFamily(name + "rate_limit_paused_seconds", "Seconds left of a cool-down.",
                                   labels=labels)
        rate = GaugeMetricFamily(name + "rate_limit_rate", "Permits per second (NaN: unlimited).", labels=labels)
        for compartment in self.compartments.compartments():
            key = [compartment.origin, compartment.policy]
            state.add_metric(key, BREAKER_STATES.get(compartment.breaker.state.value, 0))
            in_use.add_metric(key, compartment.bulkhead.in_use)
            capacity.add_metric(key, compartment.bulkhead.capacity)
            limiter = compartment.limiter
            if limiter is not None:
                snapshot = limiter.snapshot()
                permits.add_metric(key, float(snapshot["permits"]))  # type: ignore[arg-type]
                waited.add_metric(key, float(snapshot["waited"]))  # type: ignore[arg-type]
                refused.add_metric(key, float(snapshot["refused"]))  # type: ignore[arg-type]
                paused.add_metric(key, float(snapshot["paused_for"]))  # type: ignore[arg-type]
                current = snapshot["rate"]
                rate.add_metric(key, float("nan") if current is None else float(current))  # type: ignore[arg-type]
        yield from (state, in_use, capacity, permits, waited, refused, paused, rate)
