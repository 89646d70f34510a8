"""Code run in worker processes by the shared-state tests (importable under 'spawn').

``python -m tests.shared_worker URL REDIS_URL THRESHOLD RECOVERY`` makes one such
call in a process of its own and prints its result and that process's
``time.time()``. With ``SHARED_WORKER_CLOCK_SKEW=<seconds>`` in its environment,
that process's wall clock runs that many seconds ahead, as a host whose clock is
wrong would have it: ``time.time()`` and ``datetime.now()`` (which pybreaker
uses) both. The package under test never reads that variable; it is why the
package is imported only inside the functions, after the clock is set.
"""
from __future__ import annotations

import datetime
import os
import sys
import time
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    import resilient_requests as rr

SKEW_VARIABLE = "SHARED_WORKER_CLOCK_SKEW"


def config(redis_url: str, threshold: int, recovery: float) -> "rr.ClientConfig":
    """One attempt per call, a shared breaker, no local caching of its state."""
    import resilient_requests as rr

    return rr.ClientConfig(
        retry=rr.RetryConfig(max_attempts=1),
        circuit_breaker=rr.CircuitBreakerConfig(
            failure_threshold=threshold, recovery_timeout=recovery, storage=redis_url,
            namespace="test-workers", state_cache_ttl=0.0,
        ),
    )


def call(url: str, redis_url: str, threshold: int, recovery: float, barrier: Optional[Any] = None) -> str:
    """Make one GET in a fresh session; the status, or 'open' if it failed fast."""
    import resilient_requests as rr

    with rr.ResilientSession(config(redis_url, threshold, recovery)) as session:
        if barrier is not None:
            barrier.wait(timeout=30)
        try:
            return str(session.get(url, timeout=(2, 10)).status_code)
        except rr.CircuitOpenError:
            return "open"


def skew_clock(seconds: float) -> None:
    """Make this process's wall clock run ``seconds`` ahead (before pybreaker is imported)."""
    real_time, real_datetime = time.time, datetime.datetime

    def ahead() -> float:
        return real_time() + seconds

    class Ahead(real_datetime):
        @classmethod
        def now(cls, tz: Optional[datetime.tzinfo] = None) -> datetime.datetime:  # type: ignore[override]
            return real_datetime.fromtimestamp(ahead(), tz)

        @classmethod
        def utcnow(cls) -> datetime.datetime:  # type: ignore[override]
            return real_datetime.fromtimestamp(ahead(), datetime.timezone.utc).replace(tzinfo=None)

    time.time = ahead  # type: ignore[assignment]
    datetime.datetime = Ahead  # type: ignore[misc]


if __name__ == "__main__":
    skew = os.environ.get(SKEW_VARIABLE)
    if skew:
        skew_clock(float(skew))
    url, redis_url, threshold, recovery = sys.argv[1:5]
    print(call(url, redis_url, int(threshold), float(recovery)), repr(time.time()))
