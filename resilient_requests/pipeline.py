"""The order of the resilience layers, written once. Outermost first::

    ResilientSession.send(request)
     └─ 1. bulkhead     one slot for the whole call, redirects and waits included:
        │               the calling thread is busy all that time.
        └─ per hop (the request, then each redirect):
           2. retry loop   backoff: waits between attempts; stops at once when
           │               the breaker opens, so an outage ends the loop.
           └─ 3. breaker   the hop's origin: every attempt is admitted and recorded.
              └─ 4. adapter  the mounted adapter's send(), and the body read
                             (unless stream=True), so a body cut short is an
                             attempt's failure. urllib3's Retry in the adapter
                             is pinned to zero: each failure is retried here only.

:data:`LAYERS` names them in that order; ``ResilientSession.describe()`` returns it.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any, Dict, List, Mapping, Optional
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.utils import rewind_body

from .breaker import BreakerRegistry, OriginBreaker
from .bulkhead import Bulkhead
from .config import IDEMPOTENT_METHODS, ClientConfig
from .errors import RetryWhen, Verdict, classify, to_raise
from .exceptions import CircuitOpenError
from .retry import Attempts, Outcome, RetryLoop, retry_after_seconds

__all__ = ["LAYERS", "Pipeline", "Call", "origin_of", "loggable_url"]

LAYERS = ("bulkhead", "retry", "circuit_breaker", "adapter")

_DEFAULT_PORTS = {"http": 80, "https": 443}


_ORIGINS: Dict[str, str] = {}


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url``, the key of its circuit breaker."""
    start = url.find("//")
    slash = url.find("/", start + 2) if start >= 0 else -1
    key = url[:slash] if slash > 0 else url
    origin = _ORIGINS.get(key)
    if origin is None:
        if len(_ORIGINS) >= 1024:
            _ORIGINS.clear()  # a crude bound; origins are few in practice
        origin = _ORIGINS[key] = _parse_origin(key)
    return origin


def _parse_origin(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or _DEFAULT_PORTS.get(scheme, 0)}"


def loggable_url(url: str) -> str:
    """``url`` without credentials, query string or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class Pipeline:
    """The resilience layers of one session (or of the module-level API)."""

    def __init__(self, config: ClientConfig, logger: logging.Logger) -> None:
        self.config = config
        self.log = logger
        self.bulkhead = Bulkhead(config.bulkhead)
        self.breakers = BreakerRegistry(config.circuit_breaker, logger)
        self.retry = RetryLoop(config.retry)
        self.failure_statuses = config.circuit_breaker.failure_statuses
        self.retry_statuses = config.retry.retry_on_status

    def start(self, url: str) -> "Call":
        """Begin a call to ``url``: fail fast if its origin's breaker is open
        (before requests prepares anything), then take a bulkhead slot (layer 1)."""
        self.breakers.get(origin_of(url)).check()
        self.bulkhead.acquire()
        return Call(self)

    def finish(self, call: "Call") -> None:
        """End a call: give its bulkhead slot back."""
        self.bulkhead.release()


class Call:
    """One caller's call on one thread: what its hops share."""

    __slots__ = ("pipeline", "request_id")

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.request_id = uuid.uuid4().hex if pipeline.config.logging.include_request_id else None

    def hop(self, adapter: BaseAdapter, request: requests.PreparedRequest,
            kwargs: Mapping[str, Any]) -> requests.Response:
        """Layers 2-4 for one request to one origin (the request, or a redirect)."""
        attempts = _Hop(self.pipeline, adapter, request, kwargs)
        return attempts.finish(self.pipeline.retry.run(attempts))


class _Hop(Attempts):
    """The attempts of one request to one origin: breaker, then adapter."""

    def __init__(self, pipeline: Pipeline, adapter: BaseAdapter,
                 request: requests.PreparedRequest, kwargs: Mapping[str, Any]) -> None:
        self.pipeline = pipeline
        self.adapter = adapter
        self.request = request
        self.kwargs = kwargs
        self.stream = bool(kwargs.get("stream"))
        self.breaker: OriginBreaker = pipeline.breakers.get(origin_of(request.url or ""))
        method = (request.method or "GET").upper()
        self.idempotent = method in IDEMPOTENT_METHODS or "Idempotency-Key" in request.headers
        body = request.body
        self.replayable = (
            body is None or isinstance(body, (bytes, str))
            or isinstance(getattr(request, "_body_position", None), int)
        )
        self.number = 0
        self.last: Optional[Outcome] = None

    def attempt(self) -> Outcome:
        self.number += 1
        try:
            trial = self.breaker.admit()
        except CircuitOpenError:
            if self.last is None:
                raise  # open before the first attempt: fail fast, nothing sent
            self.last.retry = False  # opened meanwhile: end with the last real outcome
            return self.last
        if self.last is not None:
            if self.last.response is not None:
                self.last.response.close()  # give the discarded response's connection back
            if isinstance(getattr(self.request, "_body_position", None), int):
                rewind_body(self.request)  # a file body: back to where it started
        outcome = self._send(trial)
        if outcome.retry and self.breaker.is_open():
            outcome.retry = False
        self.last = outcome
        return outcome

    def _send(self, trial: bool) -> Outcome:
        try:
            response = self.adapter.send(self.request, **self.kwargs)
            if not self.stream:
                response.content  # noqa: B018 - read the body inside the attempt
        except Exception as exc:
            verdict = classify(exc)
            self.breaker.record(trial, True if verdict.breaker else None)
            return Outcome(error=exc, verdict=verdict, retry=self._may_retry(verdict))
        except BaseException:
            self.breaker.record(trial, None)
            raise
        status = response.status_code
        self.breaker.record(trial, status in self.pipeline.failure_statuses)
        retry = status in self.pipeline.retry_statuses and self.idempotent and self.replayable
        return Outcome(
            response=response, retry=retry,
            retry_after=retry_after_seconds(response) if retry else None,
        )

    def _may_retry(self, verdict: Verdict) -> bool:
        if verdict.retry is RetryWhen.ALWAYS:
            return True  # never reached the server: the body was not consumed
        if verdict.retry is RetryWhen.IDEMPOTENT:
            return self.idempotent and self.replayable
        return False

    def before_wait(self, tries: int, wait: float, outcome: Outcome) -> None:
        log = self.pipeline.log
        if log.isEnabledFor(logging.WARNING):
            request_id = self.request.headers.get("X-Request-ID", "-")
            log.warning(
                "retrying %s %s [request %s]: attempt %d of %d failed with %s; waiting %.3fs",
                self.request.method, loggable_url(self.request.url or ""), request_id,
                tries, self.pipeline.retry.config.max_attempts, outcome.reason, wait,
                extra={"request_id": request_id, "origin": self.breaker.origin,
                       "attempt": tries, "outcome": outcome.reason, "wait": wait},
            )

    def finish(self, outcome: Outcome) -> requests.Response:
        """The last response, or the last error as the caller should see it."""
        if outcome.error is not None:
            error = outcome.error
            raised = to_raise(error, outcome.verdict)
            if raised is error:
                raise error
            if getattr(raised, "request", None) is None:
                raised.request = self.request  # requests leaves it unset for body-phase errors
            raise raised from error
        assert outcome.response is not None
        return outcome.response


def describe(pipeline: Pipeline) -> Dict[str, Any]:
    """The layers in order with their settings (for introspection and tests)."""
    config = pipeline.config
    layers: List[Dict[str, Any]] = [
        {"layer": "bulkhead", "max_concurrency": config.bulkhead.max_concurrency,
         "acquisition_timeout": config.bulkhead.acquisition_timeout},
        {"layer": "retry", "max_attempts": config.retry.max_attempts,
         "retry_on_status": sorted(config.retry.retry_on_status)},
        {"layer": "circuit_breaker", "failure_threshold": config.circuit_breaker.failure_threshold,
         "recovery_timeout": config.circuit_breaker.recovery_timeout},
        {"layer": "adapter", "timeout": vars(config.timeout).copy()},
    ]
    return {"layers": layers}
