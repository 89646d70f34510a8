"""Scenario 4: an outage and the recovery after it.

16 threads call one route continuously (a 10 ms pause between a thread's
calls). The route answers 200 after 5 ms, then 503 at once to every request
for the outage, then 200 again. A sampler reads the upstream's hit counter
every 50 ms, and at each switch, so requests can be matched with the calls
that caused them.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from resilient_requests.testing import ok, status

from . import plots
from .contenders import LABELS, NAMES, OK, REJECTED, Client, Tuning, build, outcome
from .plan import Plan
from .report import Goal, Section, Table, fmt, fmt_ratio
from .stats import interleaved, median, percentile, ratio, sleep_until
from .upstream import Upstream

__all__ = ["outage"]

THINK = 0.010  # a caller's pause between calls
RECOVERY_TIMEOUT = 1.0  # every breaker's, in this scenario
HEALTHY = ok(delay=0.005)
SAMPLE_EVERY = 0.05


@dataclass
class Call:
    start: float
    end: float
    result: str

    @property
    def latency_ms(self) -> float:
        return (self.end - self.start) * 1000


@dataclass
class Run:
    """One contender through one outage (times are ``time.monotonic()``)."""

    calls: List[Call]
    hits: List[Tuple[float, int]]  # (time, upstream requests so far), sorted
    began: float
    down: float  # the outage started
    up: float  # the upstream recovered

    def hits_at(self, moment: float) -> float:
        """Upstream requests received by ``moment``, interpolated between samples."""
        times = [t for t, _ in self.hits]
        i = bisect.bisect_left(times, moment)
        if i == 0:
            return self.hits[0][1]
        if i == len(times):
            return self.hits[-1][1]
        (t0, h0), (t1, h1) = self.hits[i - 1], self.hits[i]
        return h0 + (h1 - h0) * (moment - t0) / (t1 - t0) if t1 > t0 else h1


# -- running one contender ------------------------------------------------------


def _caller(client: Client, url: str, stop_at: float, sink: List[Call]) -> None:
    for _ in range(int((stop_at - time.monotonic()) / THINK) + 10):
        started = time.monotonic()
        if started >= stop_at:
            break
        result = outcome(client, url)
        sink.append(Call(started, time.monotonic(), result))
        time.sleep(THINK)


def _sampler(
    upstream: Upstream, path: str, stop: threading.Event, samples: List[Tuple[float, int]]
) -> None:
    for _ in range(100_000):
        if stop.wait(SAMPLE_EVERY):
            break
        samples.append(upstream.stamped_hits(path))


def _switch(
    upstream: Upstream, path: str, fault: object, samples: List[Tuple[float, int]]
) -> float:
    """Switch the route; return the moment it took effect, and sample hits there."""
    moment = upstream.switch(path, fault)
    samples.append(upstream.stamped_hits(path))
    return moment


def _run(upstream: Upstream, name: str, plan: Plan) -> Run:
    path = f"/outage/{name}"
    upstream.route(path, HEALTHY)
    client = build(name, Tuning(pool=plan.outage_threads, recovery_timeout=RECOVERY_TIMEOUT))
    samples: List[Tuple[float, int]] = [upstream.stamped_hits(path)]
    began = time.monotonic()
    stop_at = began + plan.outage_healthy + plan.outage_length + plan.outage_after
    sinks: List[List[Call]] = [[] for _ in range(plan.outage_threads)]
    callers = [
        threading.Thread(
            target=_caller, args=(client, upstream.url(path), stop_at, sink), daemon=True
        )
        for sink in sinks
    ]
    stop = threading.Event()
    sampler = threading.Thread(target=_sampler, args=(upstream, path, stop, samples), daemon=True)
    try:
        for thread in callers + [sampler]:
            thread.start()
        sleep_until(began + plan.outage_healthy)
        down = _switch(upstream, path, status(503), samples)
        sleep_until(down + plan.outage_length)
        up = _switch(upstream, path, HEALTHY, samples)
        for caller in callers:
            caller.join(timeout=stop_at - time.monotonic() + 60)
    finally:
        stop.set()
        sampler.join(timeout=10)
        client.close()
    samples.append(upstream.stamped_hits(path))
    calls = sorted((c for sink in sinks for c in sink), key=lambda c: c.start)
    return Run(calls, sorted(samples), began, down, up)


# -- what a run shows ------------------------------------------------------


@dataclass
class Figures:
    amplification: float  # upstream requests per call started during the outage
    after_open: Optional[float]  # the same, from the first fast rejection on
    opened_after: Optional[float]  # s from the outage's start to the first rejection
    p50_ms: float
    p99_ms: float
    first_ok: float  # s from recovery to the first successful call
    all_ok: float  # s from recovery to the end of the last failed call
    healthy_p99_ms: float


def _per_call(run: Run, since: float) -> float:
    calls = sum(1 for c in run.calls if since <= c.start < run.up)
    return ratio(run.hits_at(run.up) - run.hits_at(since), calls)


def figures(run: Run) -> Figures:
    during = [c for c in run.calls if run.down <= c.start < run.up]
    rejected = [c.start for c in during if c.result == REJECTED]
    opened = rejected[0] if rejected else None
    healthy = [
        c.latency_ms
        for c in run.calls
        if run.began + (run.down - run.began) / 3 <= c.start and c.end < run.down
    ]
    after = [c for c in run.calls if c.end >= run.up]
    first_ok = min((c.end for c in after if c.result == OK), default=float("nan"))
    last_bad = max((c.end for c in after if c.result != OK), default=run.up)
    return Figures(
        amplification=_per_call(run, run.down),
        after_open=_per_call(run, opened) if opened is not None else None,
        opened_after=opened - run.down if opened is not None else None,
        p50_ms=percentile([c.latency_ms for c in during], 50),
        p99_ms=percentile([c.latency_ms for c in during], 99),
        first_ok=first_ok - run.up,
        all_ok=last_bad - run.up,
        healthy_p99_ms=percentile(healthy, 99),
    )


def _median_of(values: List[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return median(present) if present else None


def outage(upstream: Upstream, plan: Plan, plot_dir: str) -> Section:
    """Run every contender through the outage, interleaved, and report."""
    runs = interleaved(NAMES, plan.outage_rounds, lambda name, _: _run(upstream, name, plan))
    figs: Dict[str, List[Figures]] = {name: [figures(r) for r in rs] for name, rs in runs.items()}
    med = {
        name: {
            field: _median_of([getattr(f, field) for f in fs])
            for field in Figures.__dataclass_fields__
        }
        for name, fs in figs.items()
    }
    rows = []
    for name in NAMES:
        m = med[name]
        rows.append(
            [
                LABELS[name],
                f"{m['amplification']:.3f}",
                f"{m['after_open']:.4f}" if m["after_open"] is not None else "no breaker",
                fmt(m["opened_after"] * 1000, 0, " ms") if m["opened_after"] is not None else "–",
                fmt(m["p50_ms"], 2),
                fmt(m["p99_ms"], 1),
                fmt_ratio(ratio(m["p50_ms"], med["plain"]["p50_ms"])),
                fmt(m["first_ok"] * 1000, 0, " ms"),
                fmt(m["all_ok"] * 1000, 0, " ms"),
            ]
        )
    headers = [
        "contender",
        "upstream requests per call (outage)",
        "… after the breaker opened",
        "breaker opened after",
        "p50 ms (outage)",
        "p99 ms (outage)",
        "p50 vs plain",
        "recovery → first 200",
        "recovery → last failed call ends",
    ]
    plot = plots.outage_timeline(
        {name: rs[0] for name, rs in runs.items()}, LABELS, f"{plot_dir}/outage_latency.png"
    )
    return Section(
        title="4. Outage and recovery",
        setup=(
            f"{plan.outage_threads} threads call continuously (a {THINK * 1000:g} ms pause between a thread's "
            f"calls). The route answers 200 after 5 ms for {plan.outage_healthy:g} s, then 503 at once to every "
            f"request for {plan.outage_length:g} s, then 200 again for {plan.outage_after:g} s; "
            f"{plan.outage_rounds} interleaved round(s), medians shown. **Every breaker's recovery timeout "
            f"is {RECOVERY_TIMEOUT:g} s here** (pybreaker's `reset_timeout` too), so recovery shows within the run. "
            "Upstream requests are read from the upstream's counter (sampled every 50 ms and at each switch) "
            "and divided by the calls started in the same interval."
        ),
        goals=_goals(med, figs),
        tables=[Table(headers, rows)],
        plots=[plot],
        notes=[
            "Plain requests and urllib3's Retry have no breaker: every call of theirs reaches the upstream "
            "(urllib3 up to 4 times), and they see recovery at once — the price of a breaker is up to one "
            "recovery timeout of refusals after the upstream is back.",
            "How long the breakers keep refusing after recovery depends on where recovery falls between "
            "two half-open trials (one per recovery timeout): anywhere from 0 to 1 s here.",
            "Before a breaker opens, calls already in their retry waits finish with the 503 they had; "
            "after it opens, a call is refused in microseconds and only the half-open trial (one per "
            "recovery timeout) reaches the upstream.",
        ],
    )


def _goals(
    med: Dict[str, Dict[str, Optional[float]]], figs: Dict[str, List[Figures]]
) -> List[Goal]:
    goals = []
    for name in ("resilient", "resilient-fast"):
        m = med[name]
        after = m["after_open"]
        goals.append(
            Goal(
                f"{LABELS[name]}: ≤ 1.1 upstream requests per call after the breaker opens",
                after is not None and after <= 1.1,
                f"{after:.4f}" if after is not None else "breaker never opened",
            )
        )
        allowance = RECOVERY_TIMEOUT + (m["healthy_p99_ms"] or 0) / 1000 + THINK
        worst = max(f.all_ok for f in figs[name])
        goals.append(
            Goal(
                f"{LABELS[name]}: calls succeed again within recovery_timeout + one trial "
                f"({allowance * 1000:.0f} ms: 1 s + healthy p99 + one pause)",
                (m["all_ok"] or 0) <= allowance,
                f"median {m['all_ok'] * 1000:.0f} ms, worst {worst * 1000:.0f} ms",
            )
        )
    return goals
