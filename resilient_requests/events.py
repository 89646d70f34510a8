"""Observability hooks: what happened, as small frozen events, to plain listeners.

A listener is any object with some of the methods of :class:`Listener`; each
receives one event. Listeners never break a call: an exception raised by one is
logged (with its traceback) and swallowed. With no listener registered, a call
pays only an empty-tuple check.

::

    class Metrics(resilient_requests.Listener):
        def call_finished(self, event):
            statsd.timing(f"http.{event.origin}.{event.outcome}", event.elapsed)

    session.add_listener(Metrics())
"""
from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Tuple

if TYPE_CHECKING:
    from requests import PreparedRequest

__all__ = [
    "Listener", "Events", "add_process_listener", "remove_process_listener",
    "RetryScheduled", "AttemptFailed", "BreakerStateChanged", "CallShortCircuited",
    "BulkheadRejected", "CallFinished", "AttemptStarted", "AttemptFinished",
]


@dataclass(frozen=True)
class RetryScheduled:
    """An attempt failed and the call will try again after ``wait`` seconds."""

    origin: str
    method: str
    url: str  # without query string or credentials
    request_id: Optional[str]
    attempt: int  # the attempt that failed (1 = the first)
    wait: float
    reason: str


@dataclass(frozen=True)
class AttemptFailed:
    """One attempt ended in a failure (a transport error or a retryable/failure status)."""

    origin: str
    method: str
    url: str
    request_id: Optional[str]
    attempt: int
    reason: str
    status: Optional[int]
    exception: Optional[BaseException]


@dataclass(frozen=True)
class BreakerStateChanged:
    """An origin's breaker moved from ``old`` to ``new`` ("closed", "open", "half_open")."""

    origin: str
    old: str
    new: str


@dataclass(frozen=True)
class CallShortCircuited:
    """A call failed fast on an open breaker, without network I/O."""

    origin: str
    method: str
    url: str
    retry_after: float


@dataclass(frozen=True)
class BulkheadRejected:
    """A call found no free bulkhead slot in time, and sent nothing."""

    origin: str
    method: str
    url: str
    capacity: int


@dataclass(frozen=True)
class CallFinished:
    """A call that got past the gates ended: with a response (``status``) or an
    ``exception``. Calls refused before they start (an open breaker, a full
    bulkhead) produce only :class:`CallShortCircuited` or :class:`BulkheadRejected`."""

    origin: str
    method: str
    url: str
    request_id: Optional[str]
    status: Optional[int]
    exception: Optional[BaseException]
    attempts: int
    elapsed: float  # seconds, bulkhead wait included
    outcome: str  # "success", "failure", "short_circuited" (an open breaker met mid-call), or
    # "not_sent": failed before any attempt, not for the origin's sake (an invalid URL, header or timeout)


@dataclass(frozen=True)
class AttemptStarted:
    """One attempt is about to be sent: after the breaker admitted it, before the
    adapter's ``send()``. A hedged attempt (a race) is one attempt.

    ``attempt`` counts the requests of the call sent so far, this one included,
    across redirects (1 = the first), so ``attempt - 1`` is what OpenTelemetry calls
    ``http.request.resend_count``. ``request`` is the request as it will be sent;
    a listener may add a header to it (a trace context, say) and nothing else.
    Every ``AttemptStarted`` is followed by one :class:`AttemptFinished` with the
    same ``request`` on the same thread, unless a ``BaseException`` (such as
    ``KeyboardInterrupt``) ends the call in between."""

    origin: str
    method: str
    url: str  # without query string or credentials
    request_id: Optional[str]
    attempt: int
    request: "PreparedRequest" = field(repr=False, compare=False)


@dataclass(frozen=True)
class AttemptFinished:
    """One attempt ended: with a response (``status``) or an ``exception``.
    ``failed`` says whether it counts as a failure (an error, a status that is retried
    or that the breaker counts), as :class:`AttemptFailed`, which precedes it then;
    ``reason`` is the status or the kind of failure, as in the logs. ``request`` is
    the one of the :class:`AttemptStarted` it ends."""

    origin: str
    method: str
    url: str
    request_id: Optional[str]
    attempt: int
    reason: str
    status: Optional[int]
    exception: Optional[BaseException]
    failed: bool
    request: "PreparedRequest" = field(repr=False, compare=False)


class Listener:
    """Base class with every hook as a no-op; override the ones you need."""

    def retry_scheduled(self, event: RetryScheduled) -> None:
        """An attempt failed; the call waits ``event.wait`` seconds and tries again."""

    def attempt_failed(self, event: AttemptFailed) -> None:
        """An attempt failed."""

    def breaker_state_changed(self, event: BreakerStateChanged) -> None:
        """An origin's breaker changed state."""

    def call_short_circuited(self, event: CallShortCircuited) -> None:
        """A call failed fast on an open breaker."""

    def bulkhead_rejected(self, event: BulkheadRejected) -> None:
        """A call found the bulkhead full."""

    def call_finished(self, event: CallFinished) -> None:
        """A call ended."""

    def attempt_started(self, event: AttemptStarted) -> None:
        """An attempt is about to be sent."""

    def attempt_finished(self, event: AttemptFinished) -> None:
        """An attempt ended, failed or not."""


#: Listeners of every session in the process (see :func:`add_process_listener`).
_PROCESS_LISTENERS: Tuple[Any, ...] = ()
_HUBS: "weakref.WeakSet[Events]" = weakref.WeakSet()
_hubs_lock = threading.Lock()


def add_process_listener(listener: Any) -> None:
    """Register ``listener`` with every session of the process — those that exist,
    those made later, and the module-level API (``resilient_requests.get`` …):
    for tools that watch a whole process (OpenTelemetry, a metrics exporter)
    where sessions are made by code you do not own."""
    global _PROCESS_LISTENERS
    with _hubs_lock:
        if any(known is listener for known in _PROCESS_LISTENERS):
            return
        _PROCESS_LISTENERS = (*_PROCESS_LISTENERS, listener)
        hubs = list(_HUBS)
    for hub in hubs:
        hub.add(listener)


def remove_process_listener(listener: Any) -> None:
    """Undo :func:`add_process_listener` (sessions keep listeners added to them directly)."""
    global _PROCESS_LISTENERS
    with _hubs_lock:
        _PROCESS_LISTENERS = tuple(known for known in _PROCESS_LISTENERS if known is not listener)
        hubs = list(_HUBS)
    for hub in hubs:
        hub.remove(listener)


class Events:
    """Delivers events to the listeners of one session."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._lock = threading.Lock()
        with _hubs_lock:
            self.listeners: Tuple[Any, ...] = _PROCESS_LISTENERS
            _HUBS.add(self)

    def add(self, listener: Any) -> None:
        """Register ``listener`` (any object with some of :class:`Listener`'s methods)."""
        with self._lock:
            if any(known is listener for known in self.listeners):
                return  # once per hub: a process listener may be added to a session too
            self.listeners = (*self.listeners, listener)

    def remove(self, listener: Any) -> None:
        """Unregister ``listener``."""
        with self._lock:
            self.listeners = tuple(x for x in self.listeners if x is not listener)

    def emit(self, hook: str, event: Any) -> None:
        """Call ``hook(event)`` on every listener that has it; log and swallow errors."""
        self.emit_to(self.listeners, hook, event)

    def emit_to(self, listeners: Tuple[Any, ...], hook: str, event: Any) -> None:
        """:meth:`emit` to ``listeners`` only (some of this hub's)."""
        for listener in listeners:
            method = getattr(listener, hook, None)
            if method is None:
                continue
            try:
                method(event)
            except Exception:
                self._log.warning("listener %r failed in %s; ignored", listener, hook, exc_info=True)
