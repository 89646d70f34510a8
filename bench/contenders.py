"""The five HTTP clients the benchmarks compare, built the same way everywhere.

=================  ==========================================================
``plain``          ``requests.Session``, ``HTTPAdapter`` pool sized for the threads
``urllib3-retry``  the same, with ``max_retries=Retry(total=3, backoff_factor=0.5,
                   status_forcelist=[500, 502, 503, 504])``
``naive``          ``backoff.on_exception`` (built once) around
                   ``pybreaker.CircuitBreaker(...).call(session.get, ...)``, a 5xx
                   raised as ``HTTPError`` so that both count it as a failure
``resilient``      ``ResilientSession()`` (the defaults)
``resilient-fast`` ``ResilientSession(preset("fast_microservice"))``
``resilient-50ms`` (an extra row where backoff matters) the defaults, ``min_wait=0.05``
``resilient-total`` (an extra row in the happy path) the defaults, ``total=15`` (a deadline)
=================  ==========================================================

Timeouts: the requests-based contenders pass ``timeout=(10, 30)``, the
defaults' connect/read; the ``fast_microservice`` preset has its own (2, 5).
Backoff: urllib3 waits 0, 1, 2 s; the naive stack and the defaults wait a
full-jittered draw from [0, 1] then [0, 2] s; the preset [0, 0.5].
Breakers: 5 consecutive failures open pybreaker and the defaults (the preset:
3); a scenario may shorten every breaker's recovery timeout, or scale every
backoff, alike (:class:`Tuning`): ``min_wait=w`` makes urllib3 wait 0, w, 2w and
the others draw from [0, w] then [0, 2w].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import backoff
import pybreaker
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

import resilient_requests as rr

__all__ = [
    "NAMES",
    "LABELS",
    "Tuning",
    "Client",
    "build",
    "budget_refusals",
    "outcome",
    "OK",
    "FAILED",
    "REJECTED",
]

NAMES = ("plain", "urllib3-retry", "naive", "resilient", "resilient-fast")
LABELS = {
    "plain": "requests.Session (plain)",
    "urllib3-retry": "requests + urllib3 Retry",
    "naive": "backoff + pybreaker (naive)",
    "resilient": "ResilientSession()",
    "resilient-fast": "ResilientSession(fast_microservice)",
    "resilient-50ms": "ResilientSession(min_wait=0.05)",  # an extra row in some scenarios
    "resilient-total": "ResilientSession(total=15 s)",  # the cost of a deadline
}
#: connect/read timeouts of the requests-based contenders: ``TimeoutConfig()``'s.
TIMEOUT: Tuple[float, float] = (10.0, 30.0)
#: urllib3's ``backoff_factor``: waits of 0, 1, 2 s between its retries.
URLLIB3_BACKOFF = 0.5
#: The naive stack's ``backoff.expo`` factor: as ``RetryConfig.min_wait``.
NAIVE_FACTOR = 1.0

# What one call came to, as its caller sees it.
OK, FAILED, REJECTED = "ok", "failed", "rejected"
_REJECTIONS = (rr.CircuitOpenError, rr.PoolTimeoutError, pybreaker.CircuitBreakerError)


@dataclass(frozen=True)
class Tuning:
    """A scenario's changes to the contenders, applied to all alike."""

    pool: int = 10  # pooled connections per origin for the requests-based contenders
    recovery_timeout: Optional[float] = None  # every breaker's; None = each one's default
    min_wait: Optional[float] = (
        None  # every contender's backoff scale (see _backoff); None = defaults
    )
    max_concurrency: Optional[int] = None  # ResilientSession's bulkhead
    acquisition_timeout: Optional[float] = None


@dataclass
class Client:
    """One contender, ready: ``get(url)`` is what the benchmark times."""

    name: str
    get: Callable[[str], requests.Response]
    session: requests.Session

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)

    def close(self) -> None:
        self.session.close()


def build(name: str, tuning: Tuning = Tuning()) -> Client:
    """The contender called ``name``, with ``tuning`` applied."""
    builders = {
        "plain": _plain,
        "urllib3-retry": _urllib3_retry,
        "naive": _naive,
        "resilient": lambda t: _resilient("resilient", rr.ClientConfig(), t),
        "resilient-fast": lambda t: _resilient("resilient-fast", rr.preset("fast_microservice"), t),
        "resilient-total": lambda t: _resilient(
            "resilient-total", rr.ClientConfig(timeout=rr.TimeoutConfig(total=15.0)), t
        ),
        "resilient-50ms": lambda t: _resilient(
            "resilient-50ms", rr.ClientConfig(), dataclasses.replace(t, min_wait=0.05)
        ),
    }
    return builders[name](tuning)


def budget_refusals(client: Client) -> Optional[int]:
    """Retries a ResilientSession's retry budget refused so far (None for others).
    Reads the session's per-origin state: introspection, not public API."""
    if not isinstance(client.session, rr.ResilientSession):
        return None
    compartments = client.session._pipeline.routes.compartments()  # noqa: SLF001 - read-only
    return sum(state.budget.refused for state in compartments if state.budget is not None)


def outcome(client: Client, url: str) -> str:
    """Call ``client.get(url)``: ``OK`` (a 200), ``REJECTED`` (failed fast by a
    breaker or bulkhead) or ``FAILED`` (any other error or status)."""
    try:
        response = client.get(url)
    except _REJECTIONS:
        return REJECTED
    except Exception:
        return FAILED
    return OK if response.status_code == 200 else FAILED


# -- the builders --


def _session(tuning: Tuning, retries: Retry | int = 0) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(
        pool_connections=4, pool_maxsize=max(tuning.pool, 10), max_retries=retries
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _with_timeout(session: requests.Session) -> Callable[[str], requests.Response]:
    def get(url: str) -> requests.Response:
        return session.get(url, timeout=TIMEOUT)

    return get


def _plain(tuning: Tuning) -> Client:
    session = _session(tuning)
    return Client("plain", _with_timeout(session), session)


def _urllib3_retry(tuning: Tuning) -> Client:
    factor = URLLIB3_BACKOFF if tuning.min_wait is None else tuning.min_wait / 2
    retry = Retry(total=3, backoff_factor=factor, status_forcelist=[500, 502, 503, 504])
    session = _session(tuning, retry)
    return Client("urllib3-retry", _with_timeout(session), session)


def _naive(tuning: Tuning) -> Client:
    """What people write first: a retry decorator around a breaker's ``call``."""
    session = _session(tuning)
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=tuning.recovery_timeout or 30.0)

    def once(url: str) -> requests.Response:
        response = session.get(url, timeout=TIMEOUT)
        if response.status_code >= 500:
            response.raise_for_status()  # a 5xx counts as a failure for both layers
        return response

    factor = NAIVE_FACTOR if tuning.min_wait is None else tuning.min_wait

    @backoff.on_exception(backoff.expo, requests.RequestException, max_tries=3, factor=factor)
    def get(url: str) -> requests.Response:
        return breaker.call(once, url)

    return Client("naive", get, session)


def _resilient(name: str, config: rr.ClientConfig, tuning: Tuning) -> Client:
    config = _tuned(config, tuning)
    # Each contender keeps its own breakers and budgets: two contenders calling
    # the one upstream origin would otherwise share a compartment (by design,
    # the state is per dependency in the process; here each must be measured alone).
    session = rr.ResilientSession(config, isolated=True)
    return Client(name, session.get, session)


def _tuned(config: rr.ClientConfig, tuning: Tuning) -> rr.ClientConfig:
    """``config`` with the tuning's changes (each checked by the config classes)."""
    if tuning.recovery_timeout is not None:
        config = config.replace(
            circuit_breaker=dataclasses.replace(
                config.circuit_breaker, recovery_timeout=tuning.recovery_timeout
            )
        )
    if tuning.min_wait is not None:
        config = config.replace(
            retry=dataclasses.replace(
                config.retry,
                min_wait=tuning.min_wait,
                max_wait=max(tuning.min_wait, config.retry.max_wait),
            )
        )
    if tuning.max_concurrency is not None or tuning.acquisition_timeout is not None:
        bulkhead = config.bulkhead
        config = config.replace(
            bulkhead=rr.BulkheadConfig(
                max_concurrency=tuning.max_concurrency or bulkhead.max_concurrency,
                acquisition_timeout=(
                    bulkhead.acquisition_timeout
                    if tuning.acquisition_timeout is None
                    else tuning.acquisition_timeout
                ),
            )
        )
    return config
