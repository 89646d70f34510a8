"""``python -m resilient_requests demo``: plain requests and ResilientSession
against the same flaky upstream, side by side.

A :class:`~resilient_requests.testing.FaultServer` on 127.0.0.1 goes through
three phases in wall-clock time: *healthy* (about 10% 503s and some slow
replies), an *outage* (every request hangs: no reply, the connection stays
open) and *recovery* (healthy again). The same paced batch of GET calls runs
on a ``ThreadPoolExecutor`` twice, first through a plain ``requests.Session``
with a legacy script's timeout, then through a :class:`ResilientSession`, each
against a fresh server. The report leads with a short table of what to take
away (the threads kept free, the requests spared during the outage, p99, and
"succeeded" split into answers on time and late), then the details, the
breaker's timeline, how the run was set up, and where to go next.

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
    queued: float = 0.0  # from when it was due to when a thread took it

    @property
    def began(self) -> float:
        """When a thread took the call, in seconds from the start of the run."""
        return self.due + self.queued

    @property
    def ended(self) -> float:
        """When the call returned, in seconds from the start of the run."""
        return self.due + self.latency


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

    def on_time(self, after: float) -> int:
        """Calls that succeeded within ``after`` seconds of being due."""
        return self.count(OK) - self.late(after)

    def busiest(self, start: float, end: float) -> int:
        """The most calls in progress at once (threads held) between ``start`` and ``end``."""
        edges: List[Tuple[float, int]] = []
        for c in self.calls:
            began, ended = max(c.began, start), min(c.ended, end)
            if began < ended:
                edges += [(began, 1), (ended, -1)]
        edges.sort()  # at the same instant, a thread given back (-1) before one taken
        held = most = 0
        for _, step in edges:
            held += step
            most = max(most, held)
        return most

    def longest_queue(self) -> float:
        """The longest any call waited for a free thread."""
        return max((c.queued for c in self.calls), default=0.0)

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
            "succeeded_on_time": self.on_time(plan.late_after),
            "fewest_threads_free_in_outage": plan.workers - self.busiest(*plan.phases()[1][1:]),
            "longest_wait_for_a_thread_s": round(self.longest_queue(), 4),
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
    queued = time.monotonic() - (started + due)
    try:
        outcome, detail = call(url)
    except Exception as exc:  # a bug, not an outcome: reported as a failure, without a traceback
        outcome, detail = FAILED, f"unexpected {type(exc).__name__}"
    return CallResult(due, time.monotonic() - (started + due), outcome, detail, max(0.0, queued))


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

#: Where to read on, printed at the end of the report (paths in the source repository).
NEXT_STEPS: Tuple[Tuple[str, str], ...] = (
    ("docs/index.md", "the documentation: each layer, the configuration, what fails how"),
    ("docs/guides/web-apps.md", "web views (Flask, Django): the web preset, a bulkhead per worker"),
    ("docs/guides/rate-limited-apis.md", "batch jobs against an API that limits its rate"),
    ("resilient-requests presets", "the presets' settings, to start from one of them"),
    ("resilient-requests get -v URL", "one call, with each attempt, wait and breaker change"),
)

_COLUMNS = ("plain requests", "ResilientSession")


def _value(v: Any) -> str:
    if isinstance(v, frozenset):
        return "{" + ", ".join(repr(x) for x in sorted(v)) + "}"
    return repr(v)


def _config_lines(config: ClientConfig) -> List[str]:
    """``config`` as the constructor call that builds it, one sub-config a line,
    naming only the settings that differ from the defaults."""
    default = ClientConfig()
    parts: List[str] = []
    for f in dataclasses.fields(config):
        v, d = getattr(config, f.name), getattr(default, f.name)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            changed = [f"{g.name}={_value(getattr(v, g.name))}" for g in dataclasses.fields(v)
                       if getattr(v, g.name) != getattr(d, g.name)]
            if changed:
                parts.append(f"{f.name}={type(v).__name__}({', '.join(changed)}),")
        elif v != d:
            parts.append(f"{f.name}={_value(v)},")
    lines = ["ClientConfig("]
    for part in parts:
        lines += textwrap.wrap(part, width=96, initial_indent="    ", subsequent_indent="        ",
                               break_on_hyphens=False)
    return lines + [")  # every other setting: its default"]


def _seconds(x: float) -> str:
    return f"{x:g} s"


def _grid(title: str, rows: List[Tuple[str, str, str]]) -> List[str]:
    """``rows`` of (label, plain, resilient) under a header titled ``title``."""
    width = max(len(title), *(len(label) for label, _, _ in rows)) + 2
    header = f"{title:<{width}}{_COLUMNS[0]:>16}{_COLUMNS[1]:>19}"
    lines = [header, "-" * len(header)]
    return lines + [f"{label:<{width}}{a:>16}{b:>19}" for label, a, b in rows]


def _outage(plan: Plan) -> Tuple[float, float]:
    _, start, end = plan.phases()[1]
    return start, end


def _free(plan: Plan, result: RunResult) -> int:
    """The fewest of the caller's threads free at any moment of the outage."""
    return plan.workers - result.busiest(*_outage(plan))


def _failed(result: RunResult) -> str:
    fast = result.count(*FAILED_FAST)
    total = result.count(FAILED) + fast
    return f"{total} ({fast} at once)" if fast else str(total)


def _summary(plan: Plan, plain: RunResult, resilient: RunResult) -> List[str]:
    """The short table: what a user should take away."""
    late = _seconds(plan.late_after)
    p_out = plain.upstream_by_phase.get("outage", 0)
    r_out = resilient.upstream_by_phase.get("outage", 0)
    spared = f"{r_out} ({p_out - r_out} spared)" if p_out > r_out else str(r_out)
    return _grid("In short", [
        ("threads free during the outage, at worst",
         f"{_free(plan, plain)} of {plan.workers}", f"{_free(plan, resilient)} of {plan.workers}"),
        ("requests sent while the upstream was down", str(p_out), spared),
        ("latency p99 (from when a call was due)",
         f"{plain.percentile(0.99):.2f} s", f"{resilient.percentile(0.99):.2f} s"),
        (f"succeeded on time (within {late} of due)",
         str(plain.on_time(plan.late_after)), str(resilient.on_time(plan.late_after))),
        (f"succeeded late (more than {late} after due)",
         str(plain.late(plan.late_after)), str(resilient.late(plan.late_after))),
        ("failed", _failed(plain), _failed(resilient)),
    ])


def _due_in_outage(plan: Plan, result: RunResult, outcome: str) -> int:
    start, end = _outage(plan)
    return sum(1 for c in result.calls if start <= c.due < end and c.outcome == outcome)


def _failed_fast_after(plan: Plan, result: RunResult) -> int:
    _, end = _outage(plan)
    return sum(1 for c in result.calls if c.due >= end and c.outcome in FAILED_FAST)


def _summary_text(plan: Plan, plain: RunResult, resilient: RunResult) -> List[str]:
    """What the short table means, "succeeded" above all."""
    late = _seconds(plan.late_after)
    held = ("every one of its" if _free(plan, plain) == 0
            else f"up to {plan.workers - _free(plan, plain)} of its")
    r_late = resilient.late(plan.late_after)
    text = (
        f"\"Succeeded\" means an answer came back at all; on time means within {late} of when the "
        f"call was due. Plain requests got {plain.count(OK)} answers, but {plain.late(plan.late_after)} "
        f"of them late: while the upstream was down, {held} {plan.workers} threads sat out "
        f"the {_seconds(plan.plain_timeout)} timeout on a dead connection, and the calls behind them "
        f"waited for a thread (up to {plain.longest_queue():.1f} s). ResilientSession failed "
        f"{resilient.count(*FAILED_FAST)} calls at once, without sending anything, and so kept "
        f"{_free(plan, resilient)} or more threads free and answered "
        f"{'nothing' if r_late == 0 else f'only {r_late} calls'} late. The price: of the "
        f"calls due during the outage it answered {_due_in_outage(plan, resilient, OK)}, plain "
        f"requests {_due_in_outage(plan, plain, OK)} (late, or in time by waiting into the "
        f"recovery); and after the upstream was back, {_failed_fast_after(plan, resilient)} calls "
        f"still failed fast until a trial call closed the breaker."
    )
    return textwrap.wrap(text, width=100)


def _table(plan: Plan, plain: RunResult, resilient: RunResult) -> List[str]:
    late = _seconds(plan.late_after)
    rows: List[Tuple[str, str, str]] = []

    def row(label: str, get: Callable[[RunResult], Any]) -> None:
        rows.append((label, str(get(plain)), str(get(resilient))))

    row("calls", lambda r: len(r.calls))
    row("succeeded (an answer came back)", lambda r: r.count(OK))
    row(f"  on time (within {late} of due)", lambda r: r.on_time(plan.late_after))
    row(f"  late (more than {late} after due)", lambda r: r.late(plan.late_after))
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
    row("longest wait for a free thread (s)", lambda r: f"{r.longest_queue():.3f}")
    row("latency p50 (s)", lambda r: f"{r.percentile(0.50):.3f}")
    row("latency p99 (s)", lambda r: f"{r.percentile(0.99):.3f}")
    row("breaker transitions", lambda r: "-" if r.retries is None else
        f"{len(r.transitions)} ({r.opened()} to open)")
    row("wall time (s)", lambda r: f"{r.wall:.1f}")

    lines = _grid("In detail", rows)
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
    r_out = resilient.upstream_by_phase.get("outage", 0)
    bulkhead = config.bulkhead.max_concurrency
    text = (
        f"How ResilientSession did it. It sent {r_out} requests to the dead upstream: the bulkhead "
        f"let at most {bulkhead} calls wait on it at a time (peak {resilient.peak_in_flight}), the "
        f"breaker opened after {config.circuit_breaker.failure_threshold} failures in a row and, "
        f"while open, let out only one trial call {_seconds(config.circuit_breaker.recovery_timeout)} "
        f"after each opening; {resilient.count(CIRCUIT_OPEN)} calls failed fast on the open breaker "
        f"and {resilient.count(BULKHEAD_FULL)} on the full bulkhead. In the healthy phases its "
        f"retries hid most of the 503s that plain requests passed on (failures - plain: "
        f"{_kinds(plain)}; resilient: {_kinds(resilient)})."
    )
    return textwrap.wrap(text, width=100)


def _setup(plan: Plan, config: ClientConfig) -> List[str]:
    """How the demo was run: the upstream's phases, the load, the two clients."""
    scaled = " (the full run's timeout=5, x0.25)" if plan.quick else ""
    labels = {
        "healthy": f"healthy: ~{plan.error_rate:.0%} 503, ~{plan.slow_rate:.0%} slow "
                   f"({_seconds(plan.slow_delay)}), the rest fast 200s",
        "outage": f"OUTAGE: every request hangs (no reply, connection held, up to "
                  f"{_seconds(plan.hang_limit)})",
        "recovery": "recovery: healthy again",
    }
    lines = textwrap.wrap(f"How it was run. Upstream: a FaultServer on 127.0.0.1 (a fresh one for each "
                          f"client), GET {PATH}?n=<call>; its phases, in seconds from the start of each run:",
                          width=100)
    lines += [f"  {start:6.2f} - {end:6.2f}  {labels[name]}" for name, start, end in plan.phases()]
    lines += textwrap.wrap(
        f"Load: {plan.calls} GET calls, one every {plan.interval * 1000:.0f} ms, on a "
        f"ThreadPoolExecutor(max_workers={plan.workers}); latency counts from when a call was due, "
        "so waiting for a free thread counts.", width=100)
    lines += textwrap.wrap(
        f"plain requests: one requests.Session() for all threads, session.get(url, "
        f"timeout={plan.plain_timeout:g}){scaled} -- a timeout like the one an average legacy "
        "script passes; many pass none, and would hang for as long as the upstream does.",
        width=100, initial_indent="  ", subsequent_indent="      ")
    lines.append("  ResilientSession: one ResilientSession(config) for all threads, session.get(url), with")
    lines += ["    " + line for line in _config_lines(config)]
    return lines


def _next_steps() -> List[str]:
    width = max(len(where) for where, _ in NEXT_STEPS) + 2
    return ["Where to go next:"] + [f"  {where:<{width}}{what}" for where, what in NEXT_STEPS]


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

    healthy, outage, recovery = (end - start for _, start, end in plan.phases())
    say(*textwrap.wrap(
        f"resilient_requests demo ({'--quick, every duration x0.25' if quick else 'full run'}, "
        f"seed {seed}): the same {plan.calls} GET calls from {plan.workers} threads, first through "
        f"plain requests (timeout={plan.plain_timeout:g}), then through ResilientSession, against a "
        f"local upstream that is healthy for {_seconds(healthy)}, then down for {_seconds(outage)} "
        f"(every request hangs), then healthy again for {_seconds(recovery)}. About "
        f"{2 * plan.duration:g} s in all.", width=100), "")

    with _library_log_captured() as log:
        say("running plain requests ...")
        plain = run_plain(plan)
        say("running ResilientSession ...", "")
        resilient = run_resilient(plan, config, log)

    say(*_summary(plan, plain, resilient))
    say("", *_summary_text(plan, plain, resilient))
    say("", *_table(plan, plain, resilient))
    say("", *_timeline(plan, resilient))
    say("", *_explanation(plan, config, plain, resilient))
    say("", *_setup(plan, config))
    say("", *_next_steps())
    if json_line:
        say("", json.dumps({
            "seed": seed, "quick": quick, "phases": {n: [s, e] for n, s, e in plan.phases()},
            "plain": plain.summary(plan), "resilient": resilient.summary(plan),
        }, sort_keys=True))
    return 0
