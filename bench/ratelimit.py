"""Scenario 12: batch jobs against a rate-limited API.

16 threads (a ``ThreadPoolExecutor``) work through a batch of items, one GET
each, against an API that answers at most 50 requests in any second (a
:class:`~resilient_requests.testing.Limit`: a sliding window, ``429`` with
``Retry-After`` beyond it). Six contenders, one after the other in one run,
each on a fresh route with a fresh ``Limit`` and after ``resilient_requests.reset()``:

=======================  =====================================================
``plain``                ``requests.Session``: an item that gets a 429 fails
``urllib3-retry``        ``HTTPAdapter(max_retries=Retry(total=10,
                         status_forcelist=[429], respect_retry_after_header=True,
                         backoff_factor=0.1))``
``requests-ratelimiter`` ``requests_ratelimiter.LimiterSession(per_second=50)``
``resilient``            ``ResilientSession`` without a limiter: the defaults with
                         ``RetryConfig(max_attempts=5, min_wait=0.01, max_wait=5)``
``resilient-rate``       the same with ``RateLimitConfig(rate=50, max_wait=60)``
``resilient-adaptive``   the same with ``RateLimitConfig(adaptive=True, max_wait=60)``
=======================  =====================================================

The upstream. :class:`bench.upstream.Upstream` cannot serve this scenario: a
``Limit`` holds a ``threading.Lock`` and so cannot be pickled over its control
pipe, and the pipe has no command to read a ``Limit``'s ``refused`` and
``answered`` counters. So this module starts a FaultServer of its own, in a
process of its own (spawned, listening on 127.0.0.1 only, driven over a pipe
the same way: :class:`LimitedUpstream`). The ``upstream`` handed to
:func:`rate_limited` is not used.

Run alone: ``python -m bench.ratelimit [--quick] [--out DIR]`` prints the
section's Markdown (and with ``--out`` writes it to ``DIR/ratelimit.md``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

import resilient_requests as rr
from resilient_requests.testing import Limit

from .plan import FULL, QUICK, Plan
from .report import Goal, Section, Table, fmt
from .stats import interleaved, load_average, percentile
from .upstream import REPLY_TIMEOUT, _QuietServer

__all__ = ["rate_limited", "LimitedUpstream", "NAMES", "LABELS", "main"]

THREADS = 16
RATE = 50  # the API's limit: requests answered in any PER seconds
PER = 1.0
#: Items per contender, by plan (``Plan`` has no field for this scenario: a plan
#: may add ``ratelimit_items``, which then wins).
ITEMS = {"full": 500, "quick": 150}
#: Rounds of the six contenders (interleaved: the order rotates each round).
ROUNDS = {"full": 1, "quick": 1}
#: connect/read timeouts of the requests-based contenders: ``TimeoutConfig()``'s.
TIMEOUT: Tuple[float, float] = (10.0, 30.0)
#: Pause between two contenders, so one's stragglers are not the next one's load.
GAP = 0.5

NAMES = (
    "plain",
    "urllib3-retry",
    "requests-ratelimiter",
    "resilient",
    "resilient-rate",
    "resilient-adaptive",
)
LABELS = {
    "plain": "requests.Session (plain)",
    "urllib3-retry": "requests + urllib3 Retry(429, Retry-After)",
    "requests-ratelimiter": "requests-ratelimiter LimiterSession(per_second=50)",
    "resilient": "ResilientSession, no limiter",
    "resilient-rate": "ResilientSession, RateLimitConfig(rate=50)",
    "resilient-adaptive": "ResilientSession, RateLimitConfig(adaptive=True)",
}
#: The goals for our limited contenders: 429s per item at most.
REFUSAL_GOAL = {"resilient-rate": 0.01, "resilient-adaptive": 0.05}
FAILED_GOAL = 0
WALL_GOAL = 1.1  # × ideal


# -- the upstream: a FaultServer with Limit routes, in a process of its own --------


def _serve(conn: Any, lifetime: float) -> None:
    """The upstream process: serve ``Limit`` routes and answer commands until told to stop."""
    limits: Dict[str, Limit] = {}
    ends_at = time.monotonic() + lifetime
    with _QuietServer() as server:
        conn.send({"port": server.port})
        while time.monotonic() < ends_at:
            try:
                if not conn.poll(0.5):
                    continue
                command = conn.recv()
            except (EOFError, OSError):
                break  # the driver went away
            op = command.get("op")
            try:
                if op == "stop":
                    conn.send({"ok": True})
                    break
                if op == "limit":
                    limit = limits[command["path"]] = Limit(command["rate"], command["per"])
                    server.route(command["path"], limit)
                    conn.send({"ok": True})
                elif op == "counts":
                    limit = limits[command["path"]]
                    conn.send({"refused": limit.refused, "answered": limit.answered})
                else:
                    conn.send({"error": f"unknown op {op!r}"})
            except Exception as exc:  # report it to the driver rather than die
                conn.send({"error": f"{type(exc).__name__}: {exc}"})


class LimitedUpstream:
    """A FaultServer serving ``Limit`` routes in a spawned process; a context manager."""

    def __init__(self, lifetime: float = 1800.0) -> None:
        self._lifetime = lifetime
        self._lock = threading.Lock()
        self._conn: Any = None
        self._process: Optional[multiprocessing.process.BaseProcess] = None
        self.port = 0

    def __enter__(self) -> "LimitedUpstream":
        context = multiprocessing.get_context("spawn")  # no fork of a threaded driver
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, self._lifetime), name="bench-ratelimit-upstream", daemon=True
        )
        self._process.start()
        child.close()
        self.port = self._receive()["port"]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is None:
            return
        try:
            self._command({"op": "stop"})
        except Exception:
            pass
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        self._conn.close()
        self._process = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def limit(self, path: str, rate: int, per: float) -> None:
        """Route ``path`` to a fresh ``Limit(rate, per)``."""
        self._command({"op": "limit", "path": path, "rate": rate, "per": per})

    def counts(self, path: str) -> Tuple[int, int]:
        """``(refused, answered)`` of the route's ``Limit``."""
        answer = self._command({"op": "counts", "path": path})
        return int(answer["refused"]), int(answer["answered"])

    def _command(self, command: Dict[str, Any]) -> Dict[str, Any]:
        with self._lock:
            self._conn.send(command)
            answer = self._receive()
        if "error" in answer:
            raise RuntimeError(f"upstream: {answer['error']}")
        return answer

    def _receive(self) -> Dict[str, Any]:
        if not self._conn.poll(REPLY_TIMEOUT):
            raise TimeoutError(f"upstream did not answer within {REPLY_TIMEOUT:g}s")
        return self._conn.recv()  # type: ignore[no-any-return]


# -- the contenders --------------------------------------------------------------


@dataclass
class Contender:
    name: str
    get: Callable[[str], requests.Response]
    session: requests.Session

    def close(self) -> None:
        self.session.close()


def _mount(session: requests.Session, retries: Any = 0) -> requests.Session:
    """A pool with room for every thread (requests' default keeps 10 connections)."""
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=THREADS, max_retries=retries)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _with_timeout(session: requests.Session) -> Callable[[str], requests.Response]:
    def get(url: str) -> requests.Response:
        return session.get(url, timeout=TIMEOUT)

    return get


def _resilient_config(rate_limit: Optional[rr.RateLimitConfig] = None) -> rr.ClientConfig:
    config = rr.ClientConfig(retry=rr.RetryConfig(max_attempts=5, min_wait=0.01, max_wait=5.0))
    return config if rate_limit is None else config.replace(rate_limit=rate_limit)


def build(name: str) -> Contender:
    """The contender called ``name``, fresh."""
    if name == "plain":
        session = _mount(requests.Session())
        return Contender(name, _with_timeout(session), session)
    if name == "urllib3-retry":
        retry = Retry(total=10, status_forcelist=[429], respect_retry_after_header=True, backoff_factor=0.1)
        session = _mount(requests.Session(), retry)
        return Contender(name, _with_timeout(session), session)
    if name == "requests-ratelimiter":
        from requests_ratelimiter import LimiterSession  # the bench extra

        session = _mount(LimiterSession(per_second=RATE))
        return Contender(name, _with_timeout(session), session)
    limits = {
        "resilient": None,
        "resilient-rate": rr.RateLimitConfig(rate=RATE, max_wait=60),
        "resilient-adaptive": rr.RateLimitConfig(adaptive=True, max_wait=60),
    }
    resilient = rr.ResilientSession(_resilient_config(limits[name]))
    return Contender(name, resilient.get, resilient)


def _item(contender: Contender, url: str) -> Tuple[str, float]:
    """One item: ``("ok" | "429" | "<status>" | exception name, seconds)``."""
    started = time.monotonic()
    try:
        response = contender.get(url)
    except Exception as exc:
        return type(exc).__name__, time.monotonic() - started
    response.close()
    result = "ok" if response.status_code == 200 else str(response.status_code)
    return result, time.monotonic() - started


# -- one contender's batch ---------------------------------------------------------


@dataclass
class Run:
    name: str
    items: int
    results: List[Tuple[str, float]]
    elapsed: float
    refused: int  # 429s the API sent
    answered: int  # 200s the API sent
    extra: Dict[str, Any]  # ResilientSession's own counters

    @property
    def failed(self) -> int:
        return sum(1 for result, _ in self.results if result != "ok")

    @property
    def refusals_per_item(self) -> float:
        return self.refused / self.items

    @property
    def ideal(self) -> float:
        return self.items / (RATE / PER)

    @property
    def wall_ratio(self) -> float:
        return self.elapsed / self.ideal

    def failures(self) -> str:
        kinds: Dict[str, int] = {}
        for result, _ in self.results:
            if result != "ok":
                kinds[result] = kinds.get(result, 0) + 1
        return ", ".join(f"{count} × {kind}" for kind, count in sorted(kinds.items())) or "–"


def _resilient_counters(session: rr.ResilientSession, origin: str) -> Dict[str, Any]:
    """The session's limiter snapshot and retry-budget refusals (introspection, read-only)."""
    stats = session.stats().get("origins", {}).get(origin, {})
    counters: Dict[str, Any] = {"rate_limit": stats.get("rate_limit"), "retries": stats.get("retries")}
    compartments = session._pipeline.routes.compartments()  # noqa: SLF001 - read-only
    counters["budget_refused"] = sum(c.budget.refused for c in compartments if c.budget is not None)
    return counters


def run_batch(server: LimitedUpstream, name: str, items: int, number: int) -> Run:
    """One contender through one batch, on a fresh route and a fresh compartment registry."""
    rr.reset()
    path = f"/api/{name}/{number}"
    server.limit(path, RATE, PER)
    url = server.url(path)
    contender = build(name)
    extra: Dict[str, Any] = {}
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(THREADS, thread_name_prefix=f"bench-ratelimit-{name}") as pool:
            results = list(pool.map(lambda _: _item(contender, url), range(items)))
        elapsed = time.monotonic() - started
        if isinstance(contender.session, rr.ResilientSession):
            extra = _resilient_counters(contender.session, f"http://127.0.0.1:{server.port}")
    finally:
        contender.close()
        rr.reset()
    refused, answered = server.counts(path)
    time.sleep(GAP)
    return Run(name, items, results, elapsed, refused, answered, extra)


# -- the section -------------------------------------------------------------------


def _verdict(met: bool) -> str:
    return "met" if met else "not met"


def _goals(runs: Dict[str, Run]) -> List[Goal]:
    goals = []
    for name, most in REFUSAL_GOAL.items():
        run = runs[name]
        label = LABELS[name]
        met = run.failed <= FAILED_GOAL
        goals.append(Goal(f"{label}: {FAILED_GOAL} items failed", met, f"{run.failed} failed — {_verdict(met)}"))
        met = run.refusals_per_item <= most
        goals.append(Goal(f"{label}: ≤ {most:g} 429s per item", met,
                          f"{run.refusals_per_item:.3f} ({run.refused} 429s) — {_verdict(met)}"))
        met = run.wall_ratio <= WALL_GOAL
        goals.append(Goal(f"{label}: wall time ≤ {WALL_GOAL:g}× ideal", met,
                          f"{run.wall_ratio:.2f}× ({run.elapsed:.1f} s for {run.ideal:g} s) — {_verdict(met)}"))
    return goals


def _goal_cell(name: str, run: Run) -> Tuple[str, str, str]:
    """The goal beside each figure, for our limited contenders."""
    if name not in REFUSAL_GOAL:
        return "", "", ""
    failed = f" (goal {FAILED_GOAL}: {_verdict(run.failed <= FAILED_GOAL)})"
    refusals = f" (goal ≤ {REFUSAL_GOAL[name]:g}: {_verdict(run.refusals_per_item <= REFUSAL_GOAL[name])})"
    wall = f" (goal ≤ {WALL_GOAL:g}×: {_verdict(run.wall_ratio <= WALL_GOAL)})"
    return failed, refusals, wall


def _ours(run: Run) -> str:
    if not run.extra:
        return "–"
    parts = []
    limiter = run.extra.get("rate_limit")
    if limiter:
        rate = limiter.get("rate")
        parts.append(f"rate at the end {rate:.1f}/s" if rate is not None else "rate unlimited")
        parts.append(f"{limiter.get('waits', 0)} waits, {limiter.get('waited', 0.0):.0f} s waited")
    if run.extra.get("retries") is not None:
        parts.append(f"{run.extra['retries']} retries")
    parts.append(f"budget refused {run.extra.get('budget_refused', 0)} retries")
    return "; ".join(parts)


def _best(items: int) -> float:
    """The shortest wall time a sliding window allows: the first RATE at once, then RATE per PER."""
    return max(0.0, items - RATE) / (RATE / PER)


def _median_run(runs: List[Run]) -> Run:
    """The run with the median wall time (one round: that one)."""
    return sorted(runs, key=lambda r: r.elapsed)[len(runs) // 2]


def section_of(by_name: Dict[str, List[Run]], items: int, rounds: int) -> Section:
    runs = {name: _median_run(rs) for name, rs in by_name.items()}
    rows = []
    for name in NAMES:
        run = runs[name]
        failed, refusals, wall = _goal_cell(name, run)
        latencies = [seconds for _, seconds in run.results]
        rows.append([
            LABELS[name],
            f"{run.failed}{failed}",
            f"{run.refusals_per_item:.3f}{refusals}",
            f"{run.wall_ratio:.2f}×{wall}",
            f"{run.elapsed:.1f}",
            fmt(run.refused + run.answered),
            f"{percentile(latencies, 50):.2f} / {max(latencies):.2f}",
            run.failures(),
            _ours(run),
        ])
    headers = [
        "contender",
        "items failed",
        "429s per item",
        "wall time ÷ ideal",
        "wall s",
        "requests sent",
        "item s p50 / max",
        "how items failed",
        "limiter, retries (ours)",
    ]
    ideal = items / (RATE / PER)
    return Section(
        title="12. Batch jobs against a rate-limited API",
        setup=(
            f"{THREADS} threads (a `ThreadPoolExecutor`) × {items} items, one GET each, per contender, against "
            f"an API that answers at most {RATE} requests in any {PER:g} s (a sliding window: "
            "`resilient_requests.testing.Limit`) and `429` with `Retry-After` (the seconds until the window has "
            f"room, rounded up: 1) beyond it. The ideal wall time is items ÷ {RATE}/s = {ideal:g} s. "
            "Contenders: plain requests (no retries: an item that gets a 429 fails); requests with "
            "`HTTPAdapter(max_retries=Retry(total=10, status_forcelist=[429], respect_retry_after_header=True, "
            "backoff_factor=0.1))`; `requests_ratelimiter.LimiterSession(per_second=50)` (no retries); "
            "`ResilientSession` without a limiter (defaults with `RetryConfig(max_attempts=5, min_wait=0.01, "
            "max_wait=5)`); the same with `RateLimitConfig(rate=50, max_wait=60)`; the same with "
            "`RateLimitConfig(adaptive=True, max_wait=60)`. The requests-based contenders use `timeout=(10, 30)` "
            f"and a pool of {THREADS} connections. Each contender gets a fresh route with a fresh `Limit`, after "
            f"`resilient_requests.reset()`; {rounds} round(s) in rotating order"
            + (", the run with the median wall time shown" if rounds > 1 else "")
            + ". The upstream is a FaultServer in a process of its own (`bench/ratelimit.py`'s own: "
            "`bench.upstream.Upstream` cannot carry a `Limit`); 429s are the `Limit`'s `refused` counter."
        ),
        goals=_goals(runs),
        tables=[Table(headers, rows)],
        notes=[
            "429s per item: the API's refusals divided by the items; wall time ÷ ideal: the batch's wall time "
            f"divided by items ÷ {RATE}/s, the time at an even pace. A sliding window also lets a client send "
            f"its first {RATE} at once, so a client that bursts can finish in (items − {RATE}) ÷ {RATE}/s "
            f"({_best(items):g} s here, {_best(items) / ideal:.2f}× ideal): below 1× is possible without "
            "failing items. Our limiter paces evenly (`burst=1`): a token bucket with a larger burst would send "
            "more than the window allows once the bucket refills.",
            "`requests-ratelimiter` keeps 50 requests in any second on the client's clock (pyrate-limiter's "
            "sliding-window log, with 50 ms of buffer: the same shape as this API's limit) and fills its bucket "
            "on a 429; it does not retry, so an item that still meets a 429 fails.",
            "Our retry budget (20% of calls + 1 retry/s over 10 s) refuses retries once 429s outnumber it: "
            "without a limiter, items then fail with their 429.",
        ],
    )


def rate_limited(upstream: Any, plan: Plan, plot_dir: str) -> Section:
    """The scenario, in the shape of ``bench.__main__.SCENARIOS``' runners.
    ``upstream`` and ``plot_dir`` are not used (see the module's docstring; no plot)."""
    items = int(getattr(plan, "ratelimit_items", 0) or ITEMS.get(plan.name, ITEMS["full"]))
    rounds = int(getattr(plan, "ratelimit_rounds", 0) or ROUNDS.get(plan.name, 1))
    with LimitedUpstream() as server:
        by_name = interleaved(NAMES, rounds, lambda name, number: run_batch(server, name, items, number))
    return section_of(by_name, items, rounds)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ratelimit", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{ITEMS['quick']} items per contender")
    parser.add_argument("--out", default=None, help="folder for ratelimit.md")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    started, load = time.monotonic(), load_average()
    plot_dir = os.path.join(args.out or tempfile.gettempdir(), "plots")
    section = rate_limited(None, plan, plot_dir)
    section.seconds = time.monotonic() - started
    section.load = f"{load:.2f} → {load_average():.2f} ({os.cpu_count()} cores)"
    text = section.render(base=args.out or ".")
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "ratelimit.md"), "w") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
