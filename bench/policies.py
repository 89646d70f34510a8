"""Scenarios 8, 9 and 10: breaker policies and hedged requests.

8. A dependency failing 40% of calls in random order: the default breaker
   (5 failures in a row) against the failure-rate policy.
9. A dependency whose replies slow from 5 ms to 2 s, under calls arriving at a
   fixed rate: the default breaker against the slow-call rule, and the bulkhead.
10. p99 latency with hedged requests and without, at the same load.

Every contender is a ``ResilientSession`` with the settings given here; every
session and thread a scenario starts is closed or joined before it returns.
"""

from __future__ import annotations

import math
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import resilient_requests as rr
from resilient_requests.testing import ok, status

from .plan import Plan
from .report import Goal, Section, Table, fmt, fmt_ratio
from .stats import interleaved, median, percentile, ratio, sleep_until
from .upstream import Upstream

__all__ = ["failure_rate", "slow_replies", "hedging"]

#: Every breaker's recovery timeout here: once open, it stays open for the trial or phase.
STAYS_OPEN = 60.0


# -- 8. failure rate -----------------------------------------------------------

FAIL_SHARE = 0.4
STREAK = rr.CircuitBreakerConfig().failure_threshold  # 5
RATE = {"failure_rate_threshold": 0.3, "window_size": 50, "minimum_calls": 20}
RATE_POLICIES = {
    "consecutive": rr.CircuitBreakerConfig(recovery_timeout=STAYS_OPEN),
    "rate": rr.CircuitBreakerConfig(policy="rate", recovery_timeout=STAYS_OPEN, **RATE),
}
RATE_LABELS = {
    "consecutive": "consecutive (5 in a row, the default)",
    "rate": "rate (≥ 30% of the last 50 calls, from 20)",
}
#: The window the goals look at: the rate policy's window.
WITHIN = 50


class _Opens:
    """A listener noting the call (by number) during which the breaker opened."""

    def __init__(self) -> None:
        self.call = 0
        self.at: List[int] = []

    def breaker_state_changed(self, event: rr.BreakerStateChanged) -> None:
        if event.new == "open":
            self.at.append(self.call)


@dataclass
class _Trial:
    opened_at: Optional[int]  # the call whose failure opened the breaker
    opens: int
    predicted: Optional[int]  # where the policy's rule says it opens
    requests: int  # what the upstream received
    failed_fast: int


def _failures(seed: int, calls: int) -> List[bool]:
    """Exactly 40% failures, in an order drawn from ``seed``."""
    failed = [True] * round(calls * FAIL_SHARE) + [False] * (calls - round(calls * FAIL_SHARE))
    random.Random(seed).shuffle(failed)
    return failed


def _rule(policy: str, failed: Sequence[bool]) -> Optional[int]:
    """The call at which the policy's rule, applied to ``failed``, opens the breaker."""
    run = 0
    for number, bad in enumerate(failed, 1):
        run = run + 1 if bad else 0
        if policy == "consecutive" and run >= STREAK:
            return number
        if policy == "rate" and number >= RATE["minimum_calls"]:
            recent = failed[max(0, number - int(RATE["window_size"])) : number]
            if sum(recent) / len(recent) >= RATE["failure_rate_threshold"]:
                return number
    return None


def _streak_odds(calls: int, failures: int, horizons: Sequence[int]) -> Dict[int, float]:
    """Per horizon h: the chance that a random order of ``failures`` failures among
    ``calls`` calls has ``STREAK`` failures in a row within its first h calls.
    Exact: a dynamic programme counts the prefixes of length h with no such streak
    by (failures placed, current streak); each leaves C(calls - h, failures - placed)
    orders of the rest, out of C(calls, failures)."""
    ways = {(0, 0): 1}
    odds = {}
    for length in range(1, calls + 1):
        grown: Dict[Tuple[int, int], int] = {}
        for (placed, run), count in ways.items():
            if length - placed <= calls - failures:  # a success still left to place
                grown[(placed, 0)] = grown.get((placed, 0), 0) + count
            if placed < failures and run + 1 < STREAK:
                key = (placed + 1, run + 1)
                grown[key] = grown.get(key, 0) + count
        ways = grown
        if length in horizons:
            clear = sum(
                count * math.comb(calls - length, failures - placed)
                for (placed, _), count in ways.items()
            )
            odds[length] = 1 - clear / math.comb(calls, failures)
    return odds


def _rate_trial(upstream: Upstream, policy: str, plan: Plan, seed: int) -> _Trial:
    path = f"/rate/{policy}"
    failed = _failures(seed, plan.rate_calls)
    upstream.route(path, *[status(503) if bad else ok() for bad in failed], cycle=True)
    before = upstream.hits(path)
    config = rr.ClientConfig(
        retry=rr.RetryConfig(max_attempts=1), circuit_breaker=RATE_POLICIES[policy]
    )
    session = rr.ResilientSession(config, isolated=True)  # measured alone: no shared compartment
    opens = _Opens()
    session.add_listener(opens)
    failed_fast = 0
    url = upstream.url(path)
    try:
        for number in range(1, plan.rate_calls + 1):
            opens.call = number
            try:
                session.get(url)
            except rr.CircuitOpenError:
                failed_fast += 1
    finally:
        session.close()
    return _Trial(
        opens.at[0] if opens.at else None,
        len(opens.at),
        _rule(policy, failed),
        upstream.hits(path) - before,
        failed_fast,
    )


def failure_rate(upstream: Upstream, plan: Plan) -> Section:
    """40% of calls fail in random order: how often, and how soon, each breaker opens."""
    policies = tuple(RATE_POLICIES)
    trials = interleaved(
        policies,
        plan.rate_trials,
        lambda policy, number: _rate_trial(upstream, policy, plan, 8000 + number),
    )
    horizons = sorted({20, WITHIN, plan.rate_calls // 2, plan.rate_calls})
    failures = round(plan.rate_calls * FAIL_SHARE)
    odds = _streak_odds(plan.rate_calls, failures, horizons)

    def share(ts: List[_Trial], h: int) -> float:
        return sum(t.opened_at is not None and t.opened_at <= h for t in ts) / len(ts)

    rows, by_call = [], []
    for policy, ts in trials.items():
        opened = [t.opened_at for t in ts if t.opened_at is not None]
        rows.append(
            [
                RATE_LABELS[policy],
                fmt(len(ts)),
                f"{len(opened)} ({len(opened) / len(ts) * 100:.0f}%)",
                fmt(median(opened), 0),
                fmt(percentile(opened, 90), 0),
                f"{sum(t.opened_at == t.predicted and t.opens <= 1 for t in ts)}/{len(ts)}",
                fmt(median(t.requests for t in ts), 0),
                fmt(median(t.failed_fast for t in ts), 0),
                fmt(sum(t.requests for t in ts)),
            ]
        )
        by_call.append(
            [f"{RATE_LABELS[policy]}, measured"] + [f"{share(ts, h) * 100:.0f}%" for h in horizons]
        )
    by_call.insert(
        1,
        [f"{STREAK} failures in a row, computed"] + [f"{odds[h] * 100:.1f}%" for h in horizons],
    )
    headers = [
        "policy",
        "trials",
        "breaker opened",
        "median calls until it opened",
        "p90 of those",
        "opened at the call its rule names",
        "upstream requests per trial (median)",
        "calls failed fast per trial (median)",
        "upstream requests, all trials",
    ]
    rate, consecutive = trials["rate"], trials["consecutive"]
    everywhere = all(
        t.opened_at == t.predicted and t.opens <= 1 for ts in trials.values() for t in ts
    )
    goals = [
        Goal(
            f"rate policy open within {WITHIN} calls in ≥ 95% of trials",
            share(rate, WITHIN) >= 0.95,
            f"{share(rate, WITHIN) * 100:.0f}% of {len(rate)}",
        ),
        Goal(
            f"consecutive policy open within {WITHIN} calls in a minority of trials",
            share(consecutive, WITHIN) < 0.5,
            f"{share(consecutive, WITHIN) * 100:.0f}% of {len(consecutive)} "
            f"(computed {odds[WITHIN] * 100:.1f}%)",
        ),
        Goal(
            "each breaker opens once, at the call its rule names, in every trial",
            everywhere,
            "yes" if everywhere else "no: see the table",
        ),
    ]
    mean_wait = (1 - FAIL_SHARE**STREAK) / ((1 - FAIL_SHARE) * FAIL_SHARE**STREAK)
    return Section(
        title="8. Failure rate: 40% of calls fail in random order",
        setup=(
            f"{plan.rate_trials} trials per policy, interleaved, each of {plan.rate_calls} sequential "
            f"GETs through a fresh `ResilientSession` with retries off (`RetryConfig(max_attempts=1)`: "
            f"one call, one request) and `recovery_timeout={STAYS_OPEN:g}` (an open breaker stays "
            f"open for the trial). The route plays a script of {plan.rate_calls} replies, exactly "
            f"{FAIL_SHARE * 100:g}% of them 503 and the rest 200, shuffled with a seed of its own per "
            "trial; both policies meet the same orders. Policies: `CircuitBreakerConfig()` "
            f'(`failure_threshold={STREAK}`) and `CircuitBreakerConfig(policy="rate", '
            f"failure_rate_threshold={RATE['failure_rate_threshold']}, "
            f"window_size={RATE['window_size']}, minimum_calls={RATE['minimum_calls']})`. "
            'A listener notes the call during which the breaker opened; "the call its rule names" '
            "applies the policy's rule to the trial's script in the benchmark itself."
        ),
        goals=goals,
        tables=[
            Table(headers, rows),
            Table(
                ["", *[f"by call {h}" for h in horizons]],
                by_call,
                caption="Trials with the breaker open, by call number",
            ),
        ],
        notes=[
            "The computed row is exact for these scripts: a dynamic programme counts the orders "
            f"of {failures} failures among {plan.rate_calls} calls that hold no {STREAK} failures "
            "in a row within the first N calls.",
            f"The consecutive policy is late and erratic rather than blind: at a {FAIL_SHARE:.0%} "
            f"failure rate, {STREAK} failures in a row come after "
            f"(1 − p⁵) / ((1 − p) p⁵) = {mean_wait:.0f} calls on average (independent calls), so it "
            f"opens within {plan.rate_calls} calls in most trials, and within one rate window "
            f"({WITHIN} calls) in about one in {1 / odds[WITHIN]:.0f}.",
            f"The rate policy decides at call {RATE['minimum_calls']} (its `minimum_calls`) in most "
            f"trials: {FAIL_SHARE:.0%} failures put the share of the first "
            f"{RATE['minimum_calls']} calls under {RATE['failure_rate_threshold']:.0%} only by chance.",
        ],
    )


# -- 9. slow replies -------------------------------------------------------------

FAST_REPLY, SLOW_REPLY = 0.005, 2.0
FAST = ok(delay=FAST_REPLY)
ARRIVALS = 25.0  # calls per second, however long the earlier ones take
STEP = 0.1  # the route's delay changes this often during the ramp
SAMPLE_EVERY = 0.005
SLOTS, ACQUIRE = 16, 0.05
READ_TIMEOUT = SLOW_REPLY + 3.0  # slow replies succeed
#: Little's law: slots in use = arrival rate × latency, so every slot is taken
#: once calls last longer than this (0.64 s).
FILLS_AT = SLOTS / ARRIVALS
SLOW_RULE: Dict[str, Any] = {
    "slow_call_duration": 0.3,
    "slow_call_rate_threshold": 0.5,
    "window_type": "count",
    "window_size": 20,
    "minimum_calls": 10,
}
SLOW_AFTER = SLOW_RULE["slow_call_duration"]
#: The same rule with the rate policy's own window: 100 calls, from 20, every one slow.
DEFAULT_WINDOW = {
    key: getattr(rr.CircuitBreakerConfig(), key)
    for key in ("slow_call_rate_threshold", "window_size", "minimum_calls")
}
SLOW_POLICIES = {
    "consecutive": rr.CircuitBreakerConfig(recovery_timeout=STAYS_OPEN),
    "slow-call": rr.CircuitBreakerConfig(policy="rate", recovery_timeout=STAYS_OPEN, **SLOW_RULE),
}
SLOW_LABELS = {
    "consecutive": "consecutive (the default)",
    "slow-call": f"rate + slow calls (> {SLOW_AFTER:g} s, ≥ 50% of the last 20)",
}
# What one call came to.
OK, FAILED, BREAKER, BULKHEAD = "ok", "failed", "breaker open", "bulkhead full"


def _ramp(plan: Plan) -> List[float]:
    """The route's delay at each step of the slow phase: a linear ramp from
    5 ms (before the first step) to 2 s (the last step), one step per ``STEP``."""
    steps = max(1, round(plan.slow_length / STEP))
    return [FAST_REPLY + (SLOW_REPLY - FAST_REPLY) * k / steps for k in range(1, steps + 1)]


def _reached(ramp: Sequence[float], delay: float) -> float:
    """Seconds into the ramp from which the route's delay is at least ``delay``."""
    return next((k * STEP for k, d in enumerate(ramp) if d >= delay), math.inf)


class _Opening:
    """A listener noting when the breaker opened (listeners hear of a change
    just after it is stored)."""

    def __init__(self) -> None:
        self.at: Optional[float] = None

    def breaker_state_changed(self, event: rr.BreakerStateChanged) -> None:
        if event.new == "open" and self.at is None:
            self.at = time.monotonic()


@dataclass
class _SlowModel:
    """The schedule worked out on paper: calls every 1/ARRIVALS s, each lasting
    exactly the delay in force when it arrives (no overheads). Times are s into the ramp."""

    opens: Optional[float]  # the slow-call rule opens the breaker
    peak_before: int  # most calls in flight before then (no bulkhead limit)
    full: Optional[float]  # every slot taken, with no breaker open


def _slow_model(plan: Plan, rule: Dict[str, Any]) -> _SlowModel:
    ramp = _ramp(plan)
    healthy = round(plan.slow_healthy * ARRIVALS)
    arrivals = [
        (n - healthy) / ARRIVALS for n in range(healthy + round(plan.slow_length * ARRIVALS))
    ]
    spans = [
        (a, a + (FAST_REPLY if a < 0 else ramp[min(int(a / STEP + 1e-9), len(ramp) - 1)]))
        for a in arrivals
    ]

    def in_use(moment: float) -> int:
        return sum(start <= moment < end for start, end in spans)

    window: List[bool] = []  # the count window's slow flags, oldest first
    opens = None
    for start, end in sorted(spans, key=lambda span: span[1]):  # calls are counted as they end
        if end > plan.slow_length:
            break  # the ramp is over
        window = (window + [end - start > rule["slow_call_duration"]])[-int(rule["window_size"]) :]
        if (
            len(window) >= rule["minimum_calls"]
            and sum(window) / len(window) >= rule["slow_call_rate_threshold"]
        ):
            opens = end
            break
    before = [a for a in arrivals if opens is None or a < opens]
    return _SlowModel(
        opens,
        max((in_use(a) for a in before), default=0),
        next((a for a in arrivals if in_use(a) >= SLOTS), None),
    )


@dataclass
class _SlowRun:
    """One policy through one ramp (times are ``time.monotonic()``)."""

    calls: List[Tuple[float, float, float, str]]  # due, started, ended, what it came to
    samples: List[Tuple[float, int]]  # bulkhead slots in use
    steps: List[Tuple[float, float]]  # when the route's delay changed, and to what
    ramp_at: float
    opened: Optional[float]
    requests: int  # the upstream received, during the ramp
    counters: Dict[str, Any]  # session.stats() for the origin, at the end


def _slow_call(session: rr.ResilientSession, url: str, due: float, sink: List) -> None:
    """One call, on a pool worker; what it came to goes to ``sink``."""
    started = time.monotonic()
    try:
        response = session.get(url)
        result = OK if response.status_code == 200 else FAILED
    except rr.CircuitOpenError:
        result = BREAKER
    except rr.PoolTimeoutError:
        result = BULKHEAD
    except Exception:
        result = FAILED
    sink.append((due, started, time.monotonic(), result))


def _dispatch(
    pool: ThreadPoolExecutor,
    session: rr.ResilientSession,
    url: str,
    first: float,
    ends: float,
    stop: threading.Event,
    sink: List,
    futures: List["Future[None]"],
) -> None:
    """Open-loop load: hand the pool a call every 1/ARRIVALS s from ``first`` until
    ``ends``, however long the earlier calls take."""
    for number in range(int((ends - first) * ARRIVALS) + 1):
        due = first + number / ARRIVALS
        if due >= ends - 1e-6 or stop.wait(max(0.0, due - time.monotonic())):
            break
        futures.append(pool.submit(_slow_call, session, url, due, sink))


def _bulkhead_sampler(
    session: rr.ResilientSession, stop: threading.Event, samples: List[Tuple[float, int]]
) -> None:
    for _ in range(100_000):
        if stop.wait(SAMPLE_EVERY):
            break
        samples.append((time.monotonic(), session.stats()["bulkhead"]["in_use"]))


def _slow_run(upstream: Upstream, policy: str, plan: Plan) -> _SlowRun:
    path = f"/slow/{policy}"
    url = upstream.url(path)
    upstream.route(path, FAST)
    config = rr.ClientConfig(
        timeout=rr.TimeoutConfig(read=READ_TIMEOUT),
        retry=rr.RetryConfig(max_attempts=1),
        circuit_breaker=SLOW_POLICIES[policy],
        bulkhead=rr.BulkheadConfig(max_concurrency=SLOTS, acquisition_timeout=ACQUIRE),
    )
    session = rr.ResilientSession(config, isolated=True)  # measured alone: no shared compartment
    opening = _Opening()
    session.add_listener(opening)
    pool = ThreadPoolExecutor(max_workers=plan.slow_threads, thread_name_prefix="bench-slow")
    calls: List[Tuple[float, float, float, str]] = []
    futures: List["Future[None]"] = []
    samples: List[Tuple[float, int]] = []
    steps: List[Tuple[float, float]] = []
    stop, sampled = threading.Event(), threading.Event()
    began = time.monotonic()
    ramp_at = began + plan.slow_healthy
    ends = ramp_at + plan.slow_length
    dispatcher = threading.Thread(
        target=_dispatch,
        args=(pool, session, url, began, ends, stop, calls, futures),
        daemon=True,
    )
    sampler = threading.Thread(
        target=_bulkhead_sampler, args=(session, sampled, samples), daemon=True
    )
    settle = READ_TIMEOUT + ACQUIRE + 5  # the longest a call already handed to the pool can take
    requests = 0
    try:
        sampler.start()
        dispatcher.start()
        sleep_until(ramp_at)
        before = upstream.hits(path)
        for number, delay in enumerate(_ramp(plan)):
            sleep_until(ramp_at + number * STEP)
            steps.append((upstream.switch(path, ok(delay=delay)), delay))
        sleep_until(ends)
        requests = upstream.hits(path) - before
        upstream.route(path, FAST)  # calls in flight keep their delay; no new one is slow
        dispatcher.join(timeout=5)
        if dispatcher.is_alive():
            raise RuntimeError("the dispatcher did not stop")
        if wait(futures, timeout=settle).not_done:
            raise RuntimeError("a call did not finish")
        upstream.drain(5)
    finally:
        stop.set()
        dispatcher.join(timeout=5)
        wait(list(futures), timeout=settle)
        pool.shutdown(wait=True, cancel_futures=True)
        sampled.set()
        sampler.join(timeout=5)
        counters = next(iter(session.stats()["origins"].values()), {})
        session.close()
    return _SlowRun(sorted(calls), samples, steps, ramp_at, opening.at, requests, counters)


@dataclass
class _SlowFigures:
    opened_after: Optional[float]  # s into the ramp
    delay_at_open: Optional[float]  # the route's delay then
    peak_before: int  # most slots in use before it opened (in the whole run if it did not)
    full_after: Optional[float]  # s into the ramp when every slot was first taken
    delay_at_full: Optional[float]
    rejected_before: int  # calls the bulkhead refused before the breaker opened
    rejected_after: int
    failed_fast: int  # calls the open breaker refused
    slow_ok: int  # successful calls slower than the slow-call threshold
    calls: int  # calls due during the ramp
    requests: int
    lag: float  # the latest a call started after it was due (s)


def _delay_at(run: _SlowRun, moment: float) -> float:
    """The route's delay in force at ``moment``."""
    delay = FAST_REPLY
    for at, value in run.steps:
        if at > moment:
            break
        delay = value
    return delay


def _slow_figures(run: _SlowRun) -> _SlowFigures:
    opened = run.opened if run.opened is not None else math.inf
    full = min(
        [t for t, n in run.samples if n >= SLOTS][:1]
        + [c[1] for c in run.calls if c[2] == BULKHEAD][:1],  # a refusal: every slot was taken
        default=None,
    )
    refused = [c for c in run.calls if c[3] == BULKHEAD]
    return _SlowFigures(
        opened_after=run.opened - run.ramp_at if run.opened is not None else None,
        delay_at_open=_delay_at(run, run.opened) if run.opened is not None else None,
        peak_before=max((n for t, n in run.samples if t < opened), default=0),
        full_after=full - run.ramp_at if full is not None else None,
        delay_at_full=_delay_at(run, full) if full is not None else None,
        rejected_before=sum(c[1] < opened for c in refused),
        rejected_after=sum(c[1] >= opened for c in refused),
        failed_fast=sum(c[3] == BREAKER for c in run.calls),
        slow_ok=sum(c[3] == OK and c[2] - c[1] > SLOW_AFTER for c in run.calls),
        calls=sum(c[0] >= run.ramp_at for c in run.calls),
        requests=run.requests,
        lag=max((c[1] - c[0] for c in run.calls), default=0.0),
    )


def _gap(model: _SlowModel) -> str:
    """When the rule opens, against when the slots run out, in words."""
    if model.opens is None:
        return "does not open within the ramp"
    if model.full is None:
        return f"opens {model.opens:.2f} s into the ramp; the slots never all fill"
    gap = model.full - model.opens
    return f"opens {abs(gap):.2f} s {'before' if gap > 0 else 'after'} the slots are all taken"


def _moment(after: Optional[float], delay: Optional[float]) -> str:
    if after is None or delay is None:
        return "never"
    return f"{after:.2f} s ({delay:.2f} s)"


def slow_replies(upstream: Upstream, plan: Plan) -> Section:
    """Replies slow from 5 ms to 2 s under open-loop load: does the breaker open
    before the bulkhead fills?"""
    policies = tuple(SLOW_POLICIES)
    runs = interleaved(policies, plan.slow_rounds, lambda p, _: _slow_run(upstream, p, plan))
    figs = {p: [_slow_figures(r) for r in rs] for p, rs in runs.items()}
    ramp, model = _ramp(plan), _slow_model(plan, SLOW_RULE)
    defaults = _slow_model(plan, {**SLOW_RULE, **DEFAULT_WINDOW})

    def med(policy: str, field: str) -> Optional[float]:
        present = [v for v in (getattr(f, field) for f in figs[policy]) if v is not None]
        return median(present) if present else None

    seen = {
        p: (
            sum(c[3] == BULKHEAD for r in rs for c in r.calls),
            sum(int(r.counters.get("rejected", 0)) for r in rs),
            sum(c[3] == BREAKER for r in rs for c in r.calls),
            sum(int(r.counters.get("short_circuited", 0)) for r in rs),
        )
        for p, rs in runs.items()
    }
    rows = []
    for policy in policies:
        fs = figs[policy]
        opened = sum(f.opened_after is not None for f in fs)
        full = sum(f.full_after is not None for f in fs)
        rows.append(
            [
                SLOW_LABELS[policy],
                f"{opened}/{len(fs)}",
                _moment(med(policy, "opened_after"), med(policy, "delay_at_open")),
                f"{max(f.peak_before for f in fs)}/{SLOTS}",
                f"{full}/{len(fs)}: {_moment(med(policy, 'full_after'), med(policy, 'delay_at_full'))}"
                if full
                else f"0/{len(fs)}",
                f"{med(policy, 'rejected_before'):,.0f} / {med(policy, 'rejected_after'):,.0f}",
                fmt(med(policy, "failed_fast"), 0),
                fmt(med(policy, "slow_ok"), 0),
                f"{fmt(med(policy, 'requests'), 0)} of {fmt(med(policy, 'calls'), 0)}",
            ]
        )
    headers = [
        "policy",
        "rounds it opened",
        "opened: s into the ramp (route delay then)",
        "most slots in use before it opened (all rounds)",
        "rounds the bulkhead was full: first full, s into the ramp (route delay then)",
        "bulkhead rejections (before / after it opened)",
        "calls failed fast (breaker open)",
        f"slow successes (> {SLOW_AFTER:g} s)",
        "upstream requests during the ramp (of the calls due then)",
    ]

    def then(moment: Optional[float]) -> Optional[float]:
        return ramp[min(int(moment / STEP), len(ramp) - 1)] if moment is not None else None

    window = (
        f"{DEFAULT_WINDOW['window_size']:g} calls, from {DEFAULT_WINDOW['minimum_calls']}, "
        f"slow_call_rate_threshold={DEFAULT_WINDOW['slow_call_rate_threshold']:g}"
    )
    model_rows = [
        [
            "the slow-call rule opens (half of the last 20 replies ended slow)",
            _moment(model.opens, then(model.opens)),
            str(model.peak_before),
        ],
        [
            f"the same, with the rate policy's default window ({window})",
            _moment(defaults.opens, then(defaults.opens)),
            str(defaults.peak_before),
        ],
        ["no breaker: every slot taken", _moment(model.full, then(model.full)), str(SLOTS)],
    ]
    rule, default = figs["slow-call"], figs["consecutive"]
    goals = [
        Goal(
            "slow-call rule opens before the bulkhead is first full, every round (most slots in "
            f"use before it opened < {SLOTS}, no bulkhead rejection before it opened)",
            all(
                f.opened_after is not None and f.peak_before < SLOTS and f.rejected_before == 0
                for f in rule
            ),
            "; ".join(
                f"opened at {_moment(f.opened_after, f.delay_at_open)}, at most "
                f"{f.peak_before}/{SLOTS} slots before, {f.rejected_before} rejections"
                if f.opened_after is not None
                else f"did not open, {f.peak_before}/{SLOTS} slots, {f.rejected_before} rejections"
                for f in rule
            ),
        ),
        Goal(
            "consecutive policy stays closed, fills the bulkhead and it rejects calls, every round",
            all(
                f.opened_after is None and f.full_after is not None and f.rejected_before > 0
                for f in default
            ),
            "; ".join(
                f"{'opened' if f.opened_after is not None else 'closed'}, full at "
                f"{_moment(f.full_after, f.delay_at_full)}, {f.rejected_before:,} rejections"
                for f in default
            ),
        ),
    ]
    settings = ", ".join(f"{k}={v!r}" for k, v in SLOW_RULE.items())
    return Section(
        title="9. Slow replies: 5 ms, rising to 2 s",
        setup=(
            f"Open-loop load: a dispatcher thread hands a call to a `ThreadPoolExecutor` of "
            f"{plan.slow_threads} workers every {1000 / ARRIVALS:g} ms ({ARRIVALS:g} calls/s), however "
            "long the earlier calls take, as requests reach a web app's worker threads. Every call "
            f"goes through one `ResilientSession` with a bulkhead of {SLOTS} slots "
            f"(`BulkheadConfig(max_concurrency={SLOTS}, acquisition_timeout={ACQUIRE:g})`), retries "
            f"off, a read timeout of {READ_TIMEOUT:g} s (slow replies succeed) and "
            f"`recovery_timeout={STAYS_OPEN:g}`. By Little's law (slots in use = arrival rate × "
            f"latency) the {SLOTS} slots are all taken once calls last longer than "
            f"{SLOTS} / {ARRIVALS:g} = {FILLS_AT:.2f} s. The route answers 200 after "
            f"{FAST_REPLY * 1000:g} ms for {plan.slow_healthy:g} s, then its delay ramps up "
            f"linearly to {SLOW_REPLY:g} s over {plan.slow_length:g} s, in {len(ramp)} steps of "
            f"{STEP * 1000:g} ms (step k: {FAST_REPLY * 1000:g} ms + k/{len(ramp)} × "
            f"{(SLOW_REPLY - FAST_REPLY) * 1000:g} ms, +{(ramp[1] - ramp[0]) * 1000:.0f} ms a step): "
            f"≥ {SLOW_AFTER:g} s from {_reached(ramp, SLOW_AFTER):.1f} s into the ramp, "
            f"≥ {FILLS_AT:.2f} s from {_reached(ramp, FILLS_AT):.1f} s, {SLOW_REPLY:g} s for its "
            f"last {STEP * 1000:g} ms; then a fast route again, and the calls in flight are waited "
            f"for. {plan.slow_rounds} interleaved round(s), medians shown. Policies: "
            f'`CircuitBreakerConfig()` and `CircuitBreakerConfig(policy="rate", {settings})`. '
            f'A sampler thread reads `session.stats()["bulkhead"]["in_use"]` every '
            f"{SAMPLE_EVERY * 1000:g} ms; the bulkhead counts as full from the first reading of "
            f"{SLOTS} or the first call it refused, whichever is earlier; a listener notes when the "
            'breaker opened. "Route delay then" is the delay the route gave requests arriving at '
            "that moment."
        ),
        goals=goals,
        tables=[
            Table(headers, rows),
            Table(
                [
                    "event",
                    "s into the ramp (route delay then)",
                    "calls in flight at most before (no bulkhead limit)",
                ],
                model_rows,
                caption=(
                    f"Computed from the schedule alone: a call every {1000 / ARRIVALS:g} ms, each "
                    "lasting exactly the delay in force when it arrives"
                ),
            ),
        ],
        notes=[
            f"Why these settings: a slow call is known only when it ends, so the rule has to trip "
            f"on a latency well under the {FILLS_AT:.2f} s at which the slots run out. With "
            f"`slow_call_duration={SLOW_AFTER:g}` the rule needs 10 slow replies among the last 20 "
            f"(`minimum_calls` is met by the healthy phase), which takes 10 arrivals "
            f"({10 / ARRIVALS:g} s) after the delay passes {SLOW_AFTER:g} s plus the last one's own "
            "reply; the slots in use lag the delay, since the calls in flight arrived when it was "
            f"shorter. A `slow_call_duration` near {FILLS_AT:.2f} s would open only after the slots "
            "ran out. The rule follows from the load: keep it under slots / calls per second, with "
            "room for the window to fill.",
            f"The ramp is linear rather than geometric: a geometric one (×{SLOW_REPLY / FAST_REPLY:g} "
            "over the phase) would sit under 50 ms for most of it, then cross "
            f"{SLOW_AFTER:g} s → {FILLS_AT:.2f} s in a shorter stretch, leaving the rule less time. "
            f"With a step from 5 ms straight to {SLOW_REPLY:g} s no rule on call durations can open "
            f"first: {ARRIVALS:g} calls/s take the {SLOTS} slots in {FILLS_AT:.2f} s, and the "
            f"first slow call ends {SLOW_REPLY:g} s after the step.",
            f"On the computed schedule the rule {_gap(model)} "
            f"(the ramp's steepness decides the margin: {(ramp[1] - ramp[0]) * 1000:.0f} ms more "
            f"delay per {STEP * 1000:g} ms step here). With the rate policy's own window "
            f"({window}) it {_gap(defaults)}: it needs every one of the last "
            f"{DEFAULT_WINDOW['window_size']:g} replies slow, {DEFAULT_WINDOW['window_size'] / ARRIVALS:g} s "
            f"of arrivals after the delay passes {SLOW_AFTER:g} s, so "
            "`slow_call_duration` alone is not enough; the window and threshold must fit the load too.",
            "The default policy never opens: every reply is a 200, and it counts only failures. "
            "Its bulkhead turns callers away for the rest of the ramp while each slot waits out a "
            "slow reply; under the slow-call rule calls fail fast at the breaker without taking a "
            "slot, and the slots empty as the calls in flight end.",
            "Callers and `session.stats()` agree on what was refused, over whole runs: "
            + "; ".join(
                f"{SLOW_LABELS[p]}: {b:,} / {r:,} bulkhead rejections, {f:,} / {s:,} failed fast "
                "(callers / stats)"
                for p, (b, r, f, s) in seen.items()
            )
            + f". The pool never ran short of workers: calls started at most "
            f"{max(f.lag for fs in figs.values() for f in fs) * 1000:.0f} ms after they were due.",
        ],
    )


# -- 10. hedged requests ---------------------------------------------------------

HEDGE_FAST, HEDGE_SLOW = 0.010, 0.100
HEDGE_SLOW_SHARE = 3  # of 100 replies
HEDGE_WARM = 40  # sequential calls before measuring: the percentile needs samples
HEDGES = ("none", "fixed", "percentile")
HEDGE_LABELS = {
    "none": "ResilientSession() (no hedging)",
    "fixed": "hedge after a fixed 20 ms",
    "percentile": "hedge after the origin's p95",
}


def _hedge_script(seed: int = 10) -> List[float]:
    """100 reply delays: 97 fast, 3 slow, shuffled."""
    delays = [HEDGE_SLOW] * HEDGE_SLOW_SHARE + [HEDGE_FAST] * (100 - HEDGE_SLOW_SHARE)
    random.Random(seed).shuffle(delays)
    return delays


def _hedge_config(name: str) -> rr.ClientConfig:
    if name == "none":
        return rr.ClientConfig()
    hedge_config = getattr(rr, "HedgeConfig", None)
    if hedge_config is None:
        raise RuntimeError("resilient_requests has no HedgeConfig (hedging is not there yet)")
    delay = 0.02 if name == "fixed" else None
    return rr.ClientConfig(
        hedge=hedge_config(  # type: ignore[call-arg]
            enabled=True, delay=delay, percentile=0.95, min_samples=20, max_hedges=1
        )
    )


@dataclass
class _HedgeRun:
    latencies: List[float]  # ms, every measured call
    failed: int
    requests: int  # the upstream received, for the measured calls
    hedges: int  # the session's own count


def _hedge_caller(session: rr.ResilientSession, url: str, calls: int, sink: List) -> None:
    for _ in range(calls):
        started = time.perf_counter()
        try:
            good = session.get(url).status_code == 200
        except Exception:
            good = False
        sink.append(((time.perf_counter() - started) * 1000, good))


def _hedges(session: rr.ResilientSession) -> int:
    return sum(int(o.get("hedges", 0)) for o in session.stats()["origins"].values())


def _hedge_run(upstream: Upstream, name: str, plan: Plan) -> _HedgeRun:
    path = f"/hedge/{name}"
    url = upstream.url(path)
    script = [ok(delay=d) for d in _hedge_script()]
    session = rr.ResilientSession(_hedge_config(name), isolated=True)
    per_thread = plan.hedge_calls // plan.hedge_threads
    sinks: List[List[Tuple[float, bool]]] = [[] for _ in range(plan.hedge_threads)]
    callers = [
        threading.Thread(target=_hedge_caller, args=(session, url, per_thread, sink), daemon=True)
        for sink in sinks
    ]
    try:
        upstream.route(path, *script, cycle=True)
        for _ in range(HEDGE_WARM):
            session.get(url)
        upstream.drain(5)
        upstream.route(path, *script, cycle=True)  # every contender meets the script from its start
        before, hedged = upstream.hits(path), _hedges(session)
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(timeout=per_thread * (HEDGE_SLOW + 0.5) + 30)
        if any(caller.is_alive() for caller in callers):
            raise RuntimeError("a caller thread did not finish")
        upstream.drain(5)  # a hedge that lost may still be with the upstream
        requests, hedges = upstream.hits(path) - before, _hedges(session) - hedged
    finally:
        for caller in callers:
            if caller.ident is not None:
                caller.join(timeout=per_thread * (HEDGE_SLOW + 0.5) + 30)
        session.close()
    calls = [c for sink in sinks for c in sink]
    return _HedgeRun([c[0] for c in calls], sum(not c[1] for c in calls), requests, hedges)


def hedging(upstream: Upstream, plan: Plan) -> Section:
    """p99 with hedged requests against none, at the same load."""
    runs = interleaved(HEDGES, plan.hedge_rounds, lambda name, _: _hedge_run(upstream, name, plan))
    latencies = {n: [ms for r in rs for ms in r.latencies] for n, rs in runs.items()}
    p99 = {n: percentile(values, 99) for n, values in latencies.items()}
    extra: Dict[str, float] = {}
    rows = []
    for name, rs in runs.items():
        calls = len(latencies[name])
        extra[name] = ratio(sum(r.requests for r in rs), calls) - 1
        values = latencies[name]
        rows.append(
            [
                HEDGE_LABELS[name],
                fmt(calls),
                fmt(sum(r.failed for r in rs)),
                fmt(percentile(values, 50), 1),
                fmt(percentile(values, 90), 1),
                fmt(p99[name], 1),
                fmt(max(values), 1),
                fmt_ratio(ratio(p99[name], p99["none"])),
                f"{extra[name] * 100:+.1f}%",
                fmt(sum(r.hedges for r in rs)) if name != "none" else "–",
            ]
        )
    headers = [
        "contender",
        "calls",
        "failed",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "p99 vs no hedging",
        "extra upstream requests per call",
        "hedges (stats)",
    ]
    goals = [
        Goal(
            f"{HEDGE_LABELS[name]}: p99 ≤ 0.5× no hedging at < 15% extra requests",
            ratio(p99[name], p99["none"]) <= 0.5 and extra[name] < 0.15,
            f"{fmt_ratio(ratio(p99[name], p99['none']))}, {extra[name] * 100:+.1f}%",
        )
        for name in HEDGES[1:]
    ]
    delays = [d * 1000 for d in _hedge_script()]
    served = ", ".join(f"p{q} {percentile(delays, q):g} ms" for q in (50, 90, 95, 99))
    return Section(
        title="10. Hedged requests: the tail at the same load",
        setup=(
            f"{plan.hedge_threads} threads, {plan.hedge_calls:,} GETs per contender and round, "
            f"{plan.hedge_rounds} interleaved round(s); each contender gets a fresh session, "
            f"{HEDGE_WARM} sequential calls to warm up (not measured), then the route's script from "
            f"its start. The route cycles through a shuffled script of 100 replies: "
            f"{100 - HEDGE_SLOW_SHARE} after {HEDGE_FAST * 1000:g} ms and {HEDGE_SLOW_SHARE} after "
            f"{HEDGE_SLOW * 1000:g} ms (the script's own delays: {served}). Hedging: "
            "`ClientConfig(hedge=HedgeConfig(enabled=True, delay=0.02))` and "
            "`HedgeConfig(enabled=True, delay=None, percentile=0.95, min_samples=20)`, "
            "`max_hedges=1`. Latency is timed around each call; extra requests are the upstream's "
            "count for the measured calls, over the calls, minus one."
        ),
        goals=goals,
        tables=[Table(headers, rows)],
        notes=[
            f"The slow share is {HEDGE_SLOW_SHARE}%, below the 5% a p95 delay leaves above it: "
            "with 10% slow replies the origin's p95 is a slow reply itself, and a hedge sent then "
            "arrives when the first reply is due.",
            f"A hedged call is slow only when its hedge meets a slow reply too (about "
            f"{HEDGE_SLOW_SHARE}% of {HEDGE_SLOW_SHARE}%); otherwise it ends about one fast reply "
            "after the hedge went out.",
        ],
    )
