"""What the integrations share. Flask and Django: which errors mean "the upstream is
unavailable, try again later", and the ``503`` answer they become. Prometheus and
OpenTelemetry: the number each breaker state is reported as. All: the error for a missing extra.

Both exceptions are raised before anything is sent, so answering ``503 Service
Unavailable`` with a ``Retry-After`` is honest: the client may retry later, and
nothing happened upstream.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from ..exceptions import CircuitOpenError, PoolTimeoutError, RateLimitedError

__all__ = ["BREAKER_STATES", "UNAVAILABLE", "POOL_RETRY_AFTER", "Unavailable", "unavailable", "retry_after_seconds", "missing_extra"]

#: The exceptions that become a ``503``: an open breaker (or a local refusal: throttling,
#: the rate limit), a full bulkhead.
UNAVAILABLE = (CircuitOpenError, PoolTimeoutError)

#: The number a metric reports for each breaker state.
BREAKER_STATES: Dict[str, int] = {"closed": 0, "open": 1, "half_open": 2}

#: ``Retry-After`` seconds for a :class:`PoolTimeoutError`: slots free up as calls end.
POOL_RETRY_AFTER = 1


@dataclass(frozen=True)
class Unavailable:
    """The ``503`` answer for one exception: ``Retry-After`` seconds and a JSON body."""

    retry_after: int
    reason: str  # "circuit_open", "rate_limited" or "pool_timeout"
    status: int = 503
    body: Dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> Dict[str, str]:
        """The response headers: ``Retry-After`` as whole seconds."""
        return {"Retry-After": str(self.retry_after)}


def retry_after_seconds(seconds: float) -> int:
    """``seconds`` rounded up to a whole number, at least 1 (``Retry-After`` is an integer,
    and ``0`` would invite an immediate retry while a trial call is in flight)."""
    try:
        whole = math.ceil(seconds)
    except (TypeError, ValueError, OverflowError):  # None, NaN, infinity: fall back to the floor
        return 1
    return max(1, whole)


def unavailable(error: BaseException) -> Optional[Unavailable]:
    """The ``503`` answer for ``error``, or ``None`` if it is not one of :data:`UNAVAILABLE`.

    The body names the reason and the wait, never the upstream origin: that is
    internal topology, and it is in the library's logs already.
    """
    if isinstance(error, RateLimitedError):
        seconds, reason = retry_after_seconds(error.retry_after), "rate_limited"
    elif isinstance(error, CircuitOpenError):
        seconds, reason = retry_after_seconds(error.retry_after), "circuit_open"
    elif isinstance(error, PoolTimeoutError):
        seconds, reason = POOL_RETRY_AFTER, "pool_timeout"
    else:
        return None
    body = {"error": "upstream unavailable", "reason": reason, "retry_after": seconds}
    return Unavailable(retry_after=seconds, reason=reason, body=body)


def missing_extra(module: str, package: str, extra: str, cause: ImportError) -> ImportError:
    """The ``ImportError`` to raise when ``module`` cannot import its framework."""
    error = ImportError(
        f"{module} needs {package}, which is not installed: "
        f"pip install 'resilient_requests[{extra}]'"
    )
    error.__cause__ = cause
    return error
