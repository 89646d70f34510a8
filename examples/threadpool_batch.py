"""A batch job on a ThreadPoolExecutor, sharing one ResilientSession between its threads.

The job looks up 48 SKUs: 36 in the *catalog* service (healthy, but 8 of its SKUs
answer 503 once before they answer 200) and 12 in the *warehouse* service (down:
every request gets a 503).
One session serves every thread, so the calls share its connection pools, its
bulkhead (at most 8 calls in flight) and one breaker per origin:

* the catalog's 503s are retried after a short backoff, and every lookup succeeds;
* the warehouse's failures open *its* breaker after 5 in a row; the lookups after
  that fail fast (``CircuitOpenError``) without sending anything, while the
  catalog's breaker stays closed.

A plain-text progress bar (redrawn in place on a terminal, a line per quarter
otherwise) and a summary are printed. Run it::

    python examples/threadpool_batch.py
"""
from __future__ import annotations

import concurrent.futures
import sys
from collections import Counter
from typing import IO, List, Tuple

from resilient_requests import (
    BulkheadConfig,
    CircuitBreakerConfig,
    CircuitOpenError,
    ClientConfig,
    PoolTimeoutError,
    RequestException,
    ResilientSession,
    RetryConfig,
    TimeoutConfig,
)

WORKERS = 16

#: Retries with short waits, so the batch ends in a moment; the bulkhead lets 8 of the
#: 16 threads call out at once, the others wait up to 5 s for a slot.
CONFIG = ClientConfig(
    timeout=TimeoutConfig(connect=1.0, read=2.0, total=10.0),
    retry=RetryConfig(max_attempts=3, min_wait=0.02, max_wait=0.2),
    circuit_breaker=CircuitBreakerConfig(failure_threshold=5, recovery_timeout=30.0),
    bulkhead=BulkheadConfig(max_concurrency=8, acquisition_timeout=5.0),
)

SUCCEEDED, FAILED, FAILED_FAST = "succeeded", "failed", "failed fast"


class ProgressBar:
    """``[#####-----] done/total``: redrawn in place on a terminal; elsewhere (a pipe,
    a log file) one line at each quarter, so logs stay readable."""

    def __init__(self, total: int, stream: IO[str] = sys.stdout, width: int = 30) -> None:
        self.total = total
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self._next_quarter = 1

    def update(self, done: int, failed: int) -> None:
        """Show ``done`` of ``total`` finished, ``failed`` of them unsuccessfully."""
        filled = self.width * done // self.total
        text = f"[{'#' * filled}{'-' * (self.width - filled)}] {done}/{self.total} ({failed} failed)"
        if self.tty:
            self.stream.write("\r" + text + ("\n" if done == self.total else ""))
            self.stream.flush()
        elif done * 4 >= self._next_quarter * self.total:
            while done * 4 >= self._next_quarter * self.total:
                self._next_quarter += 1
            print(text, file=self.stream, flush=True)


def lookup(session: ResilientSession, url: str) -> Tuple[str, str]:
    """One job: ``(outcome, detail)`` -- never raises."""
    try:
        response = session.get(url)
    except (CircuitOpenError, PoolTimeoutError) as exc:
        return FAILED_FAST, type(exc).__name__  # nothing was sent
    except RequestException as exc:
        return FAILED, type(exc).__name__
    if response.status_code >= 400:
        return FAILED, str(response.status_code)
    return SUCCEEDED, str(response.status_code)


def run_batch(session: ResilientSession, urls: List[str]) -> List[Tuple[str, str]]:
    """Run every lookup on the pool, updating the progress bar as they finish."""
    bar = ProgressBar(len(urls))
    results: List[Tuple[str, str]] = []
    with concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="batch") as pool:
        futures = [pool.submit(lookup, session, url) for url in urls]
        for future in concurrent.futures.as_completed(futures):
            results.append(future.result())
            bar.update(len(results), sum(1 for outcome, _ in results if outcome != SUCCEEDED))
    return results


def main() -> int:
    """Run the batch against two local upstreams and print the summary."""
    from resilient_requests.testing import FaultServer, ok, status

    with FaultServer() as catalog, FaultServer() as warehouse, ResilientSession(CONFIG) as session:
        # Every fourth lookup asks the warehouse, so its lookups are spread through the batch.
        urls = [warehouse.url(f"/stock/{n}") if n % 4 == 3 else catalog.url(f"/items/{n}")
                for n in range(48)]
        for n in range(48):
            if n % 4 == 3:
                warehouse.route(f"/stock/{n}", status(503))  # down
            elif n % 6 == 0:
                catalog.route(f"/items/{n}", status(503), ok(f"item {n}"))  # 8 SKUs: one 503, then fine
            else:
                catalog.route(f"/items/{n}", ok(f"item {n}", delay=0.01))
        print(f"batch: {len(urls)} lookups on {WORKERS} threads, one shared ResilientSession "
              f"(bulkhead {CONFIG.bulkhead.max_concurrency})")
        results = run_batch(session, urls)

        counts = Counter(outcome for outcome, _ in results)
        details = {kind: Counter(d for o, d in results if o == kind) for kind in (FAILED, FAILED_FAST)}
        stats = session.stats()["origins"]
        print(f"succeeded:   {counts[SUCCEEDED]}")
        print(f"failed:      {counts[FAILED]} ({_kinds(details[FAILED])}; after retrying)")
        print(f"failed fast: {counts[FAILED_FAST]} ({_kinds(details[FAILED_FAST])}; nothing sent)")
        print(f"upstream requests: catalog {catalog.hits()}, warehouse {warehouse.hits()} "
              f"(from {len(urls) - len(urls) // 4} and {len(urls) // 4} lookups)")
        # stats() is keyed by origin, scheme://host:port -- here each server's base_url.
        print(f"retries: catalog {stats[catalog.base_url]['retries']}, "
              f"warehouse {stats[warehouse.base_url]['retries']}")
        print(f"breakers: catalog {session.circuit_state(catalog.url()).value}, "
              f"warehouse {session.circuit_state(warehouse.url()).value}")
    return 0


def _kinds(counter: "Counter[str]") -> str:
    return ", ".join(f"{kind} x{n}" for kind, n in counter.most_common()) or "none"


if __name__ == "__main__":
    raise SystemExit(main())
