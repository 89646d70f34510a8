"""How big each scenario is: the full run, and ``--quick`` (~70 s in all)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

__all__ = ["Plan", "FULL", "QUICK"]


@dataclass(frozen=True)
class Plan:
    """Every count and duration a scenario reads (durations in seconds)."""

    name: str
    # 1. happy path: rounds of `happy_batch` sequential GETs per contender
    happy_rounds: int
    happy_batch: int
    profile_calls: int
    # 2. concurrency: per thread count, rounds of a `window` after a `warm` period
    thread_counts: Tuple[int, ...]
    conc_rounds: int
    conc_warm: float
    conc_window: float
    # 3. fail fast: rounds of `fast_batch` timed calls per contender
    fast_rounds: int
    fast_batch: int
    # 4. outage: healthy, outage, recovery phases, `outage_rounds` times. The outage is
    # not a multiple of the breakers' 1 s recovery timeout, so that recovery does not
    # coincide with a half-open trial: the wait after it is then a typical one.
    outage_threads: int
    outage_healthy: float
    outage_length: float
    outage_after: float
    outage_rounds: int
    # 5. transient faults: `flaky_calls` calls from `flaky_threads` threads
    flaky_threads: int
    flaky_calls: int
    flaky_rounds: int
    # 6. memory: calls through one session, in a fresh process per contender
    memory_calls: int
    # 7. import time: fresh interpreters per module
    import_rounds: int
    # 8. failure rate: `rate_trials` trials of `rate_calls` sequential calls per policy
    rate_trials: int
    rate_calls: int
    # 9. slow replies: calls at a fixed rate on a pool of `slow_threads` workers, healthy
    # for `slow_healthy` s (at least `minimum_calls` calls), then the reply delay ramps
    # from 5 ms to 2 s over `slow_length` s
    slow_threads: int
    slow_healthy: float
    slow_length: float
    slow_rounds: int
    # 10. hedging: `hedge_calls` calls from `hedge_threads` threads per contender and round
    hedge_threads: int
    hedge_calls: int
    hedge_rounds: int
    # 11. compartments: `compart_tasks` calls per contender, each through a new session
    # (in `compart_task_rounds` interleaved rounds); then `compart_rounds` rounds of up to
    # `compart_calls` sequential calls to a healthy dependency with nothing hung and with
    # another dependency's bulkhead full, each phase stopping after `compart_phase_limit` s
    compart_tasks: int
    compart_task_rounds: int
    compart_rounds: int
    compart_calls: int
    compart_phase_limit: float


FULL = Plan(
    name="full",
    happy_rounds=40,
    happy_batch=250,
    profile_calls=3000,
    thread_counts=(1, 4, 16, 64),
    conc_rounds=4,
    conc_warm=0.3,
    conc_window=1.5,
    fast_rounds=20,
    fast_batch=500,
    outage_threads=16,
    outage_healthy=1.0,
    outage_length=5.5,
    outage_after=3.0,
    outage_rounds=3,
    flaky_threads=32,
    flaky_calls=3000,
    flaky_rounds=3,
    memory_calls=100_000,
    import_rounds=15,
    rate_trials=40,
    rate_calls=200,
    slow_threads=64,
    slow_healthy=0.8,
    slow_length=6.0,
    slow_rounds=3,
    hedge_threads=4,
    hedge_calls=1200,
    hedge_rounds=3,
    compart_tasks=300,
    compart_task_rounds=3,
    compart_rounds=20,
    compart_calls=50,
    compart_phase_limit=0.4,
)

QUICK = Plan(
    name="quick",
    happy_rounds=6,
    happy_batch=80,
    profile_calls=300,
    thread_counts=(1, 4, 16, 64),
    conc_rounds=1,
    conc_warm=0.05,
    conc_window=0.2,
    fast_rounds=3,
    fast_batch=200,
    outage_threads=16,
    outage_healthy=0.2,
    outage_length=1.5,
    outage_after=1.2,
    outage_rounds=1,
    flaky_threads=32,
    flaky_calls=192,
    flaky_rounds=1,
    memory_calls=1500,
    import_rounds=2,
    rate_trials=10,
    rate_calls=200,
    slow_threads=64,
    slow_healthy=0.4,
    slow_length=3.0,
    slow_rounds=1,
    hedge_threads=4,
    hedge_calls=400,
    hedge_rounds=1,
    compart_tasks=60,
    compart_task_rounds=1,
    compart_rounds=8,
    compart_calls=40,
    compart_phase_limit=0.2,
)
