"""``python -m resilient_requests demo``: plain requests and ResilientSession
against the same flaky upstream, side by side.

A :class:`~resilient_requests.testing.FaultServer` on 127.0.0.1 goes through
three phases in wall-clock time: *healthy* (about 10% 503s and some slow
replies), an *outage* (every request hangs: no reply, the connection stays
open) and *recovery* (healthy again). The same paced batch of GET calls runs
on a ``ThreadPoolExecutor`` twice, first through a plain ``requests.Session``
with a legacy script's timeout, then through a :class:`ResilientSession`, each
against a fresh server. Then a table compares what the callers saw and what
the upstream received.

Everything stays on 127.0.0.1; every server, session and thread started here
is stopped before :func:`run` returns.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import math
import random
import sys
import textwrap
import time
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Tuple, cast

import requests

from .config import (
    BulkheadConfig,
    CircuitBreakerConfig,
    ClientConfig,
    LoggingConfig,
    RetryConfig,
    TimeoutConfig,
)
from .exceptions import CircuitOpenError, PoolTimeoutError
from .session import ResilientSession
from .testing import FaultServer, Hang, ok, status
from .testing.faults import Fault

__all__ = ["Plan", "make_plan", "demo_config", "run"]

LOGGER_NAME = "resilient_requests"
PATH = "/api/items"
PHASES = ("healthy", "outage", "recovery")

# Outcomes of one call, as the caller sees it.
OK, FAILED, CIRCUIT_OPEN, BULKHEAD_FULL = "ok", "failed", "circuit_open", "bulkhead_full"
FAILED_FAST = (CIRCUIT_OPEN, BULKHEAD_FULL)


# -- the plan: every duration of the full run, times ``scale`` ---------------

@dataclass(frozen=True)
class Plan:
    """The schedule and the knobs of one demo run (durations in seconds)."""

    quick: bool
    seed: int
    scale: float  # every duration below is the full run's, times this
    calls: int
    workers: int
    healthy: float
    outage: float
    recovery: float
    plain_timeout: float  # what the legacy script passes to requests
    slow_delay: float  # a slow, but healthy, reply
    late_after: float  # a call that returns later than this after it was due is "late"
    hang_limit: float  # the longest an outage request hangs if the client never gives up
    error_rate: float = 0.10
    slow_rate: float = 0.15

    @property
    def duration(self) -> float:
        """Seconds from the first call to the last one being due."""
        return self.healthy + self.outage + self.recovery

    @property
    def interval(self) -> float:
        """Seconds between two calls."""
        return self.duration / self.calls

    def phases(self) -> List[Tuple[str, float, float]]:
        """``(name, start, end)`` of each phase, in seconds from the start of a run."""
        outage_at = self.healthy
        recovery_at = self.healthy + self.outage
        return [("healthy", 0.0, outage_at), ("outage", outage_at, recovery_at),
                ("recovery", recovery_at, self.duration)]

    def phase_of(self, offset: float) -> str:
        """The phase a call due at ``offset`` seconds falls in."""
        for name, start, end in self.phases():
            if start <= offset < end:
                return name
        return PHASES[-1]

    def due(self, number: int) -> float:
        """When call ``number`` (from 0) is due, in seconds from the start."""
        return number * self.interval


def make_plan(quick: bool = False, seed: int = 1) -> Plan:
    """The full run (about 45 s), or the ``--quick`` one: every duration x 0.25, half the calls."""
    scale = 0.25 if quick else 1.0
    return Plan(
        quick=quick, seed=seed, scale=scale, calls=150 if quick else 300, workers=16,
        healthy=4.0 * scale, outage=12.0 * scale, recovery=5.0 * scale,
        plain_timeout=5.0 * scale, slow_delay=0.4 * scale, late_after=2.0 * scale,
        hang_limit=60.0,
    )


def demo_config(plan: Plan) -> ClientConfig:
    """The ResilientSession's config: fast_microservice-like, with short waits
    so that the breaker's recovery shows within the run."""
    s = plan.scale
    return ClientConfig(
        timeout=TimeoutConfig(connect=0.5 * s, read=1.0 * s, write=1.0 * s, pool=0.5 * s),
        retry=RetryConfig(max_attempts=2, min_wait=0.1 * s, max_wait=0.5 * s, multiplier=2.0, jitter=True),
        # 5, not fast_microservice's 3: three 503s in a row out of the healthy
        # phase's 10% would open the breaker now and then with no outage at all.
        circuit_breaker=CircuitBreakerConfig(failure_threshold=5, recovery_timeout=2.0 * s),
        bulkhead=BulkheadConfig(max_concurrency=8, acquisition_timeout=0.25 * s),
        logging=LoggingConfig(level="INFO"),
    )


# -- the upstream's script ---------------------------------------------------

def _healthy_script(rng: random.Random, plan: Plan, length: int) -> Tuple[Fault, ...]:
    faults: List[Fault] = []
    for _ in range(length):
        draw = rng.random()
        if draw < plan.error_rate:
            faults.append(status(503))
        elif draw < plan.error_rate + plan.slow_rate:
            faults.append(ok(b"slow but fine", delay=plan.slow_delay))
        else:
            faults.append(ok(b"fine"))
    faults.append(ok(b"fine"))  # a route repeats its last fault
    return tuple(faults)


def _scripts(plan: Plan) -> Dict[str, Tuple[Fault, ...]]:
    """What the upstream answers in each phase; the same for both clients."""
    rng = random.Random(plan.seed)
    length = plan.calls * 2  # more than either client can send in one phase
    return {
        "healthy": _healthy_script(rng, plan, length),
        "outage": (Hang(limit=plan.hang_limit),),
        "recovery": _healthy_script(rng, plan, length),
    }


# -- what the library logs: breaker transitions and retries ------------------

class _LibraryLog(logging.Handler):
    """Keeps the breaker transitions and counts the retries the library logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.transitions: List[Tuple[float, str, str]] = []  # (monotonic time, old, new)
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle() holds self.lock around this call.
        message = record.getMessage()
        if message.startswith("circuit ") and " -> " in message:
            # "circuit closed -> open for http://127.0.0.1:PORT"
            old, _, rest = message[len("circuit "):].partition(" -> ")
            self.transitions.append((time.monotonic(), old, rest.split(" ", 1)[0]))
        elif message.startswith("retrying "):
            self.retries += 1

    def clear(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self.transitions.clear()
            self.retries = 0


@contextlib.contextmanager
def _library_log_captured() -> Iterator[_LibraryLog]:
    """Send the library's log to a :class:`_LibraryLog` only, not to the terminal;
    the logger's handlers, level and ``propagate`` are restored afterwards."""
    logger = logging.getLogger(LOGGER_NAME)
    saved_level, saved_propagate = logger.level, logger.propagate
    handler = _LibraryLog()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved_level)  # ResilientSession sets it from its config
        logger.propagate = saved_propagate
        handler.close()


# -- one client's run --------------------------------------------------------

@dataclass
class CallResult:
    """One call as its caller saw it."""

    due: float  # seconds from the start of the run
    latency: float  # from when it was due (so waiting for a free thread counts) to its return
    outcome: str  # OK, FAILED, CIRCUIT_OPEN or BULKHEAD_FULL
    detail: str  # the status code or the exception's class name


@dataclass
class RunResult:
    """One client's run."""

    client: str
    calls: List[CallResult]
    upstream_by_phase: Dict[str, int]
    peak_in_flight: int
    started: float  # time.monotonic() at the start of the run
    wall: float
    transitions: List[Tuple[float, str, str]] = field(default_factory=list)  # (offset, old, new)
    retries: Optional[int] = None

    def count(self, *outcomes: str) -> int:
        """Calls that ended in one of ``outcomes``."""
        return sum(1 for c in self.calls if c.outcome in outcomes)

    def late(self, after: float) -> int:
        """Calls that succeeded more than ``after`` seconds after they were due."""
        return sum(1 for c in self.calls if c.outcome == OK and c.latency > after)

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (nearest rank) of every call's latency."""
        values = sorted(c.latency for c in self.calls)
        if not values:
            return 0.0
        return values[max(0, math.ceil(q * len(values)) - 1)]

    def failure_kinds(self) -> Dict[str, int]:
        """How many calls failed (slowly or fast) with each status or exception class."""
        kinds: Dict[str, int] = {}
        for c in self.calls:
            if c.outcome != OK:
                kinds[c.detail] = kinds.get(c.detail, 0) + 1
        return dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))

    def opened(self) -> int:
        """Transitions of the breaker to open."""
        return sum(1 for _, _, new in self.transitions if new == "open")

    def summary(self, plan: Plan) -> Dict[str, Any]:
        """The numbers of the table, for ``--json``."""
        return {
            "calls": len(self.calls),
            "succeeded": self.count(OK),
            "succeeded_late": self.late(plan.late_after),
            "failed": self.count(FAILED),
            "failed_fast": self.count(*FAILED_FAST),
            "circuit_open": self.count(CIRCUIT_OPEN),
            "bulkhead_full": self.count(BULKHEAD_FULL),
            "failure_kinds": self.failure_kinds(),
            "upstream_requests": sum(self.upstream_by_phase.values()),
            "upstream_requests_by_phase": dict(self.upstream_by_phase),
            "peak_in_flight": self.peak_in_flight,
            "retries": self.retries,
            "p50_s": round(self.percentile(0.50), 4),
            "p99_s": round(self.percentile(0.99), 4),
            "breaker_transitions": [
                {"at_s": round(at, 3), "from": old, "to": new} for at, old, new in self.transitions
            ],
            "breaker_opened": self.opened(),
            "wall_s": round(self.wall, 3),
        }


Call = Callable[[str], Tuple[str, str]]  # url -> (outcome, detail)


def _plain_call(session: requests.Session, timeout: float) -> Call:
    def call(url: str) -> Tuple[str, str]:
        try:
            response = session.get(url, timeout=timeout)
        except requests.RequestException as exc:
            return FAILED, type(exc).__name__
        response.close()
        code = response.status_code
        return (OK if code < 400 else FAILED), str(code)
    return call


def _resilient_call(session: ResilientSession) -> Call:
    def call(url: str) -> Tuple[str, str]:
        try:
            response = session.get(url)
        except CircuitOpenError as exc:
            return CIRCUIT_OPEN, type(exc).__name__
        except PoolTimeoutError as exc:
            return BULKHEAD_FULL, type(exc).__name__
        except requests.RequestException as exc:
            return FAILED, type(exc).__name__
        response.close()
        code = response.status_code
        return (OK if code < 400 else FAILED), str(code)
    return call


def _timed(call: Call, url: str, due: float, started: float) -> CallResult:
    try:
        outcome, detail = call(url)
    except Exception as exc:  # a bug, not an outcome: reported as a failure, without a traceback
        outcome, detail = FAILED, f"unexpected {type(exc).__name__}"
    return CallResult(due, time.monotonic() - (started + due), outcome, detail)


def _drive(client: str, plan: Plan, server: FaultServer, call: Call) -> RunResult:
    """Play the phases on ``server`` and the paced calls through ``call``."""
    scripts = _scripts(plan)
    events: List[Tuple[float, int, str]] = [(start, 0, name) for name, start, _ in plan.phases()]
    events += [(plan.due(n), 1, str(n)) for n in range(plan.calls)]
    events.sort()
    phase_hits: List[Tuple[str, int]] = []
    futures: List["concurrent.futures.Future[CallResult]"] = []
    drain = plan.plain_timeout * 4 + 10.0  # far more than any call can take
    pool = concurrent.futures.ThreadPoolExecutor(plan.workers, thread_name_prefix=f"demo-{client}")
    started = time.monotonic()
    try:
        for at, kind, what in events:  # bounded: len(PHASES) + plan.calls events
            delay = started + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if kind == 0:
                server.route(PATH, *scripts[what])
                phase_hits.append((what, server.hits()))
            else:
                url = server.url(f"{PATH}?n={what}")
                futures.append(pool.submit(_timed, call, url, at, started))
        _, pending = concurrent.futures.wait(futures, timeout=drain)
        if pending:  # cannot happen with bounded timeouts; if it does, end the calls
            server.stop()
    except BaseException:  # Ctrl-C: end every call in flight at once
        server.stop()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    wall = time.monotonic() - started
    total = server.hits()
    upstream: Dict[str, int] = {}
    for i, (name, hits) in enumerate(phase_hits):
        upto = phase_hits[i + 1][1] if i + 1 < len(phase_hits) else total
        upstream[name] = upto - hits
    results = [f.result() for f in futures if not f.cancelled()]
    return RunResult(client, results, upstream, server.peak_in_flight, started, wall)


def run_plain(plan: Plan) -> RunResult:
    """The batch through a plain ``requests.Session`` shared by the threads."""
    with FaultServer() as server, requests.Session() as session:
        return _drive("plain", plan, server, _plain_call(session, plan.plain_timeout))


def run_resilient(plan: Plan, config: ClientConfig, log: _LibraryLog) -> RunResult:
    """The batch through a ``ResilientSession`` shared by the threads."""
    log.clear()
    with FaultServer() as server, ResilientSession(config) as session:
        result = _drive("resilient", plan, server, _resilient_call(session))
    result.transitions = [(at - result.started, old, new) for at, old, new in log.transitions]
    result.retries = log.retries
    return result


# -- output ------------------------------------------------------------------

def _config_lines(config: ClientConfig) -> List[str]:
    """``config`` as the constructor calls that build it, one sub-config a line."""
    def value(v: Any) -> str:
        if isinstance(v, frozenset):
            return "{" + ", ".join(repr(x) for x in sorted(v)) + "}"
        return repr(v)

    lines, rest = [], []
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if dataclasses.is_dataclass(v):
            args = ", ".join(f"{g.name}={value(getattr(v, g.name))}" for g in dataclasses.fields(v))
            lines.append(f"{f.name}={type(v).__name__}({args}),")
        else:
            rest.append(f"{f.name}={value(v)}")
    lines.append(", ".join(rest))
    wrapped = ["ClientConfig("]
    for line in lines:
        wrapped += textwrap.wrap(line, width=96, initial_indent="    ", subsequent_indent="        ",
                                 break_on_hyphens=False)
    return wrapped + [")"]


def _seconds(x: float) -> str:
    return f"{x:g} s"


def _table(plan: Plan, plain: RunResult, resilient: RunResult) -> List[str]:
    late = _seconds(plan.late_after)
    rows: List[Tuple[str, str, str]] = []

    def row(label: str, get: Callable[[RunResult], Any]) -> None:
        rows.append((label, str(get(plain)), str(get(resilient))))

    row("calls", lambda r: len(r.calls))
    row("succeeded", lambda r: r.count(OK))
    row(f"  of them more than {late} after due", lambda r: r.late(plan.late_after))
    row("failed (error after trying)", lambda r: r.count(FAILED))
    row("failed fast (no network I/O)", lambda r: r.count(*FAILED_FAST))
    row("  circuit open (CircuitOpenError)", lambda r: r.count(CIRCUIT_OPEN))
    row("  bulkhead full (PoolTimeoutError)", lambda r: r.count(BULKHEAD_FULL))
    row("retries", lambda r: "-" if r.retries is None else r.retries)
    row("requests the upstream received", lambda r: sum(r.upstream_by_phase.values()))
    for name, label in (("healthy", "  while healthy"), ("outage", "  during the outage"),
                        ("recovery", "  in recovery (and after)")):
        row(label, cast(Callable[[RunResult], Any], lambda r, n=name: r.upstream_by_phase.get(n, 0)))
    row("peak requests in flight upstream", lambda r: r.peak_in_flight)
    row("latency p50 (s)", lambda r: f"{r.percentile(0.50):.3f}")
    row("latency p99 (s)", lambda r: f"{r.percentile(0.99):.3f}")
    row("breaker transitions", lambda r: "-" if r.retries is None else
        f"{len(r.transitions)} ({r.opened()} to open)")
    row("wall time (s)", lambda r: f"{r.wall:.1f}")

    width = max(len(label) for label, _, _ in rows) + 2
    header = f"{'':<{width}}{'plain requests':>16}{'ResilientSession':>19}"
    lines = [header, "-" * len(header)]
    lines += [f"{label:<{width}}{a:>16}{b:>19}" for label, a, b in rows]
    if max(plain.peak_in_flight, resilient.peak_in_flight) > plan.workers:
        lines.append("(the upstream counts a hung request until it sees the client hang up, which it "
                     "checks every 50 ms,")
        lines.append(f" so its peak can read a little above the {plan.workers} threads)")
    return lines


def _timeline(plan: Plan, result: RunResult) -> List[str]:
    if not result.transitions:
        return ["breaker timeline (ResilientSession): no transitions"]
    marks = ", ".join(f"{at:.2f}s {old} -> {new} ({plan.phase_of(at)})"
                      for at, old, new in result.transitions)
    return textwrap.wrap(f"breaker timeline (ResilientSession, seconds from its start): {marks}",
                         width=100, subsequent_indent="    ")


def _kinds(result: RunResult) -> str:
    kinds = result.failure_kinds()
    return ", ".join(f"{k} x{n}" for k, n in kinds.items()) or "none"


def _explanation(plan: Plan, config: ClientConfig, plain: RunResult, resilient: RunResult) -> List[str]:
    p_out = plain.upstream_by_phase.get("outage", 0)
    r_out = resilient.upstream_by_phase.get("outage", 0)
    bulkhead = config.bulkhead.max_concurrency
    text = (
        f"What the numbers show. During the outage the upstream took every request and never "
        f"answered. Plain requests sent it {p_out} requests there: each of its {plan.workers} "
        f"threads sat out the full {_seconds(plan.plain_timeout)} timeout on a dead connection while "
        f"the other calls queued behind them, so {plain.late(plan.late_after)} calls that did succeed "
        f"came back more than {_seconds(plan.late_after)} after they were due (p99 "
        f"{plain.percentile(0.99):.1f} s). ResilientSession sent {r_out}: the bulkhead let at most {bulkhead} calls wait on "
        f"the upstream at a time (peak {resilient.peak_in_flight}), the breaker opened after "
        f"{config.circuit_breaker.failure_threshold} failures in a row and, while open, let out only "
        f"one trial call {_seconds(config.circuit_breaker.recovery_timeout)} after each opening; "
        f"{resilient.count(*FAILED_FAST)} calls failed fast without touching the network "
        f"({resilient.count(CIRCUIT_OPEN)} on the open breaker, {resilient.count(BULKHEAD_FULL)} on "
        f"the full bulkhead), and its "
        f"threads stayed free (p99 {resilient.percentile(0.99):.2f} s). The price: calls due in the "
        f"outage fail at once instead of, for some, succeeding late; and right after the upstream "
        f"recovers they keep failing fast until the next trial call closes the breaker. In the "
        f"healthy phases its retries hid most of the 503s that plain requests passed on "
        f"(failures - plain: {_kinds(plain)}; resilient: {_kinds(resilient)})."
    )
    return textwrap.wrap(text, width=100)


def run(quick: bool = False, seed: int = 1, json_line: bool = False,
        out: Optional[IO[str]] = None) -> int:
    """Run the demo, print the report to ``out`` (default stdout); return the exit status."""
    out = out if out is not None else sys.stdout
    plan = make_plan(quick, seed)
    config = demo_config(plan)

    def say(*lines: str) -> None:
        for line in lines:
            print(line, file=out)
        out.flush()

    run_s = 2 * plan.duration
    say(f"resilient_requests demo ({'--quick, every duration x0.25' if quick else 'full run'}, "
        f"seed {seed}): two runs of about {plan.duration:g} s each, {run_s:g} s in all.", "")
    say(f"Upstream: a FaultServer on 127.0.0.1 (a fresh one for each client), GET {PATH}?n=<call>.",
        "Phases, in seconds from the start of each run:")
    labels = {
        "healthy": f"healthy: ~{plan.error_rate:.0%} 503, ~{plan.slow_rate:.0%} slow "
                   f"({_seconds(plan.slow_delay)}), the rest fast 200s",
        "outage": f"OUTAGE: every request hangs (no reply, connection held, up to "
                  f"{_seconds(plan.hang_limit)})",
        "recovery": "recovery: healthy again",
    }
    for name, start, end in plan.phases():
        say(f"  {start:6.2f} - {end:6.2f}  {labels[name]}")
    say(*textwrap.wrap(
        f"Load: {plan.calls} GET calls, one every {plan.interval * 1000:.0f} ms, on a "
        f"ThreadPoolExecutor(max_workers={plan.workers}); latency counts from when a call was due, "
        "so waiting for a free thread counts.", width=100), "")
    scaled = " (the full run's timeout=5, x0.25)" if quick else ""
    say("Clients, one after the other:")
    say(*textwrap.wrap(
        f"plain requests: one requests.Session() for all threads, session.get(url, "
        f"timeout={plan.plain_timeout:g}){scaled} -- a timeout like the one an average legacy "
        "script passes; many pass none, and would hang for as long as the upstream does.",
        width=100, initial_indent="  ", subsequent_indent="      "))
    say("  ResilientSession: one ResilientSession(config) for all threads, session.get(url), with")
    say(*("    " + line for line in _config_lines(config)))
    say("")

    with _library_log_captured() as log:
        say("running plain requests ...")
        plain = run_plain(plan)
        say("running ResilientSession ...", "")
        resilient = run_resilient(plan, config, log)

    say(*_table(plan, plain, resilient))
    say("", *_timeline(plan, resilient))
    say("", *_explanation(plan, config, plain, resilient))
    if json_line:
        say("", json.dumps({
            "seed": seed, "quick": quick, "phases": {n: [s, e] for n, s, e in plan.phases()},
            "plain": plain.summary(plan), "resilient": resilient.summary(plan),
        }, sort_keys=True))
    return 0
