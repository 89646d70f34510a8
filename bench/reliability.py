"""Figures for docs/concepts/reliability.md: the deadline's overrun and the
retry budget's effect on a server that fails half its requests.

    python -m bench.reliability

Loopback only; every server and session is closed before it returns.
"""
from __future__ import annotations

import random
import statistics
import time
from typing import Dict, List

import resilient_requests as rr
from resilient_requests.testing import FaultServer, Trickle, ok, status


def deadline_overruns(rounds: int = 20, total: float = 0.5) -> List[float]:
    """Seconds past ``total`` at which a call to a trickling server raised."""
    overruns = []
    config = rr.ClientConfig(
        timeout=rr.TimeoutConfig(read=5.0, total=total),
        circuit_breaker=rr.CircuitBreakerConfig(failure_threshold=10_000),
    )
    with FaultServer() as server, rr.ResilientSession(config) as session:
        server.route("/slow", Trickle(chunk=b"a", every=0.05, count=1000))
        for _ in range(rounds):
            started = time.monotonic()
            try:
                session.get(server.url("/slow"))
            except rr.DeadlineExceededError:
                overruns.append(time.monotonic() - started - total)
    return overruns


def requests_per_call(budget: bool, calls: int = 2000, seed: int = 7) -> Dict[str, float]:
    """Requests received per call, and the share of calls that succeeded, against
    an upstream failing a random half of its requests."""
    rng = random.Random(seed)
    script = [status(503) if rng.random() < 0.5 else ok() for _ in range(1000)]
    config = rr.ClientConfig(
        retry=rr.RetryConfig(min_wait=0.0, max_wait=0.0, budget_ratio=0.2 if budget else None),
        circuit_breaker=rr.CircuitBreakerConfig(failure_threshold=10_000),
    )
    with FaultServer() as server, rr.ResilientSession(config) as session:
        server.route("/half", *script, cycle=True)
        succeeded = sum(session.get(server.url("/half")).ok for _ in range(calls))
        return {"requests_per_call": server.hits("/half") / calls, "success": succeeded / calls}


def main() -> None:
    """Print the figures as Markdown."""
    overruns = deadline_overruns()
    print(f"deadline overrun over {len(overruns)} calls (total=0.5 s, 1 byte every 50 ms): "
          f"median {statistics.median(overruns) * 1000:.1f} ms, max {max(overruns) * 1000:.1f} ms")
    print()
    print("| retry budget | requests per call | calls that succeeded |")
    print("|---|---|---|")
    for budget in (False, True):
        figures = requests_per_call(budget)
        label = "on (20% + 1/s)" if budget else "off"
        print(f"| {label} | {figures['requests_per_call']:.2f} | {figures['success'] * 100:.1f}% |")


if __name__ == "__main__":
    main()
