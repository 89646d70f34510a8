"""Code run in worker processes by test_shared_state (importable under 'spawn')."""
from __future__ import annotations

from typing import Any, Optional

import resilient_requests as rr


def config(redis_url: str, threshold: int, recovery: float) -> rr.ClientConfig:
    """One attempt per call, a shared breaker, no local caching of its state."""
    return rr.ClientConfig(
        retry=rr.RetryConfig(max_attempts=1),
        circuit_breaker=rr.CircuitBreakerConfig(
            failure_threshold=threshold, recovery_timeout=recovery, storage=redis_url,
            namespace="test-workers", state_cache_ttl=0.0,
        ),
    )


def call(url: str, redis_url: str, threshold: int, recovery: float, barrier: Optional[Any] = None) -> str:
    """Make one GET in a fresh session; the status, or 'open' if it failed fast."""
    with rr.ResilientSession(config(redis_url, threshold, recovery)) as session:
        if barrier is not None:
            barrier.wait(timeout=30)
        try:
            return str(session.get(url, timeout=(2, 10)).status_code)
        except rr.CircuitOpenError:
            return "open"
