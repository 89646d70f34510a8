"""The retry loop: one ``backoff.on_predicate`` decorator, built once per policy,
when the first retry needs it.

Each attempt returns an :class:`Outcome` instead of raising, so one predicate
(``outcome.retry``) decides whether to go again, and ``backoff`` owns the
counting, the waiting and the give-up. The waits come from :func:`waits`, a
``backoff`` wait generator (exponential, with ``backoff.full_jitter``).

We pass ``jitter=None`` to ``backoff`` and jitter inside :func:`waits` instead:
``backoff`` would otherwise jitter every value the generator yields, including a
server's ``Retry-After``, which must be honoured as sent (capped at ``max_wait``).

``backoff`` is imported when a call first needs a retry, not with this module:
it imports ``asyncio`` (for its async decorators), about 10 ms of every
``import resilient_requests`` for code that may never retry. The first attempt
is made before the loop is entered (see :meth:`RetryLoop.run`).
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Generator, Optional

import requests
from urllib3.util.retry import Retry

from .config import RetryConfig
from .errors import Verdict, causes
from .testmode import MODE

if TYPE_CHECKING:
    from backoff.types import Details

__all__ = ["Outcome", "RetryLoop", "waits", "retry_after_seconds", "clear_frames"]

#: Statuses whose Retry-After we honour.
RETRY_AFTER_STATUSES = frozenset({429, 503})

_PARSER = Retry(0)  # only for parse_retry_after (seconds or an HTTP-date)
# urllib3 caps Retry-After at 6 h (since 2.x); our cap is the caller's max_wait,
# so lift urllib3's to something finite that no max_wait comes near.
_PARSER.retry_after_max = 10**12


@dataclass
class Outcome:
    """What one attempt produced, and whether to try again."""

    response: Optional[requests.Response] = None
    error: Optional[BaseException] = None  # the original exception
    verdict: Optional[Verdict] = None  # the classification of ``error``
    retry: bool = False
    retry_after: Optional[float] = None  # seconds the server asked us to wait
    attempts: Optional["Attempts"] = None  # who made it: asked before each wait

    def discard(self) -> None:
        """This outcome will not be the call's (it is retried, or lost a race):
        close its response, so its connection goes back to the pool, and let go
        of its error, its frames cleared (see :func:`clear_frames`). Listeners
        have seen the error already; a listener that keeps it can still print it."""
        if self.response is not None:
            self.response.close()
        if self.error is not None:
            clear_frames(self.error)
        self.error = self.attempts = None  # the frames above the attempt's hold this outcome

    @property
    def reason(self) -> str:
        """A short description for logs: the status or the kind of failure."""
        if self.response is not None:
            return f"{self.response.status_code} {self.response.reason}"
        if self.verdict is not None:
            return f"{self.verdict.name} ({type(self.error).__name__})"
        return "unknown"


def clear_frames(error: BaseException) -> None:
    """Clear the local variables of the frames in the tracebacks of ``error``
    and of its chain (``traceback.clear_frames``): the attempt's frame that
    caught it, requests' and urllib3's, all finished. The tracebacks still print.

    urllib3 keeps the exception it handles in a local of a frame that the
    exception's traceback holds: a reference cycle. Every frame also holds its
    caller (``f_back``), so that cycle kept the stack above it alive too (the
    hop, the retry loop, the outcomes, the connection pool with its sockets)
    until the garbage collector ran. Cleared, all of it goes when ``error`` goes."""
    for exc in causes(error):
        traceback.clear_frames(exc.__traceback__)


def retry_after_seconds(response: requests.Response) -> Optional[float]:
    """The response's ``Retry-After`` in seconds (429/503 only), or ``None``."""
    if response.status_code not in RETRY_AFTER_STATUSES:
        return None
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(_PARSER.parse_retry_after(value)))
    except Exception:  # an unparseable header is ignored, as urllib3 would
        return None


def waits(
    min_wait: float, max_wait: float, multiplier: float, full_jitter: bool,
) -> Generator[Optional[float], Optional[Outcome], None]:
    """A backoff wait generator: ``min_wait * multiplier**(n-1)`` capped at
    ``max_wait``, fully jittered if asked; a ``Retry-After`` replaces it. Ends
    (and so ends the loop) when the attempts refuse the wait: see ``may_wait``."""
    # Not backoff.expo: it computes factor * base ** n, which never reaches
    # max_value when min_wait is 0 and raises OverflowError once n is large
    # (or at once for a huge multiplier). Multiplying floats saturates instead.
    computed = min_wait
    outcome = yield None  # backoff primes us with send(None)
    while True:
        computed = min(computed, max_wait)
        if outcome is not None and outcome.retry_after is not None:
            wait = min(outcome.retry_after, max_wait)
        else:
            wait = _full_jitter(computed) if full_jitter else computed
        if not MODE.waits:
            wait = 0.0  # test mode: attempts count, nobody sleeps
        if outcome is not None and outcome.attempts is not None and not outcome.attempts.may_wait(wait, outcome):
            return  # backoff gives up on StopIteration: the call ends with this outcome
        outcome = yield wait
        if computed < max_wait:
            computed *= multiplier


def _try_again(outcome: Outcome) -> bool:
    return outcome.retry and MODE.retries


def _run_attempt(call: "Attempts") -> Outcome:
    made, call.made = call.made, None
    return made if made is not None else call.attempt()


def _before_wait(details: Details) -> None:
    details["args"][0].before_wait(details["tries"], details["wait"], details["value"])


class Attempts:
    """What the loop drives: one attempt at a time, told before each wait."""

    #: The first attempt, made before backoff's loop was entered (see ``RetryLoop.run``).
    made: Optional[Outcome] = None

    def attempt(self) -> Outcome:  # pragma: no cover - interface
        """Make one attempt."""
        raise NotImplementedError

    def may_wait(self, wait: float, outcome: Outcome) -> bool:
        """Whether to wait ``wait`` seconds and try again (the deadline, the budget)."""
        return True

    def before_wait(self, tries: int, wait: float, outcome: Outcome) -> None:  # pragma: no cover
        """Called after attempt ``tries`` failed, before sleeping ``wait`` seconds."""


def _full_jitter(value: float) -> float:
    import backoff  # imported already: waits runs inside backoff's loop

    return float(backoff.full_jitter(value))


class RetryLoop:
    """Runs attempts until one needs no retry or ``max_attempts`` is reached."""

    def __init__(self, config: RetryConfig) -> None:
        self.config = config
        self._loop: Optional[Callable[[Attempts], Outcome]] = None

    def _build(self) -> Callable[[Attempts], Outcome]:
        import backoff

        config = self.config
        loop: Callable[[Attempts], Outcome] = backoff.on_predicate(
            # backoff types a wait generator as Generator[float, None, None], but it
            # primes it with send(None) and sends it each return value, as waits expects.
            waits,  # type: ignore[arg-type]
            _try_again,
            max_tries=config.max_attempts,
            jitter=None,
            logger=None,
            on_backoff=_before_wait,
            min_wait=config.min_wait,
            max_wait=config.max_wait,
            multiplier=config.multiplier,
            full_jitter=config.jitter,
        )(_run_attempt)
        self._loop = loop
        return loop

    def run(self, call: Attempts) -> Outcome:
        """Drive ``call`` to its last outcome. The first attempt is made here:
        most calls need no other, and backoff's loop (a wait generator and its
        details per call) is entered only for a retry, with that attempt as its first."""
        outcome = call.attempt()
        if not (outcome.retry and MODE.retries) or self.config.max_attempts <= 1:
            return outcome
        call.made = outcome
        loop = self._loop
        if loop is None:
            loop = self._build()  # two threads may both build one: either will do
        return loop(call)
