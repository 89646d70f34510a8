"""The order of the resilience layers, written once. Outermost first::

    ResilientSession.request / send
     └─ 1. bulkhead     one slot of the dependency's compartment for the whole
        │               call, redirects and waits included: the calling thread
        │               is busy all that time (a redirect to another dependency
        │               takes a slot of that one's too). Before it: an open
        │               breaker fails fast; the call's deadline starts; the
        │               session's overall cap, if set, is taken.
        └─ per hop (the request, then each redirect):
           2. retry loop   backoff: waits between attempts; stops at once when the
           │               breaker opens, the retry budget is spent, or the wait
           │               would overrun the deadline.
           └─ 3. breaker   the hop's dependency: every attempt is admitted and recorded.
              └─ 4. adapter  the mounted adapter's send(), and the body read
                             (unless stream=True), so a body cut short is an
                             attempt's failure. urllib3's Retry in the adapter is
                             pinned to zero: each failure is retried here only.

With hedging on (:mod:`.hedging`), one attempt of layer 2 may be a race: its
hedges run layers 3-4 again on worker threads, each with a bulkhead slot of
its own and a retry from the budget; the first good answer is the attempt's.

Breakers, bulkheads, budgets and throttles live in compartments shared by
every session of the process (:mod:`.compartments`); a session finds its own
through :mod:`.routes`, with the config it gives each dependency.

:data:`LAYERS` names them in that order; ``ResilientSession.describe()`` returns it.
"""
from __future__ import annotations

import copy
import logging
import time
from random import getrandbits as _bits
from typing import Any, Dict, List, Mapping, NoReturn, Optional, cast

import requests
from requests.adapters import BaseAdapter
from requests.utils import rewind_body

from . import deadline as deadlines
from .bulkhead import Bulkhead
from .compartments import REGISTRY, Compartment, Registry
from .config import IDEMPOTENT_METHODS, BulkheadConfig, ClientConfig
from .errors import PASS_THROUGH, RetryWhen, Verdict, cassette_miss, classify, to_raise
from .events import (
    AttemptFailed,
    AttemptFinished,
    AttemptStarted,
    BulkheadRejected,
    CallFinished,
    CallShortCircuited,
    Events,
    RetryScheduled,
)
from .exceptions import (
    CircuitOpenError,
    DeadlineExceededError,
    PoolTimeoutError,
    RateLimitedError,
    ThrottledError,
)
from .hedging import Hedging, Race
from .origins import loggable_url
from .ratelimit import RateLimiter
from .retry import Attempts, Outcome, clear_frames, retry_after_seconds
from .routes import Route, Routes
from .testmode import MODE

__all__ = ["LAYERS", "Pipeline", "Call", "describe"]

LAYERS = ("bulkhead", "retry", "circuit_breaker", "adapter")

#: How a deadline that passed is classified: a timeout that counts against the origin.
DEADLINE = Verdict("deadline exceeded", True, RetryWhen.NEVER, True, (DeadlineExceededError,))

class Pipeline:
    """The resilience layers of one session (or of the module-level API)."""

    def __init__(self, config: ClientConfig, logger: logging.Logger, registry: Optional[Registry] = None) -> None:
        self.config = config
        self.log = logger
        self.events = Events(logger)
        self.routes = Routes(config, registry if registry is not None else REGISTRY, self.events, logger)
        # The session's own cap over every dependency (off unless configured).
        self.overall = Bulkhead(BulkheadConfig(config.total_concurrency, config.bulkhead.acquisition_timeout)) \
            if config.total_concurrency is not None else None
        hedged = config.hedge.enabled or any(d.config.hedge.enabled for d in config.dependencies.values())
        self.hedging = Hedging(config) if hedged else None

    def start(self, method: str, url: str, deadline: Optional[float]) -> "Call":
        """Begin a call to ``url``: fail fast if its dependency's breaker is open
        (before requests prepares anything), start the deadline (``deadline``,
        else the dependency's ``timeout.total``), then take a slot of the
        session's overall cap, if any, and of the dependency's bulkhead
        (layer 1), each within what is left of the deadline."""
        route = self.routes.get(url)
        state = route.compartment
        try:
            state.breaker.check()
        except CircuitOpenError as error:
            state.count("short_circuited")
            if self.events.listeners:
                self.events.emit("call_short_circuited", CallShortCircuited(
                    state.origin, method, loggable_url(url), error.retry_after))
            raise
        throttle = state.throttle
        if throttle is not None:
            probability = throttle.admit()  # _check_throttle, inlined: on every call's path
            if probability:
                self._throttled(state, method, url, probability)
        bulkhead = state.bulkhead
        if self.overall is None and bulkhead.timeout <= 0:
            # Nothing to wait for, so no deadline to wait within: a full bulkhead
            # refuses before the call is set up.
            if not bulkhead.try_acquire():
                self.rejected(state, bulkhead, method, url)
            call = Call(self, route, method, url, deadline if deadline is not None else route.config.timeout.total)
            call.held.append(bulkhead)
        else:
            call = Call(self, route, method, url, deadline if deadline is not None else route.config.timeout.total)
            try:
                if self.overall is not None:
                    call.take(self.overall, state, method, url)
                call.take(bulkhead, state, method, url)
            except BaseException:
                call.stop()
                raise
        if state.limiter is not None:
            try:
                self._first_permit(call, state, method, url)
            except BaseException:
                call.stop()
                raise
        return call

    def _first_permit(self, call: "Call", state: Compartment, method: str, url: str) -> None:
        """The first attempt's permit of the dependency's rate limit, taken here,
        before requests prepares anything, so a refusal costs no more than an open
        breaker's (holding the call's bulkhead slot, as the permits of its retries are)."""
        assert state.limiter is not None
        self.permit(state.limiter, state, call.deadline, method, url, first=True)
        call.permit_for = state

    def permit(self, limiter: RateLimiter, state: Compartment, deadline: Optional[deadlines.Deadline],
               method: str, url: str, first: bool, request: Optional[requests.PreparedRequest] = None) -> bool:
        """A permit of ``state``'s rate limit, waited for at most its ``max_wait`` and
        what is left of ``deadline``. Refused for a call's ``first`` attempt:
        ``RateLimitedError`` (nothing sent); for a retry: False."""
        wait = limiter.config.max_wait
        if deadline is not None:
            wait = min(wait, max(0.0, deadline.remaining()))
        left = limiter.acquire(wait)
        if left is None:
            return True
        state.count("rate_limited")
        if not first:
            return False
        if self.events.listeners:
            self.events.emit("call_short_circuited", CallShortCircuited(state.origin, method, loggable_url(url), left))
        raise RateLimitedError(
            f"no permit of the rate limit of {state.origin} within {wait:g}s; next in {left:.3f}s",
            origin=state.origin, retry_after=left, request=request,
        )

    def rejected(self, state: Compartment, bulkhead: Bulkhead, method: str, url: str,
                 error: Optional[BaseException] = None) -> NoReturn:
        """Count and tell a call ``bulkhead`` had no slot for, and raise ``error``
        (default: a ``PoolTimeoutError`` saying the slots were all busy)."""
        state.count("rejected")
        if self.events.listeners:
            self.events.emit("bulkhead_rejected", BulkheadRejected(
                state.origin, method, loggable_url(url), bulkhead.capacity))
        if error is None:
            raise PoolTimeoutError(f"bulkhead full: all {bulkhead.capacity} slots busy; nothing was sent")
        raise error

    def _check_throttle(self, state: Compartment, method: str, url: str) -> None:
        """Raise ``ThrottledError`` if adaptive throttling sheds this call to ``state``'s origin."""
        throttle = state.throttle
        if throttle is None:
            return
        probability = throttle.admit()
        if probability:
            self._throttled(state, method, url, probability)

    def _throttled(self, state: Compartment, method: str, url: str, probability: float) -> NoReturn:
        state.count("throttled")
        if self.events.listeners:
            self.events.emit("call_short_circuited", CallShortCircuited(
                state.origin, method, loggable_url(url), 0.0))
        # Its message is written when read (ThrottledError.__str__).
        raise ThrottledError(origin=state.origin, retry_after=0.0, probability=probability)

    def finish(self, call: "Call", response: Optional[requests.Response],
               error: Optional[BaseException]) -> None:
        """End a call: stop its deadline, give its bulkhead slots back, count it.
        The outcome is charged to the dependency that gave it (a redirect's
        target); one that answered with a redirect the call followed is charged a success."""
        call.stop()
        if error is not None and call.attempts == 0 and classify(error) is PASS_THROUGH:
            self._not_sent(call, error)
            return
        if isinstance(error, CircuitOpenError):
            outcome = "short_circuited"
        elif error is not None or (response is not None and response.status_code in call.route.failure_statuses):
            outcome = "failure"
        else:
            outcome = "success"
        for passed in call.passed:
            if passed.throttle is not None:
                passed.throttle.finished(True)
            passed.count("calls", "successes")
        state = call.current
        if state.throttle is not None and outcome != "short_circuited":
            # The origin took the call unless it failed or answered 429 (a refusal too).
            state.throttle.finished(outcome == "success" and response is not None and response.status_code != 429)
        state.count("calls", "successes" if outcome == "success" else "failures",
                    *(("short_circuited",) if outcome == "short_circuited" else ()))
        if self.events.listeners:
            self.events.emit("call_finished", CallFinished(
                state.origin, call.method, loggable_url(call.url), call.request_id,
                response.status_code if response is not None else None, error,
                call.attempts, time.monotonic() - call.started, outcome,
            ))

    def _not_sent(self, call: "Call", error: BaseException) -> None:
        """End a call that failed before any attempt with an error that is no
        transport failure: requests could not prepare it (an invalid URL or
        header), or its arguments were wrong (a timeout of ``"5"``). The origin
        never saw it, so it is none of its ``calls`` and ``failures`` (nor its
        breaker's or throttle's business): it is counted as ``not_sent``, where
        a caller's bug stays visible without making a healthy origin look sick."""
        state = call.current
        state.count("not_sent")
        if self.events.listeners:
            self.events.emit("call_finished", CallFinished(
                state.origin, call.method, loggable_url(call.url), call.request_id, None, error,
                0, time.monotonic() - call.started, "not_sent",
            ))

    def close(self) -> None:
        """Release what the layers hold outside the adapters and the registry (hedging's threads)."""
        if self.hedging is not None:
            self.hedging.close()

    def stats(self) -> Dict[str, Any]:
        """Per dependency this session called: counters, breaker state, bulkhead
        (shared with every session calling it with the same policy); and the
        sum of the slots its dependencies' bulkheads have in use."""
        compartments = self.routes.compartments()
        stats: Dict[str, Any] = {
            "bulkhead": {"capacity": self.config.bulkhead.max_concurrency,
                         "in_use": sum(c.bulkhead.in_use for c in compartments)},
            "origins": {c.origin: c.snapshot() for c in compartments},
        }
        if self.overall is not None:
            stats["overall"] = {"capacity": self.overall.capacity, "in_use": self.overall.in_use}
        return stats


class Call:
    """One caller's call on one thread: what its hops share."""

    __slots__ = ("pipeline", "route", "current", "passed", "held", "method", "url", "request_id", "deadline",
                 "started", "attempts", "follow_redirects", "permit_for")

    def __init__(self, pipeline: Pipeline, route: Route, method: str, url: str,
                 total: Optional[float]) -> None:
        self.pipeline = pipeline
        self.route = route  # where the call began
        self.current = route.compartment  # the latest hop's: it answers for the outcome
        self.passed: List[Compartment] = []  # other dependencies that answered with a redirect
        self.held: List[Bulkhead] = []  # the bulkheads a slot was taken of
        self.method = method
        self.url = url
        self.started = time.monotonic()
        self.attempts = 0
        self.follow_redirects: Optional[bool] = None  # set by the session's first send()
        self.permit_for: Optional[Compartment] = None  # a rate-limit permit taken at the start, not yet used
        # 128 random bits as hex (random's generator: a tenth of urandom's syscall;
        # reseeded in a forked child by the random module itself).
        self.request_id = "%032x" % _bits(128) \
            if pipeline.config.logging.include_request_id and MODE.request_ids else None
        self.deadline: Optional[deadlines.Deadline] = None
        if total is not None:
            self.deadline = deadlines.Deadline(total)
            deadlines.WATCHDOG.watch(self.deadline)

    def take(self, bulkhead: Bulkhead, state: Compartment, method: str, url: str) -> None:
        """A slot of ``bulkhead`` for the rest of the call, waiting at most its
        acquisition timeout and what is left of the deadline."""
        wait = bulkhead.timeout
        deadline = self.deadline
        if deadline is not None:
            wait = min(wait, max(0.0, deadline.remaining()))
        try:
            bulkhead.acquire(wait)
        except PoolTimeoutError as error:
            if deadline is not None and wait < bulkhead.timeout:
                late = DeadlineExceededError(
                    f"deadline of {deadline.total:g}s exceeded for {method} {loggable_url(url)} "
                    f"while waiting for a bulkhead slot ({bulkhead.capacity} busy); nothing was sent",
                )
                late.__suppress_context__ = True  # the bulkhead's own timeout says nothing more
                self.pipeline.rejected(state, bulkhead, method, url, late)
            self.pipeline.rejected(state, bulkhead, method, url, error)
        self.held.append(bulkhead)

    def stop(self) -> None:
        """The call is over: the watchdog forgets its deadline; the slots go back."""
        if self.deadline is not None:
            deadlines.WATCHDOG.cancel(self.deadline)
        unused, self.permit_for = self.permit_for, None
        if unused is not None and unused.limiter is not None:
            unused.limiter.answered(None, {}, None)  # never sent: frees the lone call after a pause
        held, self.held = self.held, []
        for bulkhead in reversed(held):
            bulkhead.release()

    def enter(self, state: Compartment, method: str, url: str) -> None:
        """A hop begins at ``state``'s dependency; on a redirect to another one,
        that one's throttle is asked and a slot of its bulkhead taken too, and
        the one before it answered."""
        current = self.current
        if state is current:
            return
        if current not in self.passed:
            self.passed.append(current)
        if state in self.passed:
            self.passed.remove(state)  # back at a dependency seen before: it answers now
        self.current = state
        self.pipeline._check_throttle(state, method, url)  # a refusal is the target's
        if state.bulkhead not in self.held:
            self.take(state.bulkhead, state, method, url)

    def hop(self, adapter: BaseAdapter, request: requests.PreparedRequest,
            kwargs: Mapping[str, Any]) -> requests.Response:
        """Layers 2-4 for one request to one dependency (the request, or a redirect)."""
        attempts = _Hop(self, adapter, request, kwargs)
        return attempts.finish(attempts.route.retry.run(attempts))


class _Hop(Attempts):
    """The attempts of one request to one origin: breaker, then adapter."""

    def __init__(self, call: Call, adapter: BaseAdapter,
                 request: requests.PreparedRequest, kwargs: Mapping[str, Any]) -> None:
        self.call = call
        self.pipeline = pipeline = call.pipeline
        self.deadline = call.deadline
        self.adapter = adapter
        self.request = request
        self.kwargs = dict(kwargs)
        self.stream = bool(kwargs.get("stream"))
        self.route = route = pipeline.routes.get(request.url or "")
        self.origin: Compartment = route.compartment
        if self.kwargs.get("timeout") is None:
            self.kwargs["timeout"] = route.default_timeout
        method = (request.method or "GET").upper()
        call.enter(self.origin, method, request.url or "")
        self.idempotent = method in IDEMPOTENT_METHODS or "Idempotency-Key" in request.headers
        body = request.body
        in_memory = body is None or isinstance(body, (bytes, str))
        self.replayable = in_memory or isinstance(getattr(request, "_body_position", None), int)
        hedging = pipeline.hedging
        # A file body cannot be read by two racers at once: only bytes are hedged.
        hedge = route.config.hedge
        self.hedged = in_memory and hedging is not None and hedge.enabled and method in hedge.methods
        self.last: Optional[Outcome] = None
        if self.origin.budget is not None:
            self.origin.budget.record_call()

    # -- one attempt --
    def attempt(self) -> Outcome:
        limiter = self.origin.limiter
        if limiter is not None:
            if self.call.permit_for is self.origin:
                self.call.permit_for = None  # taken when the call started (Pipeline.start)
            elif not self._permit(limiter):
                assert self.last is not None
                self.last.retry = False  # no permit in time for a retry: end with the last real outcome
                return self.last
        try:
            trial = self.origin.breaker.admit()
        except CircuitOpenError:
            if self.last is None:
                raise  # open before the first attempt: fail fast, nothing sent
            self.last.retry = False  # opened meanwhile: end with the last real outcome
            return self.last
        if self.last is not None:
            self.last.discard()  # its connection goes back; its error leaves no cycle
            if isinstance(getattr(self.request, "_body_position", None), int):
                rewind_body(self.request)  # a file body: back to where it started
        self.call.attempts += 1
        events = self.pipeline.events
        if events.listeners:
            events.emit("attempt_started", AttemptStarted(
                self.origin.origin, self.request.method or "", loggable_url(self.request.url or ""),
                self.request.headers.get("X-Request-ID"),  # type: ignore[arg-type, unused-ignore]
                self.call.attempts, self.request))
        sent_at = time.monotonic() if limiter is not None else 0.0
        delay = self._hedge_delay() if self.hedged and trial is None else None
        if delay is not None:
            assert self.pipeline.hedging is not None
            outcome = Race(self, self.pipeline.hedging, delay, self.route.config.hedge).run()
        else:
            outcome = self._send(trial)
        if self.last is not None and outcome.error is not None and cassette_miss(outcome.error):
            # A cassette recorded without our retries (with plain requests) holds one
            # answer per call, and none for this retry: end with the answer it replayed,
            # the one the recorded code saw, not with the tool's "not in the cassette".
            if events.listeners:
                self._tell(events, outcome)  # the attempt that began ends, as a failure
            self.call.attempts -= 1
            outcome.discard()
            self.last.retry = False
            return self.last
        if limiter is not None:
            response = outcome.response
            if response is None:
                limiter.answered(None, {}, None, sent_at)
            else:
                limiter.answered(response.status_code, response.headers, retry_after_seconds(response), sent_at)
        if outcome.retry and self.origin.breaker.is_open():
            outcome.retry = False
        outcome.attempts = self
        self.last = outcome
        if events.listeners:
            self._tell(events, outcome)
        return outcome

    def _tell(self, events: Events, outcome: Outcome) -> None:
        """``attempt_failed`` (if it failed) and ``attempt_finished`` for the attempt just made."""
        status = outcome.response.status_code if outcome.response is not None else None
        failed = outcome.error is not None or outcome.retry or status in self.route.failure_statuses
        # requests types header values as str | bytes (types-requests: str).
        fields = (self.origin.origin, self.request.method or "", loggable_url(self.request.url or ""),
                  self.request.headers.get("X-Request-ID"), self.call.attempts, outcome.reason, status,
                  outcome.error)
        if failed:
            events.emit("attempt_failed", AttemptFailed(*fields))  # type: ignore[arg-type, unused-ignore]
        events.emit("attempt_finished", AttemptFinished(*fields, failed, self.request))  # type: ignore[arg-type, unused-ignore]

    def _permit(self, limiter: RateLimiter) -> bool:
        """A permit for this attempt (see :meth:`Pipeline.permit`)."""
        return self.pipeline.permit(limiter, self.origin, self.deadline, self.request.method or "",
                                    self.request.url or "", self.last is None, self.request)

    def _hedge_delay(self) -> Optional[float]:
        """When to hedge this attempt, or ``None`` for no hedge."""
        assert self.pipeline.hedging is not None
        delay = self.pipeline.hedging.delay(self.origin, self.route.config.hedge)
        if delay is not None and self.deadline is not None and delay >= self.deadline.remaining():
            return None  # the deadline comes first
        return delay

    def clone(self) -> "_Hop":
        """A twin for a hedge: the same request and settings, its own copies."""
        twin = copy.copy(self)
        twin.request = self.request.copy()
        twin.kwargs = dict(self.kwargs)
        twin.last = None
        return twin

    def send_racer(self, cancel: deadlines.Deadline) -> Outcome:
        """One racer of a hedged attempt; firing ``cancel`` cancels it."""
        return self._send(None, cancel)

    def _send(self, trial: Optional[str], cancel: Optional[deadlines.Deadline] = None) -> Outcome:
        deadline = self.deadline
        if deadline is not None:
            left = deadline.remaining()
            if left <= 0:
                self.origin.breaker.record(trial, None)
                return self._expired()
            self._cap_timeout(left)
        # The handle whose firing shuts this attempt's socket: the call's
        # deadline, or a racer's own handle (which also fires at the deadline).
        watch = cancel if cancel is not None else deadline
        if watch is not None:
            deadlines.activate(watch)
        started = time.monotonic()
        try:
            response = self.adapter.send(self.request, **self.kwargs)
            try:
                if response.is_redirect:
                    if not self.stream or self.call.follow_redirects:
                        _drain_redirect(response)
                elif not self.stream:
                    # Read the body inside the attempt, so a body cut short can be
                    # retried, and within the deadline.
                    response.content  # noqa: B018
            except BaseException:
                response.close()  # its body read failed: its connection goes now, not at a gc
                raise
        except Exception as exc:
            # The read timeout is capped at the time left, so the socket may time
            # out a hair before the watchdog fires: both mean the deadline passed.
            if deadline is not None and (deadline.expired or deadline.remaining() <= 0):
                self.origin.breaker.record(trial, True)
                return self._expired(exc)
            if cancel is not None and cancel.expired:
                self.origin.breaker.record(trial, None)  # cancelled: another racer won
                return Outcome(error=exc, verdict=classify(exc), retry=False)
            verdict = classify(exc)
            self.origin.breaker.record(trial, True if verdict.breaker else None, time.monotonic() - started)
            return Outcome(error=exc, verdict=verdict, retry=self._may_retry(verdict))
        except BaseException:
            self.origin.breaker.record(trial, None)
            raise
        finally:
            if watch is not None:
                watch.detach()
                deadlines.activate(None)
        if deadline is not None and deadline.expired:
            # Shut down mid-headers, http.client can hand back a truncated "200 OK".
            response.close()
            self.origin.breaker.record(trial, True)
            return self._expired()
        if cancel is not None and cancel.expired:
            # Another racer won; this answer may be cut short: it says nothing.
            response.close()
            self.origin.breaker.record(trial, None)
            return Outcome(response=response, retry=False)
        status = response.status_code
        duration = time.monotonic() - started
        failed = status in self.route.failure_statuses
        self.origin.breaker.record(trial, failed, duration)
        if not failed and self.origin.latency is not None:
            self.origin.latency.add(duration)
        retry = status in self.route.retry_statuses and self.idempotent and self.replayable
        return Outcome(
            response=response, retry=retry,
            retry_after=retry_after_seconds(response) if retry else None,
        )

    def _cap_timeout(self, left: float) -> None:
        """No single connect or read may wait past the deadline."""
        timeout = self.kwargs.get("timeout")
        if isinstance(timeout, tuple):
            connect, read = timeout
            self.kwargs["timeout"] = (_least(connect, left), _least(read, left))
        elif timeout is None or isinstance(timeout, (int, float)):
            self.kwargs["timeout"] = _least(timeout, left)

    def _expired(self, cause: Optional[BaseException] = None) -> Outcome:
        assert self.deadline is not None
        error = DeadlineExceededError(
            f"deadline of {self.deadline.total:g}s exceeded for {self.request.method} "
            f"{loggable_url(self.request.url or '')}",
            request=self.request,
        )
        error.__cause__ = cause
        return Outcome(error=error, verdict=DEADLINE, retry=False)

    def _may_retry(self, verdict: Verdict) -> bool:
        if verdict.retry is RetryWhen.ALWAYS:
            return True  # never reached the server: the body was not consumed
        if verdict.retry is RetryWhen.IDEMPOTENT:
            return self.idempotent and self.replayable
        return False

    # -- between attempts --
    def may_wait(self, wait: float, outcome: Outcome) -> bool:
        """Whether to wait ``wait`` seconds and try again: not past the deadline,
        and only with a retry from the origin's budget."""
        deadline = self.deadline
        if deadline is not None and time.monotonic() + wait >= deadline.at:
            self._note("wait of %.3fs would pass the deadline", wait, outcome)
            return False
        budget = self.origin.budget
        if budget is not None and not budget.try_spend():
            if budget.refused == 1 or budget.refused % 100 == 0:  # not one line per refusal
                self._note("retry budget spent (%d refused so far)", budget.refused, outcome)
            return False
        return True

    def _note(self, why: str, value: Any, outcome: Outcome) -> None:
        log = self.pipeline.log
        if log.isEnabledFor(logging.WARNING):
            request_id = self.request.headers.get("X-Request-ID", "-")
            log.warning(
                "not retrying %s %s [request %s] after %s: " + why,
                self.request.method, loggable_url(self.request.url or ""), request_id,
                outcome.reason, value,
                extra={"request_id": request_id, "origin": self.origin.origin, "outcome": outcome.reason},
            )

    def before_wait(self, tries: int, wait: float, outcome: Outcome) -> None:
        self.origin.count("retries")
        events = self.pipeline.events
        if events.listeners:
            events.emit("retry_scheduled", RetryScheduled(
                self.origin.origin, self.request.method or "", loggable_url(self.request.url or ""),
                # requests types header values as str | bytes (types-requests: str).
                self.request.headers.get("X-Request-ID"),  # type: ignore[arg-type, unused-ignore]
                tries, wait, outcome.reason,
            ))
        log = self.pipeline.log
        if log.isEnabledFor(logging.WARNING):
            request_id = self.request.headers.get("X-Request-ID", "-")
            log.warning(
                "retrying %s %s [request %s]: attempt %d of %d failed with %s; waiting %.3fs",
                self.request.method, loggable_url(self.request.url or ""), request_id,
                tries, self.route.retry.config.max_attempts, outcome.reason, wait,
                extra={"request_id": request_id, "origin": self.origin.origin,
                       "attempt": tries, "outcome": outcome.reason, "wait": wait},
            )

    # -- the end --
    def finish(self, outcome: Outcome) -> requests.Response:
        """The last response, or the last error as the caller should see it."""
        # No cycle left for the garbage collector: the error's traceback holds the
        # frame that caught it, and through f_back every frame above it (the attempt's,
        # the retry loop's), which hold the outcome: so the outcome lets go of the error.
        error, outcome.error = outcome.error, None
        outcome.attempts = self.last = None
        if error is None:
            assert outcome.response is not None
            return outcome.response
        clear_frames(error)  # its frames are done: urllib3's cycle in them goes with them
        raised = to_raise(error, outcome.verdict)
        if raised is not error and getattr(raised, "request", None) is None:
            cast(Any, raised).request = self.request  # requests leaves it unset for body-phase errors
        try:
            if raised is error:
                raise error
            raise raised from error
        finally:
            del error, raised, outcome  # this frame is in the traceback of what it raises


def _drain_redirect(response: requests.Response) -> None:
    """Read a redirect's body inside the attempt, so the deadline bounds it
    (requests reads it later, once the socket is no longer watched: a
    trickling 302 outlived a 0.5 s deadline by seconds). Leniently, as
    requests' ``resolve_redirects`` does: a bad encoding must not stop the
    redirect; requests reads what is left raw."""
    try:
        response.content  # noqa: B018
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError, RuntimeError):
        pass


def _least(timeout: Optional[float], left: float) -> float:
    return left if timeout is None else min(timeout, left)


def describe(pipeline: Pipeline) -> Dict[str, Any]:
    """The layers in order with their settings (for introspection and tests);
    ``dependencies`` gives the same for each dependency with a config of its
    own, and ``compartments`` what this session shares with others right now."""
    config = pipeline.config
    result: Dict[str, Any] = {"layers": _layers(config)}
    if config.total_concurrency is not None:
        result["total_concurrency"] = config.total_concurrency
    if config.dependencies:
        result["dependencies"] = {
            name: {"origins": list(dependency.origins), "layers": _layers(dependency.config)}
            for name, dependency in config.dependencies.items()
        }
    result["compartments"] = [
        {"dependency": c.origin, "policy": c.policy, "breaker_state": c.breaker.state.value,
         "bulkhead_in_use": c.bulkhead.in_use, "bulkhead_capacity": c.bulkhead.capacity}
        for c in pipeline.routes.compartments()
    ]
    return result


def _layers(config: ClientConfig) -> List[Dict[str, Any]]:
    return [
        {"layer": "bulkhead", "max_concurrency": config.bulkhead.max_concurrency,
         "acquisition_timeout": config.bulkhead.acquisition_timeout, "per": "dependency"},
        {"layer": "retry", "max_attempts": config.retry.max_attempts,
         "retry_on_status": sorted(config.retry.retry_on_status),
         "budget_ratio": config.retry.budget_ratio,
         "hedge_delay": (config.hedge.delay if config.hedge.delay is not None else f"p{config.hedge.percentile * 100:g}")
         if config.hedge.enabled else None},
        {"layer": "circuit_breaker", "policy": config.circuit_breaker.policy,
         "failure_threshold": config.circuit_breaker.failure_threshold,
         "recovery_timeout": config.circuit_breaker.recovery_timeout,
         "permitted_calls_in_half_open": config.circuit_breaker.permitted_calls_in_half_open},
        {"layer": "adapter", "timeout": vars(config.timeout).copy()},
    ]
