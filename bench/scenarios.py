"""Scenarios 1, 2, 3 and 5: happy-path overhead, concurrency, fail fast and
transient faults. (4, the outage, is in :mod:`.outage`; 6 and 7 in :mod:`.footprint`;
8, 9 and 10, breaker policies and hedging, in :mod:`.policies`.)

Each function takes the :class:`~bench.upstream.Upstream` and the
:class:`~bench.plan.Plan`, runs its contenders interleaved, closes every
session and thread it started, and returns a :class:`~bench.report.Section`.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from resilient_requests.testing import Reset, ok, status

from . import plots
from .contenders import LABELS, NAMES, OK, REJECTED, Client, Tuning, budget_refusals, build, outcome
from .plan import Plan
from .profile import breakdown
from .report import Goal, Section, Table, fmt, fmt_ratio
from .stats import interleaved, median, percentile, ratio
from .upstream import HoldSpec, Upstream

__all__ = ["happy_path", "concurrency", "fail_fast", "transient_faults"]

RESILIENT = ("resilient", "resilient-fast")
#: The happy path's extra row: the defaults plus a total deadline (the preset has one).
DEADLINE = "resilient-total"


def _clients(names: Sequence[str], tuning: Optional[Tuning] = None) -> Dict[str, Client]:
    return {name: build(name, tuning or Tuning()) for name in names}


def _close(clients: Dict[str, Client]) -> None:
    for client in clients.values():
        client.close()


def _paired_ratios(values: Dict[str, List[float]], baseline: str = "plain") -> Dict[str, float]:
    """Per contender: the median over rounds of (its figure / the baseline's) in that round."""
    return {
        name: median(ratio(v, b) for v, b in zip(series, values[baseline]))
        for name, series in values.items()
    }


# -- 1. happy path -----------------------------------------------------------


def happy_path(upstream: Upstream, plan: Plan) -> Section:
    """Sequential keep-alive GETs of a 2-byte body, one thread."""
    upstream.route("/tiny", ok(b"ok"))
    url = upstream.url("/tiny")
    names = NAMES + (DEADLINE,)
    clients = _clients(names)
    try:
        for client in clients.values():
            for _ in range(50):
                client.get(url)

        def batch(name: str, _: int) -> float:
            get = clients[name].get
            started = time.perf_counter_ns()
            for _ in range(plan.happy_batch):
                get(url)
            return (time.perf_counter_ns() - started) / plan.happy_batch / 1000

        per_call = interleaved(names, plan.happy_rounds, batch)
    finally:
        _close(clients)
    ratios = _paired_ratios(per_call)
    added = {
        name: median(v - b for v, b in zip(series, per_call["plain"]))
        for name, series in per_call.items()
    }
    rows = [
        [
            LABELS[name],
            fmt(median(series), 1),
            fmt(percentile(series, 10), 1),
            fmt(percentile(series, 90), 1),
            fmt_ratio(ratios[name]),
            f"{added[name]:+.1f}",
        ]
        for name, series in per_call.items()
    ]
    table = Table(
        [
            "contender",
            "median µs/GET",
            "p10 of rounds",
            "p90 of rounds",
            "ratio to plain",
            "µs added per GET",
        ],
        rows,
    )
    goals = [
        Goal(f"{LABELS[name]} ≤ 1.00× plain", ratios[name] <= 1.0, fmt_ratio(ratios[name]))
        for name in RESILIENT
    ]
    return Section(
        title="1. Happy-path overhead",
        setup=(
            f"One thread, keep-alive GETs of a 2-byte body from the upstream process: "
            f"{plan.happy_rounds} rounds × {plan.happy_batch} GETs per contender, interleaved. "
            "The figure per round is the batch's mean µs per GET; the table gives the median over rounds, "
            "and the ratio and µs added are medians of the per-round comparison with plain requests "
            "in the same round. The upstream's own time (~100-200 µs of Python HTTP server) is in every figure."
        ),
        goals=goals,
        tables=[table] + breakdown(url, plan.profile_calls),
        notes=[
            "The extra row, the defaults with `TimeoutConfig(total=15)`, isolates what a total "
            "deadline costs (the fast_microservice preset has one): "
            f"{median(d - r for d, r in zip(per_call[DEADLINE], per_call['resilient'])):+.1f} µs "
            "per GET over the defaults (median of per-round differences). Each call "
            "registers its deadline with the watchdog thread and cancels it, and both can wake "
            "that thread: work cProfile does not see, done on another thread under the GIL.",
            "Plain requests looks up proxy settings in the environment on every call "
            "(`merge_environment_settings` → `get_environ_proxies`); ResilientSession caches them "
            "per origin. The saving grows with the size of the environment.",
            "The profile tables run each client alone under cProfile, which roughly doubles every "
            "figure; read them for where the time goes, not for totals.",
        ],
    )


# -- 2. concurrency ----------------------------------------------------------


@dataclass
class _Window:
    """When a throughput run measures: calls ending in [begin, end) count."""

    begin: float
    end: float
    cap: int  # most calls one thread may make


def _worker(client: Client, url: str, window: _Window, counts: List[int], slot: int) -> None:
    done = 0
    for _ in range(window.cap):
        if time.monotonic() >= window.end:
            break
        result = outcome(client, url)
        if result == OK and window.begin <= time.monotonic() < window.end:
            done += 1
    counts[slot] = done


def _throughput(client: Client, url: str, threads: int, warm: float, length: float) -> float:
    """Successful calls per second from ``threads`` threads over ``length`` s."""
    begin = time.monotonic() + warm
    window = _Window(begin, begin + length, cap=int((warm + length) / 0.02 * 2) + 100)
    counts = [0] * threads
    workers = [
        threading.Thread(target=_worker, args=(client, url, window, counts, i), daemon=True)
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:  # the naive stack queues calls on its lock: allow for draining them
        worker.join(timeout=warm + length + threads * 0.05 + 30)
    return sum(counts) / length


def concurrency(upstream: Upstream, plan: Plan, plot_dir: str) -> Section:
    """Throughput against a server answering after 20 ms, at each thread count."""
    upstream.route("/slow", ok(delay=0.02))
    url = upstream.url("/slow")
    results: Dict[int, Dict[str, List[float]]] = {}
    for threads in plan.thread_counts:
        clients = _clients(NAMES, Tuning(pool=threads))
        try:
            results[threads] = interleaved(
                NAMES,
                plan.conc_rounds,
                lambda name, _, c=clients, t=threads: _throughput(
                    c[name], url, t, plan.conc_warm, plan.conc_window
                ),
            )
        finally:
            _close(clients)
    medians = {t: {n: median(s) for n, s in r.items()} for t, r in results.items()}
    ratios = {t: _paired_ratios(r) for t, r in results.items()}
    rows = [
        [LABELS[name]]
        + [f"{fmt(medians[t][name])} ({fmt_ratio(ratios[t][name])})" for t in plan.thread_counts]
        for name in NAMES
    ]
    rows.append(["ideal (threads / 20 ms)"] + [fmt(t / 0.02) for t in plan.thread_counts])
    table = Table(
        ["contender"] + [f"{t} thread{'s' if t > 1 else ''}" for t in plan.thread_counts],
        rows,
        caption="Successful calls per second, median of rounds (ratio to plain, median of per-round ratios)",
    )
    goals = []
    for name in RESILIENT:
        worst = min(ratios[t][name] for t in plan.thread_counts)
        figures = ", ".join(f"{t}: {fmt_ratio(ratios[t][name])}" for t in plan.thread_counts)
        goals.append(
            Goal(f"{LABELS[name]} ≥ 0.95× plain at every thread count", worst >= 0.95, figures)
        )
    plot = plots.throughput(medians, plan.thread_counts, f"{plot_dir}/throughput.png")
    naive = ", ".join(f"{fmt(medians[t]['naive'])}/s at {t}" for t in plan.thread_counts)
    return Section(
        title="2. Concurrency",
        setup=(
            f"Threads {', '.join(map(str, plan.thread_counts))} calling as fast as they can a route "
            f"that answers after 20 ms. Per thread count, {plan.conc_rounds} interleaved rounds per contender; "
            f"each round warms up {plan.conc_warm:g} s, then counts the 200s that end within the next "
            f"{plan.conc_window:g} s. The requests-based contenders' pools hold as many connections as threads."
        ),
        goals=goals,
        tables=[table],
        plots=[plot],
        notes=[
            f"The naive stack stays at one call at a time ({naive}): pybreaker's `call()` holds the "
            "breaker's lock for the whole wrapped call, so its threads queue on it.",
            "ResilientSession's defaults allow 50 calls in flight (the bulkhead) and its pool holds 50 "
            "connections; at 64 threads 14 callers wait for a slot. The fast_microservice preset allows 100.",
            "Client, server and the other jobs share 2 cores: above ~16 threads the ceiling is CPU, not the 20 ms.",
        ],
    )


# -- 3. fail fast ------------------------------------------------------------


def _time_calls(client: Client, url: str, count: int) -> List[float]:
    """µs per call, measured around each call from the caller's side."""
    samples = []
    for _ in range(count):
        started = time.perf_counter_ns()
        outcome(client, url)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def _open_breaker(client: Client, url: str) -> bool:
    """Call until the breaker rejects a call (at most 30 calls)."""
    return any(outcome(client, url) == REJECTED for _ in range(30))


def _latency_rows(
    samples: Dict[str, List[List[float]]], reference: Optional[str]
) -> List[List[str]]:
    flat = {name: [s for batch in batches for s in batch] for name, batches in samples.items()}
    base = percentile(flat[reference], 50) if reference else float("nan")
    return [
        [
            LABELS[name],
            fmt(len(values)),
            fmt(percentile(values, 50), 1),
            fmt(percentile(values, 99), 1),
            fmt(median(percentile(b, 99) for b in samples[name]), 1),
            fmt(max(values), 0),
            fmt_ratio(ratio(percentile(values, 50), base)) if reference else "n/a",
        ]
        for name, values in flat.items()
    ]


def _breaker_open(upstream: Upstream, plan: Plan) -> Dict[str, List[List[float]]]:
    upstream.route("/down", status(503))
    url = upstream.url("/down")
    # Backoff shortened (for every contender) only to open the breakers quickly:
    # a rejected call never reaches the retry loop.
    clients = _clients(("naive",) + RESILIENT, Tuning(recovery_timeout=3600.0, min_wait=0.01))
    clients["plain"] = build("plain")
    try:
        for name in ("naive",) + RESILIENT:
            if not _open_breaker(clients[name], url):
                raise RuntimeError(f"{name}: the breaker did not open")
        return interleaved(
            ("plain", "naive") + RESILIENT,
            plan.fast_rounds,
            lambda name, _: _time_calls(clients[name], url, plan.fast_batch),
        )
    finally:
        _close(clients)


def _bulkhead_full(upstream: Upstream, plan: Plan) -> Dict[str, List[List[float]]]:
    upstream.route("/held", HoldSpec("bulkhead", limit=30.0))
    upstream.route("/tiny", ok(b"ok"))
    clients = _clients(RESILIENT, Tuning(max_concurrency=1, acquisition_timeout=0.0))
    holders = [
        threading.Thread(target=outcome, args=(c, upstream.url("/held")), daemon=True)
        for c in clients.values()
    ]
    try:
        for holder in holders:
            holder.start()
        for _ in range(200):  # until both held calls are in the server (≤ 10 s)
            if upstream.in_flight() >= len(holders):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("the calls meant to fill the bulkheads never reached the upstream")
        url = upstream.url("/tiny")
        return interleaved(
            RESILIENT,
            plan.fast_rounds,
            lambda name, _: _time_calls(clients[name], url, plan.fast_batch),
        )
    finally:
        upstream.release("bulkhead")
        for holder in holders:
            holder.join(timeout=35)
        _close(clients)


def fail_fast(upstream: Upstream, plan: Plan) -> Section:
    """The caller's latency of a call refused by an open breaker or a full bulkhead."""
    breaker = _breaker_open(upstream, plan)
    bulkhead = _bulkhead_full(upstream, plan)
    headers = [
        "contender",
        "calls",
        "p50 µs",
        "p99 µs",
        "median of round p99s",
        "max µs",
        "p50 vs plain's 503",
    ]
    goals = []
    for label, samples in (("breaker open", breaker), ("bulkhead full", bulkhead)):
        for name in RESILIENT:
            p99 = percentile([s for b in samples[name] for s in b], 99)
            goals.append(
                Goal(f"{LABELS[name]}, {label}: p99 < 50 µs", p99 < 50, f"p99 {p99:.1f} µs")
            )
    return Section(
        title="3. Fail fast",
        setup=(
            f"`session.get(url)` timed around each call from the caller's side "
            f"(`time.perf_counter_ns`, exception caught), {plan.fast_rounds} interleaved rounds × "
            f"{plan.fast_batch} calls per contender. Breaker open: the origin answered 503 until each "
            "breaker opened (recovery timeout 1 h, so it stays open). Bulkhead full: `max_concurrency=1`, "
            "`acquisition_timeout=0`, the one slot held by a call the upstream holds. Plain requests has "
            "no breaker: its row is an ordinary GET answered 503, the cost fail-fast avoids."
        ),
        goals=goals,
        tables=[
            Table(headers, _latency_rows(breaker, "plain"), caption="Breaker open"),
            Table(
                headers,
                _latency_rows(bulkhead, None),
                caption="Bulkhead full (acquisition_timeout=0)",
            ),
        ],
        notes=[
            "The naive stack fails fast too once pybreaker is open, but it takes the breaker's lock for "
            "every call (see scenario 2)."
        ],
    )


# -- 5. transient faults ---------------------------------------------------

#: The extra contender of this scenario: the defaults with a 50 ms backoff.
TUNED = "resilient-50ms"


def _script(seed: int, length: int = 1000) -> List[object]:
    """10% failures (half resets, half 503s), the rest 200 after 5 ms; shuffled."""
    faults: List[object] = [Reset()] * (length // 20) + [status(503)] * (length // 20)
    faults += [ok(delay=0.005)] * (length - len(faults))
    random.Random(seed).shuffle(faults)
    return faults


@dataclass
class _FlakyRun:
    latencies: List[float]  # ms, every call
    succeeded: int
    rejected: int  # failed fast: the breaker was open
    requests: int  # what the upstream received
    refused: Optional[int]  # retries the budget refused


def _flaky_worker(client: Client, url: str, calls: int, sink: List[tuple]) -> None:
    for _ in range(calls):
        started = time.perf_counter()
        result = outcome(client, url)
        sink.append(((time.perf_counter() - started) * 1000, result))


def _flaky_run(upstream: Upstream, name: str, plan: Plan, seed: int) -> _FlakyRun:
    path = f"/flaky/{name}"
    upstream.route(path, *_script(seed), cycle=True)  # every contender sees the same script
    client = build(name, Tuning(pool=plan.flaky_threads))
    before = upstream.hits(path)
    sinks: List[List[tuple]] = [[] for _ in range(plan.flaky_threads)]
    per_thread = plan.flaky_calls // plan.flaky_threads
    workers = [
        threading.Thread(
            target=_flaky_worker, args=(client, upstream.url(path), per_thread, sink), daemon=True
        )
        for sink in sinks
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        refused = budget_refusals(client)
    finally:
        client.close()
    calls = [call for sink in sinks for call in sink]
    return _FlakyRun(
        [c[0] for c in calls],
        sum(c[1] == OK for c in calls),
        sum(c[1] == REJECTED for c in calls),
        upstream.hits(path) - before,
        refused,
    )


def transient_faults(upstream: Upstream, plan: Plan) -> Section:
    """10% of requests fail at random; how many calls succeed, at what latency."""
    names = NAMES + (TUNED,)
    runs = interleaved(
        names,
        plan.flaky_rounds,
        lambda name, number: _flaky_run(upstream, name, plan, 1000 + number),
    )
    p99 = {
        name: percentile([ms for r in rs for ms in r.latencies], 99) for name, rs in runs.items()
    }
    rows, success = [], {}
    for name, rs in runs.items():
        calls = sum(len(r.latencies) for r in rs)
        success[name] = sum(r.succeeded for r in rs) / calls
        latencies = [ms for r in rs for ms in r.latencies]
        refused = [r.refused for r in rs if r.refused is not None]
        rows.append(
            [
                LABELS[name],
                fmt(calls),
                f"{success[name] * 100:.2f}%",
                fmt(calls - sum(r.succeeded for r in rs)),
                f"{fmt(sum(r.rejected for r in rs))} ({sum(r.rejected > 0 for r in rs)}/{len(rs)})",
                f"{sum(r.requests for r in rs) / calls:.3f}",
                fmt(percentile(latencies, 50), 1),
                fmt(p99[name], 1),
                fmt_ratio(ratio(p99[name], p99["plain"])),
                fmt(sum(refused)) if refused else "n/a",
            ]
        )
    headers = [
        "contender",
        "calls",
        "succeeded",
        "failed",
        "of which breaker open (rounds)",
        "upstream requests per call",
        "p50 ms",
        "p99 ms",
        "p99 vs plain",
        "retries refused by budget",
    ]
    goals = [
        Goal(
            f"{LABELS[name]} ≥ 99% of GETs succeed",
            success[name] >= 0.99,
            f"{success[name] * 100:.2f}%",
        )
        for name in RESILIENT
    ]
    return Section(
        title="5. Transient faults",
        setup=(
            f"{plan.flaky_threads} threads, {plan.flaky_calls:,} GETs per contender and round, "
            f"{plan.flaky_rounds} interleaved round(s). The upstream plays a seeded, shuffled cyclic script of "
            "1,000 answers: 5% connection resets, 5% 503s, the rest 200 after 5 ms; each contender gets "
            "the same script from its start. An extra row shows the defaults with `min_wait=0.05`."
        ),
        goals=goals,
        tables=[Table(headers, rows)],
        notes=[
            "The p99 cost is the backoff: about 10% of calls wait before their retry, so p99 lands inside "
            "the first wait — full jitter over [0, 1] s with the defaults, [0, 0.5] s with the preset, "
            "and a fixed 0 s for urllib3's first retry.",
            "fast_microservice makes 3 attempts (0.1% of calls meet three faults in a row); its breaker "
            "opens after 8 consecutive failures, which a 10% fault rate produces by chance about once "
            "in 10^8 attempts (it used to open after 3: once in ~1,100, then 10 s of refusals). The "
            "breaker column counts calls refused by a breaker and the rounds in which it happened.",
            "Retry budget (20% of calls + 1 retry/s over 10 s, per origin): a 10% fault rate needs about "
            "11% retries, inside the budget; the last column counts the retries it refused.",
        ],
    )
