"""OpenTelemetry for a :class:`~resilient_requests.ResilientSession` (extra ``opentelemetry``).

::

    from resilient_requests.contrib.opentelemetry import instrument

    instrument(session)                      # the global tracer and meter providers
    instrument(other, tracer_provider=tp, meter_provider=mp)

It needs only ``opentelemetry-api`` at run time; spans and metrics go wherever the
application's SDK sends them (nowhere without one). ``instrument(session)`` adds an
:class:`OpenTelemetryListener` to the session (one listener per set of providers,
shared by the sessions given them); :func:`uninstrument` takes it off again.

**Spans.** Each attempt — the request and each retry, and each redirect followed —
is a ``CLIENT`` span named after the method, as the HTTP semantic conventions ask of
a span per request sent over the wire. It is a child of the span current when the call
runs: the one ``opentelemetry-instrumentation-requests`` opens around
``Session.send`` (which then stands for the whole call, retries included), or the
application's own. Its attributes are the stable HTTP client ones:
``http.request.method`` (``_OTHER`` for a method not in
``OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS``, with ``http.request.method_original``),
``url.full`` (credentials and signed-URL query values redacted), ``server.address``,
``server.port``, ``http.response.status_code``, ``http.request.resend_count`` on every
attempt after the call's first (1 for the first retry or redirect, 2 for the next,
...), and ``error.type`` when it failed: the status code (``"503"``) or the exception's
qualified class name (``"requests.exceptions.ConnectionError"``). A failed attempt
— an exception, a status of 400 or more, or one the session's breaker counts as a
failure — has status ``ERROR``; an exception is recorded on the span too.

The span starts once the breaker admitted the attempt and ends when its answer is
known: the body read (unless ``stream=True``), so a body cut short is the attempt's
failure. It is not made the current span. With ``propagate=True`` (the default) the
attempt's own context is injected into the request's headers (``traceparent``,
with the global propagator), so the server's span is the attempt's child; it replaces
the one the requests instrumentation injected for the whole call. A hedged attempt
(a race between the attempt and its hedges) is one span.

The spans are made even under ``suppress_http_instrumentation()``, which the requests
instrumentation sets around every ``send()``; ``suppress_instrumentation()`` stops them.

**Span events** on the span current when it happens (the requests instrumentation's,
or the application's): ``resilient_requests.retry_scheduled`` (attempt, wait, reason),
``resilient_requests.short_circuited`` (an open breaker, a throttle or a rate limit
refused the call: no attempt, no attempt span), ``resilient_requests.bulkhead_rejected``
and ``resilient_requests.breaker_state_changed`` (from, to). Each carries
``resilient_requests.dependency``.

**Metrics**, read from the registry of compartments at each collection (like
:class:`~resilient_requests.contrib.prometheus.CompartmentCollector`), one series per
``resilient_requests.dependency`` and ``resilient_requests.policy``:

=============================================  =============================================
``resilient_requests.breaker.state``           gauge: 0 closed, 1 open, 2 half-open
``resilient_requests.bulkhead.in_use``         up-down counter, ``{slot}``
``resilient_requests.bulkhead.capacity``       up-down counter, ``{slot}``
``resilient_requests.calls`` and the other     counters, as in ``registry().stats()``: calls,
counters of ``session.stats()``                successes, failures, retries, short_circuited,
                                               rejected, throttled, hedges, rate_limited, not_sent
``resilient_requests.breaker.transitions``     counter (from the listener's events), with
                                               ``resilient_requests.breaker.from_state``
                                               and ``...to_state``
=============================================  =============================================

The registry's counters restart at zero when it is reset (``resilient_requests.reset()``)
or forgets an idle compartment, as a process restart would.
"""
from __future__ import annotations

import os
import threading
import weakref
from functools import partial
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Protocol, Tuple, Union
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from ..compartments import COUNTERS, REGISTRY, Registry
from ..events import (
    AttemptFinished,
    AttemptStarted,
    BreakerStateChanged,
    BulkheadRejected,
    CallFinished,
    CallShortCircuited,
    Listener,
    RetryScheduled,
    add_process_listener,
    remove_process_listener,
)
from ._http import BREAKER_STATES, missing_extra

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, propagate, trace
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
except ImportError as _error:
    raise missing_extra(__name__, "opentelemetry-api", "opentelemetry", _error) from _error

__all__ = ["OpenTelemetryListener", "instrument", "uninstrument", "observe_registry", "BREAKER_STATES"]


_SCOPE = "resilient_requests.contrib.opentelemetry"
#: The semantic conventions the attribute names follow (the stable HTTP ones).
_SCHEMA_URL = "https://opentelemetry.io/schemas/1.21.0"
_DEPENDENCY = "resilient_requests.dependency"
_POLICY = "resilient_requests.policy"

#: RFC 9110's methods and PATCH: the semantic conventions' default "known" methods.
_KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})
#: Query values the semantic conventions ask to redact in ``url.full``.
_SECRET_QUERY_KEYS = frozenset({"AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_COUNTER_UNITS = {"retries": "{retry}", "hedges": "{hedge}"}  # the other counters count calls

AttributeValue = Union[str, bool, int, float]


def _known_methods() -> FrozenSet[str]:
    """``OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`` (a full override), else the defaults."""
    given = os.environ.get("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "")
    methods = frozenset(m.strip() for m in given.split(",") if m.strip())
    return methods or _KNOWN_METHODS


def _full_url(url: str) -> str:
    """``url`` for ``url.full``: user and password, and signed-URL query values, redacted."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = "REDACTED:REDACTED@" + netloc.rpartition("@")[2]
        query = parts.query
        if query and any(key in query for key in _SECRET_QUERY_KEYS):
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, "REDACTED" if k in _SECRET_QUERY_KEYS else v) for k, v in pairs], safe="/:")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:  # an unparseable URL (it will fail to send): keep only what is safe to show
        return ""


def _server(url: str) -> Dict[str, AttributeValue]:
    """``server.address`` and ``server.port`` of ``url`` (the scheme's port if none is given)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return {}
    found: Dict[str, AttributeValue] = {}
    if host:
        found["server.address"] = host
    port = port if port is not None else _DEFAULT_PORTS.get(parts.scheme.lower())
    if port is not None:
        found["server.port"] = port
    return found


def _error_type(error: BaseException) -> str:
    """An exception's fully qualified class name (builtins unqualified)."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _current_span() -> Optional[Span]:
    """The current span, if it records."""
    span = trace.get_current_span()
    return span if span.is_recording() else None


# ---------------------------------------------------------------- metrics


class _Instruments:
    """The instruments of one meter provider (shared by every listener given it)."""

    def __init__(self, meter: Meter) -> None:
        self._registries: "weakref.WeakSet[Registry]" = weakref.WeakSet()
        self._registries_lock = threading.Lock()
        self.transitions = meter.create_counter(
            "resilient_requests.breaker.transitions", unit="{transition}",
            description="Circuit breaker state changes.")
        meter.create_observable_gauge(
            "resilient_requests.breaker.state", callbacks=[self._breaker_states],
            description="Circuit breaker state: 0 closed, 1 open, 2 half-open.")
        meter.create_observable_up_down_counter(
            "resilient_requests.bulkhead.in_use", callbacks=[self._bulkheads_in_use], unit="{slot}",
            description="Bulkhead slots taken now.")
        meter.create_observable_up_down_counter(
            "resilient_requests.bulkhead.capacity", callbacks=[self._bulkhead_capacities], unit="{slot}",
            description="Bulkhead slots in all.")
        for name in COUNTERS:
            meter.create_observable_counter(
                f"resilient_requests.{name}", callbacks=[partial(self._counter, name)],
                unit=_COUNTER_UNITS.get(name, "{call}"),
                description=f"The compartment's {name} counter, as in registry().stats().")

    def watch(self, registry: Registry) -> None:
        """Report ``registry``'s compartments too (for as long as it lives)."""
        with self._registries_lock:
            self._registries.add(registry)

    def _compartments(self) -> Iterable[Any]:
        with self._registries_lock:
            registries = list(self._registries)
        for registry in registries:
            yield from registry.compartments()

    @staticmethod
    def _key(compartment: Any) -> Dict[str, AttributeValue]:
        return {_DEPENDENCY: compartment.origin, _POLICY: compartment.policy}

    def _breaker_states(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(BREAKER_STATES.get(c.breaker.state.value, 0), self._key(c))
                for c in self._compartments()]

    def _bulkheads_in_use(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(c.bulkhead.in_use, self._key(c)) for c in self._compartments()]

    def _bulkhead_capacities(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(c.bulkhead.capacity, self._key(c)) for c in self._compartments()]

    def _counter(self, name: str, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(int(c.snapshot()[name]), self._key(c)) for c in self._compartments()]


_GLOBAL = object()  # the key of the global meter provider, set now or later
_instruments_lock = threading.Lock()
_instruments: Dict[int, Tuple[Any, _Instruments]] = {}  # id(provider) -> (provider, its instruments)


def _instruments_for(meter_provider: Optional[MeterProvider]) -> _Instruments:
    """The instruments of ``meter_provider`` (``None``: the global one), made on first use."""
    key: Any = _GLOBAL if meter_provider is None else meter_provider
    with _instruments_lock:
        found = _instruments.get(id(key))
        if found is None or found[0] is not key:
            meter = metrics.get_meter(_SCOPE, _version(), meter_provider, schema_url=_SCHEMA_URL)
            found = _instruments[id(key)] = (key, _Instruments(meter))
            found[1].watch(REGISTRY)
        return found[1]


def observe_registry(registry: Registry, meter_provider: Optional[MeterProvider] = None) -> None:
    """Report the compartments of ``registry`` (one a session was given with
    ``registry=``) in the metrics of ``meter_provider`` (default: the global one),
    beside the process-wide registry's, for as long as ``registry`` lives."""
    _instruments_for(meter_provider).watch(registry)


def _version() -> str:
    from .. import __version__

    return __version__


# ---------------------------------------------------------------- the listener


class _Open:
    """An attempt's span while the attempt runs."""

    __slots__ = ("request", "request_id", "span")

    def __init__(self, request: requests.PreparedRequest, request_id: Optional[str], span: Span) -> None:
        self.request = request
        self.request_id = request_id
        self.span = span


class OpenTelemetryListener(Listener):
    """A listener that traces a session's attempts as OpenTelemetry ``CLIENT`` spans,
    adds its retries, refusals and breaker changes as span events, and counts
    breaker transitions; see the module documentation for the names.

    ``tracer_provider`` and ``meter_provider`` default to the global ones (as set
    when the spans and metrics are made). With ``propagate=True``, each attempt's
    context is injected into its request's headers. Constructing one also reports
    the process-wide registry's compartments in ``meter_provider``'s metrics (once
    per provider). One listener may serve several sessions, and threads.
    """

    def __init__(self, tracer_provider: Optional[TracerProvider] = None,
                 meter_provider: Optional[MeterProvider] = None, *, propagate: bool = True) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.propagate = propagate
        self._tracer = trace.get_tracer(_SCOPE, _version(), tracer_provider, schema_url=_SCHEMA_URL)
        self._instruments = _instruments_for(meter_provider)
        self._methods = _known_methods()
        self._local = threading.local()  # per thread: id(request) -> _Open

    def __repr__(self) -> str:
        return f"OpenTelemetryListener(propagate={self.propagate})"

    def _open(self) -> Dict[int, _Open]:
        spans: Optional[Dict[int, _Open]] = getattr(self._local, "spans", None)
        if spans is None:
            spans = self._local.spans = {}
        return spans

    # -- an attempt: one span --
    def attempt_started(self, event: AttemptStarted) -> None:
        """Start the attempt's span, a child of the current one; inject its context."""
        if otel_context.get_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY):
            return
        request = event.request
        url = request.url or ""
        method = event.method.upper()
        known = method in self._methods
        attributes: Dict[str, AttributeValue] = {"http.request.method": method if known else "_OTHER"}
        if not known or event.method != method:
            attributes["http.request.method_original"] = event.method
        attributes["url.full"] = _full_url(url)
        attributes.update(_server(url))
        if event.attempt > 1:
            attributes["http.request.resend_count"] = event.attempt - 1
        span = self._tracer.start_span(method if known else "HTTP", kind=SpanKind.CLIENT, attributes=attributes)
        self._open()[id(request)] = _Open(request, event.request_id, span)
        if self.propagate and request.headers is not None:
            propagate.inject(request.headers, context=trace.set_span_in_context(span))

    def attempt_finished(self, event: AttemptFinished) -> None:
        """End the attempt's span with its status code, or its error."""
        found = self._open().pop(id(event.request), None)
        if found is None or found.request is not event.request:
            return  # started before this listener was added, or suppressed
        span = found.span
        status = event.status
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        error = event.exception
        if error is not None:
            span.record_exception(error)
            span.set_attribute("error.type", _error_type(error))
            span.set_status(Status(StatusCode.ERROR, event.reason))
        elif event.failed or (status is not None and status >= 400):
            span.set_attribute("error.type", str(status) if status is not None else "_OTHER")
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def call_finished(self, event: CallFinished) -> None:
        """End what an attempt left open when the call ended with a ``BaseException``
        inside it (its ``attempt_finished`` never came)."""
        spans = getattr(self._local, "spans", None)
        if not spans or event.request_id is None or event.exception is None:
            return
        left: List[int] = [key for key, found in spans.items() if found.request_id == event.request_id]
        for key in left:
            span = spans.pop(key).span
            span.record_exception(event.exception)
            span.set_attribute("error.type", _error_type(event.exception))
            span.set_status(Status(StatusCode.ERROR, "the attempt was interrupted"))
            span.end()

    # -- what happens around the attempts: events on the current span --
    def retry_scheduled(self, event: RetryScheduled) -> None:
        """An event on the call's span: which attempt failed, how, and the wait."""
        span = _current_span()
        if span is not None:
            span.add_event("resilient_requests.retry_scheduled", {
                _DEPENDENCY: event.origin, "resilient_requests.attempt": event.attempt,
                "resilient_requests.wait": event.wait, "resilient_requests.reason": event.reason,
            })

    def call_short_circuited(self, event: CallShortCircuited) -> None:
        """An event on the current span: the call was refused before any attempt."""
        span = _current_span()
        if span is not None:
            span.add_event("resilient_requests.short_circuited", {
                _DEPENDENCY: event.origin, "http.request.method": event.method,
                "resilient_requests.retry_after": event.retry_after,
            })

    def bulkhead_rejected(self, event: BulkheadRejected) -> None:
        """An event on the current span: no bulkhead slot in time, nothing sent."""
        span = _current_span()
        if span is not None:
            span.add_event("resilient_requests.bulkhead_rejected", {
                _DEPENDENCY: event.origin, "http.request.method": event.method,
                "resilient_requests.bulkhead.capacity": event.capacity,
            })

    def breaker_state_changed(self, event: BreakerStateChanged) -> None:
        """Count the transition; an event on the current span (the call that caused it, if any)."""
        self._instruments.transitions.add(1, {
            _DEPENDENCY: event.origin, "resilient_requests.breaker.from_state": event.old,
            "resilient_requests.breaker.to_state": event.new,
        })
        span = _current_span()
        if span is not None:
            span.add_event("resilient_requests.breaker_state_changed", {
                _DEPENDENCY: event.origin, "resilient_requests.breaker.from_state": event.old,
                "resilient_requests.breaker.to_state": event.new,
            })


# ---------------------------------------------------------------- instrument / uninstrument

class _Listened(Protocol):
    """What instrument() needs of a session: ResilientSession, or any session with ResilientMixin."""

    def add_listener(self, listener: Any) -> None: ...

    def remove_listener(self, listener: Any) -> None: ...


class _Process:
    """Every session of the process and the module-level API (``instrument()`` without a session)."""

    def add_listener(self, listener: Any) -> None:
        add_process_listener(listener)

    def remove_listener(self, listener: Any) -> None:
        remove_process_listener(listener)

    def __repr__(self) -> str:
        return "<every session of the process>"


_PROCESS = _Process()
_lock = threading.Lock()
_listeners: "weakref.WeakSet[OpenTelemetryListener]" = weakref.WeakSet()
_added: "weakref.WeakKeyDictionary[_Listened, OpenTelemetryListener]" = weakref.WeakKeyDictionary()


def instrument(session: Optional[_Listened] = None, *, tracer_provider: Optional[TracerProvider] = None,
               meter_provider: Optional[MeterProvider] = None, propagate: bool = True) -> OpenTelemetryListener:
    """Trace ``session``'s attempts and report the compartments (see the module
    documentation); without a session, every session of the process — made
    now or later, by your code or a library's (``install()``) — and the
    module-level API (``resilient_requests.get`` …). Sessions given the same
    providers share one listener, so a breaker they share counts each transition
    once. Instrumenting again with other providers replaces the listener; returns the one in use."""
    if session is None:
        session = _PROCESS
    if not callable(getattr(session, "add_listener", None)):
        raise TypeError(f"instrument() takes a ResilientSession (a session with add_listener), got {session!r}")
    with _lock:
        listener = next((x for x in list(_listeners) if x.tracer_provider is tracer_provider
                         and x.meter_provider is meter_provider and x.propagate == propagate), None)
        if listener is None:
            listener = OpenTelemetryListener(tracer_provider, meter_provider, propagate=propagate)
            _listeners.add(listener)
        previous = _added.get(session)
        if previous is listener:
            return listener
        if previous is not None:
            session.remove_listener(previous)
        session.add_listener(listener)
        _added[session] = listener
    return listener


def uninstrument(session: Optional[_Listened] = None) -> None:
    """Take off the listener :func:`instrument` added to ``session`` (without one:
    the process-wide listener; nothing if none). The compartment metrics stay:
    they are the process's, not the session's."""
    if session is None:
        session = _PROCESS
    with _lock:
        listener = _added.pop(session, None)
    if listener is not None:
        session.remove_listener(listener)
