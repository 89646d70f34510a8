"""Named configurations for common situations.

| preset            | connect/read/write/pool s | total s | attempts, min/max wait s, mult. | breaker | bulkhead |
|-------------------|---------------------------|---------|---------------------------------|---------|----------|
| default           | 10 / 30 / 15 / 5          | none    | 3, 1 / 60, 2.0                  | 5, 30   | 50, 30   |
| high_latency      | 30 / 120 / 60 / 15        | 900     | 5, 2 / 300, 2.0                 | 10, 120 | 20, 60   |
| fast_microservice | 2 / 5 / 5 / 1             | 15      | 3, 0.5 / 10, 2.0                | 8, 10   | 100, 5   |
| batch_processing  | 10 / 300 / 120 / 30       | 1800    | 10, 5 / 600, 1.5                | 15, 180 | 5, 120   |
| web               | 1 / 1.25 / 2 / 1          | 4       | 3, 0.05 / 0.5, 2.0              | 5, 5    | 4, 0.05  |

Every preset's breaker counts consecutive failed attempts. Under independent
faults at rate ``p`` a run of ``k`` of them starts about once per
``1 / ((1 - p) * p**k)`` attempts: at 10% faults once per 1.1e3 attempts for
k=3, 1.1e5 for k=5, 1.1e8 for k=8, 1.1e10 for k=10; and a call fails only when
all its attempts fail (``p**attempts``: 1% with two, 0.1% with three). Each
preset keeps ``failure_threshold`` above ``max_attempts`` (one call's retries
never open the breaker on their own); a hard outage opens it within 3 calls
while calls retry, and within ``failure_threshold`` calls when none may (at most
10; batch_processing's 15 aside). The reasoning, and why not the ``rate``
policy, is in docs/reference/presets.md.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

from .config import (
    BulkheadConfig,
    CircuitBreakerConfig,
    ClientConfig,
    RateLimitConfig,
    RetryConfig,
    ThrottleConfig,
    TimeoutConfig,
)

__all__ = [
    "get_default_config",
    "get_high_latency_config",
    "get_fast_microservice_config",
    "get_batch_processing_config",
    "get_web_config",
    "preset",
    "PRESET_NAMES",
]


def get_default_config(base_url: Optional[str] = None) -> ClientConfig:
    """The library's defaults."""
    return ClientConfig(base_url=base_url)


def get_high_latency_config(base_url: Optional[str] = None) -> ClientConfig:
    """Slow, distant links (satellite, intercontinental, overloaded partners):
    long timeouts, patient retries, few concurrent calls."""
    return ClientConfig(
        base_url=base_url,
        timeout=TimeoutConfig(connect=30.0, read=120.0, write=60.0, pool=15.0, total=900.0),
        retry=RetryConfig(max_attempts=5, min_wait=2.0, max_wait=300.0, multiplier=2.0),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=10, recovery_timeout=120.0),
        bulkhead=BulkheadConfig(max_concurrency=20, acquisition_timeout=60.0),
    )


def get_fast_microservice_config(base_url: Optional[str] = None) -> ClientConfig:
    """Internal services on a fast network: fail fast (short timeouts, a 15 s
    deadline, a 10 s open period), many threads, and shed load locally when a
    service accepts too few calls (adaptive throttling).

    - three attempts, the retries after up to 0.5 s and 1 s (full jitter):
      with 10% random 5xx a call fails only when all three meet a fault (0.1%);
      two attempts (the seed's choice) lose 1% of calls, the whole of a 99% goal.
      The retry budget (20% of calls) covers the ~11% retries this needs.
    - the breaker opens after 8 consecutive failed attempts: a hard outage opens
      it within 3 calls (8 calls if no call may retry), while a 10% fault rate
      makes a run of 8 about once in 10^8 attempts (a day at 1,000 attempts a
      second). The seed's 3 opened by chance about once per 1,100 attempts and
      then refused every call for 10 s: 22-45% of calls succeeded under 10%
      random 5xx from 32 threads (``python -m bench``, scenario 5).
    - adaptive throttling (k=2) sheds calls only while fewer than half succeed:
      at 10% faults 99.9% of calls succeed and nothing is shed.
    """
    return ClientConfig(
        base_url=base_url,
        timeout=TimeoutConfig(connect=2.0, read=5.0, write=5.0, pool=1.0, total=15.0),
        retry=RetryConfig(max_attempts=3, min_wait=0.5, max_wait=10.0, multiplier=2.0),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=8, recovery_timeout=10.0),
        bulkhead=BulkheadConfig(max_concurrency=100, acquisition_timeout=5.0),
        throttle=ThrottleConfig(enabled=True),
    )


def get_batch_processing_config(base_url: Optional[str] = None) -> ClientConfig:
    """Long-running batch jobs: very patient, gentle on the upstream; a 429
    with ``Retry-After`` pauses the whole job's calls to that API (cool-down)."""
    return ClientConfig(
        base_url=base_url,
        timeout=TimeoutConfig(connect=10.0, read=300.0, write=120.0, pool=30.0, total=1800.0),
        retry=RetryConfig(max_attempts=10, min_wait=5.0, max_wait=600.0, multiplier=1.5),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=15, recovery_timeout=180.0),
        bulkhead=BulkheadConfig(max_concurrency=5, acquisition_timeout=120.0),
        # A 429/503 with Retry-After pauses every thread of the job until then
        # (waiting, up to the pause's own cap), instead of each collecting its own.
        rate_limit=RateLimitConfig(cooldown=True, max_wait=300.0),
    )


def get_web_config(base_url: Optional[str] = None) -> ClientConfig:
    """Request/response views on threaded workers (Django, Flask; gunicorn
    gthread, uWSGI, waitress), where every second a dependency holds a thread
    is a second that thread serves nobody.

    - ``total=4`` s, ``read=1.25`` s, ``connect=1`` s: a view answers in seconds
      or not at all. Microsoft's standard resilience handler bounds a whole
      request/response exchange at 30 s with 10 s per attempt; a view that
      calls a dependency has to answer its own client well within that.
    - three attempts, the retries 0-50 ms and 0-100 ms after (full jitter):
      with 10% random 5xx a call fails only when all three meet a fault (0.1%);
      two attempts (the seed's choice) lose 1% of calls, the whole of a 99%
      goal. The read timeout keeps the seed's rule that every attempt's read
      fits the deadline: it was 2 s for two attempts, and is 1.25 s for three
      (3 x 1.25 s plus both waits stay within the 4 s).
    - the breaker opens after 5 consecutive failed attempts (a hard outage: the
      second call) and stays open 5 s, also after a failed trial (no growth: a
      dependency that is back is refused for at most 5 s, not the 30 s of the
      default preset or a period grown during a long outage); a trial every 5 s
      holds one thread for at most the 4 s deadline. Ten percent random 5xx
      make five in a row about once per 110,000 attempts, each costing ~5.6 s
      of refusals: under 1% of calls at up to ~180 attempts a second per
      process and dependency, far more than a view makes (8 at 1,000 a second;
      see fast_microservice).
    - 4 slots per dependency, waited for at most 50 ms: half of an 8-thread
      worker, so a hung dependency leaves the other half free (Resilience4j's
      semaphore bulkhead waits 0 by default; a short wait keeps a healthy but
      busy dependency from refusing calls). The Flask extension and the Django
      integration size it to half the worker's threads when they can tell.
    """
    return ClientConfig(
        base_url=base_url,
        timeout=TimeoutConfig(connect=1.0, read=1.25, write=2.0, pool=1.0, total=4.0),
        retry=RetryConfig(max_attempts=3, min_wait=0.05, max_wait=0.5, multiplier=2.0),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=5, recovery_timeout=5.0),
        bulkhead=BulkheadConfig(max_concurrency=4, acquisition_timeout=0.05),
    )


_PRESETS: Dict[str, Callable[[Optional[str]], ClientConfig]] = {
    "default": get_default_config,
    "high_latency": get_high_latency_config,
    "fast_microservice": get_fast_microservice_config,
    "batch_processing": get_batch_processing_config,
    "web": get_web_config,
}

#: The names :func:`preset` accepts.
PRESET_NAMES = tuple(_PRESETS)


def preset(name: str, base_url: Optional[str] = None) -> ClientConfig:
    """The configuration called ``name``; ``ValueError`` lists the valid names."""
    try:
        factory = _PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown preset {name!r}; valid presets: {', '.join(PRESET_NAMES)}"
        ) from None
    return factory(base_url)
