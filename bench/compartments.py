"""Scenario 11: compartments — resilience state per dependency, shared by sessions.

Breakers, bulkheads and retry budgets live in a process-wide registry, one
compartment per dependency (origin) and policy. Two measurements, each with its
contenders side by side in one run:

1. **Session per task.** An upstream route answers 503 to every request; each
   call goes through a new session (``with ResilientSession(config) as s:
   s.get(url)``). The shared registry (the default) against ``isolated=True``
   (state per session object, the old behaviour) and one long-lived session.
   The upstream's hit counter is read after every call up to the first refused
   one, then at the end of the round.
2. **Isolation.** Dependency A hangs and fills its bulkhead from 8 threads;
   dependency B (the upstream) is healthy. B's latency from the same session
   with A full, against B's with nothing hung, in interleaved rounds:
   per-dependency bulkheads (the default) against ``total_concurrency=8``, one
   cap over all dependencies like the old single bulkhead per session. A is a
   :class:`StalledOrigin`, another origin on 127.0.0.1 that hangs without
   running anything (see there why not the upstream's ``HoldSpec``).

``resilient_requests.reset()`` runs before every contender's run and at the end,
so no breaker or bulkhead state passes between contenders or to other scenarios.
"""

from __future__ import annotations

import gc
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import resilient_requests as rr
from resilient_requests.compartments import policy_key
from resilient_requests.testing import ok, status

from .contenders import FAILED, OK, REJECTED
from .plan import Plan
from .report import Goal, Section, Table, fmt, fmt_ratio
from .stats import interleaved, median, percentile, ratio
from .upstream import Upstream

__all__ = ["compartments"]

COMMAND = "python -m bench --only compartments"

# -- 1. session per task -------------------------------------------------------

DOWN = "/compartments/down"
FAILURE_THRESHOLD = 5
TASK_CONFIG = rr.ClientConfig(
    retry=rr.RetryConfig(max_attempts=3, min_wait=0.001, max_wait=0.01),
    circuit_breaker=rr.CircuitBreakerConfig(failure_threshold=FAILURE_THRESHOLD),
)
SHARED, ISOLATED, LONG_LIVED = "shared", "isolated", "long-lived"
TASK_NAMES = (SHARED, ISOLATED, LONG_LIVED)
TASK_LABELS = {
    SHARED: "(a) new session per task, shared registry (default)",
    ISOLATED: "(b) new session per task, `isolated=True` (old: state per session)",
    LONG_LIVED: "(c) one long-lived session (reference)",
}
FAIL_FAST_GOAL_US = 50.0
AFTER_OPEN_GOAL = 0.01

# -- 2. isolation ---------------------------------------------------------------

HUNG = "/hung"  # on A, which answers nothing until released
HEALTHY = "/compartments/healthy"
SLOTS = 8
ACQUIRE = 0.05
PER_DEPENDENCY, TOTAL_CAP = "per-dependency", "total-cap"
ISO_NAMES = (PER_DEPENDENCY, TOTAL_CAP)
ISO_LABELS = {
    PER_DEPENDENCY: f"per-dependency bulkheads (default; max_concurrency={SLOTS})",
    TOTAL_CAP: f"`total_concurrency={SLOTS}` (one cap over all, like the old design)",
}
IDLE, FULL = "idle", "A full"
ISO_CONFIG = rr.ClientConfig(
    bulkhead=rr.BulkheadConfig(max_concurrency=SLOTS, acquisition_timeout=ACQUIRE)
)
ISO_CONFIGS = {
    PER_DEPENDENCY: ISO_CONFIG,
    TOTAL_CAP: ISO_CONFIG.replace(total_concurrency=SLOTS),
}
ISOLATION_GOAL = 1.2
RELEASE_LIMIT = 10.0  # the longest releasing the hung calls may take
FILL_WAIT = 10.0  # the longest we wait for the hung calls to take every slot
#: Uncounted calls to B at the start of each phase: the first call after a reset makes
#: the route again, and the first after a pause meets cold caches on both sides.
WARM_CALLS = 3


def _outcome(get: Callable[[str], object], url: str) -> str:
    """``get(url)``: OK (a 200), REJECTED (failed fast: breaker or bulkhead), or FAILED."""
    try:
        response = get(url)
    except (rr.CircuitOpenError, rr.PoolTimeoutError):
        return REJECTED
    except Exception:
        return FAILED
    return OK if getattr(response, "status_code", None) == 200 else FAILED


# -- 1. session per task -------------------------------------------------------


@dataclass
class TaskCall:
    result: str
    get_us: float  # the .get() alone
    requests: Optional[int]  # upstream requests this call caused (None: not read, see TaskRun)
    build_us: Optional[float]  # constructing the session (None: the long-lived one)
    close_us: Optional[float]
    collected: bool = False  # the cyclic garbage collector ran during the .get()


class _Collections:
    """Counts the cyclic garbage collector's runs (a ``gc.callbacks`` entry)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, phase: str, info: Dict[str, int]) -> None:
        if phase == "stop":
            self.count += 1


@dataclass
class TaskRun:
    """One contender's calls in one round. The upstream's counter is read after every call
    until the first refused one (so that the pipe's round trip does not sit between the
    fail-fast calls being timed); the requests of the calls after it are ``untracked``."""

    calls: List[TaskCall]
    untracked: int

    @property
    def opened_at(self) -> Optional[int]:
        """The index of the first refused call (None: no call was refused)."""
        return next((i for i, c in enumerate(self.calls) if c.result == REJECTED), None)

    @property
    def window(self) -> int:
        """Where "after the breaker opened" starts: the first refused call, or, for a
        contender that never refuses one, the call after ``failure_threshold`` calls
        (by then every attempt-counting breaker of the same config has opened)."""
        opened = self.opened_at
        return opened if opened is not None else FAILURE_THRESHOLD

    @property
    def requests(self) -> int:
        return sum(c.requests or 0 for c in self.calls) + self.untracked

    @property
    def after_requests(self) -> int:
        return sum(c.requests or 0 for c in self.calls[self.window :]) + self.untracked


def _task_run(upstream: Upstream, name: str, calls: int) -> TaskRun:
    rr.reset()
    url = upstream.url(DOWN)
    before = upstream.hits(DOWN)
    out: List[TaskCall] = []
    long_lived = rr.ResilientSession(TASK_CONFIG) if name == LONG_LIVED else None
    tracking = True
    collections = _Collections()
    gc.callbacks.append(collections)
    try:
        for _ in range(calls):
            if long_lived is not None:
                runs = collections.count
                started = time.perf_counter_ns()
                result = _outcome(long_lived.get, url)
                get_us = (time.perf_counter_ns() - started) / 1000
                build_us = close_us = None
            else:
                started = time.perf_counter_ns()
                session = rr.ResilientSession(TASK_CONFIG, isolated=name == ISOLATED)
                built = time.perf_counter_ns()
                with session:
                    runs = collections.count
                    called = time.perf_counter_ns()
                    result = _outcome(session.get, url)
                    done = time.perf_counter_ns()
                closed = time.perf_counter_ns()
                get_us = (done - called) / 1000
                build_us, close_us = (built - started) / 1000, (closed - done) / 1000
            requests = None
            if tracking:
                hits = upstream.hits(DOWN)
                requests, before = hits - before, hits
                tracking = result != REJECTED
            collected = collections.count > runs
            out.append(TaskCall(result, get_us, requests, build_us, close_us, collected))
    finally:
        gc.callbacks.remove(collections)
        if long_lived is not None:
            long_lived.close()
        rr.reset()
    return TaskRun(out, upstream.hits(DOWN) - before)


@dataclass
class TaskFigures:
    calls: int
    requests: int
    per_round: List[int]
    refused: int
    opened_at: List[Optional[int]]
    after_calls: int
    after_requests: int
    refused_us: List[float]
    refused_collected: int  # refused calls during which the cyclic GC ran
    refused_clean_us: List[float]  # refused calls without a GC run
    all_us: List[float]
    build_us: List[float]
    close_us: List[float]

    @property
    def after_open(self) -> float:
        return ratio(self.after_requests, self.after_calls)


def _task_figures(runs: Sequence[TaskRun]) -> TaskFigures:
    calls = [c for r in runs for c in r.calls]
    return TaskFigures(
        calls=len(calls),
        requests=sum(r.requests for r in runs),
        per_round=[r.requests for r in runs],
        refused=sum(c.result == REJECTED for c in calls),
        opened_at=[r.opened_at for r in runs],
        after_calls=sum(len(r.calls) - r.window for r in runs),
        after_requests=sum(r.after_requests for r in runs),
        refused_us=[c.get_us for c in calls if c.result == REJECTED],
        refused_collected=sum(c.result == REJECTED and c.collected for c in calls),
        refused_clean_us=[c.get_us for c in calls if c.result == REJECTED and not c.collected],
        all_us=[c.get_us for c in calls],
        build_us=[c.build_us for c in calls if c.build_us is not None],
        close_us=[c.close_us for c in calls if c.close_us is not None],
    )


def _opened(figures: TaskFigures) -> str:
    if all(i is None for i in figures.opened_at):
        return "never"
    return ", ".join("never" if i is None else f"#{i + 1}" for i in figures.opened_at)


def _session_per_task(
    upstream: Upstream, plan: Plan
) -> Tuple[Dict[str, TaskFigures], Table, Table]:
    upstream.route(DOWN, status(503))
    per_round = max(1, plan.compart_tasks // plan.compart_task_rounds)
    runs = interleaved(
        TASK_NAMES, plan.compart_task_rounds, lambda name, _: _task_run(upstream, name, per_round)
    )
    figs = {name: _task_figures(rs) for name, rs in runs.items()}
    rows = []
    for name in TASK_NAMES:
        f = figs[name]
        rows.append(
            [
                TASK_LABELS[name],
                fmt(f.calls),
                f"{fmt(f.requests)} ({', '.join(map(str, f.per_round))})",
                _opened(f),
                f"{f.after_open:.4f} ({fmt(f.after_requests)} / {fmt(f.after_calls)})",
                fmt(f.refused),
                fmt(percentile(f.refused_us, 50), 1) if f.refused_us else "none refused",
                fmt(percentile(f.refused_us, 99), 1) if f.refused_us else "–",
                fmt(percentile(f.all_us, 50), 1),
            ]
        )
    table = Table(
        [
            "contender",
            "calls",
            "upstream requests (per round)",
            "first refused call (per round)",
            "upstream requests per call after the breaker opened",
            "calls refused",
            "refused `.get()` p50 µs",
            "p99 µs",
            "every `.get()` p50 µs",
        ],
        rows,
        caption="Session per task: an origin answering 503 to everything",
    )
    cost_rows = [
        [
            TASK_LABELS[name],
            fmt(percentile(figs[name].build_us, 50), 1),
            fmt(percentile(figs[name].build_us, 99), 1),
            fmt(percentile(figs[name].close_us, 50), 1),
            fmt(percentile(figs[name].close_us, 99), 1),
        ]
        for name in (SHARED, ISOLATED)
    ]
    costs = Table(
        [
            "contender",
            "`ResilientSession(config)` p50 µs",
            "p99 µs",
            "leaving `with` (close) p50 µs",
            "p99 µs",
        ],
        cost_rows,
        caption="Per-task session cost (information; not in the `.get()` figures above)",
    )
    return figs, table, costs


# -- 2. isolation -----------------------------------------------------------------


@dataclass
class Phase:
    """One contender's calls to B in one round, with A idle or full."""

    latencies_us: List[float]
    results: List[str]
    a_in_use: Optional[int] = None  # A's bulkhead slots in use while B was measured
    overall_in_use: Optional[int] = None  # the total cap's, if any
    probe: Optional[Tuple[str, float]] = None  # one more call to A: (how it ended, ms)
    held: int = 0  # A's calls that were hung and answered 200 after release


class StalledOrigin:
    """Dependency A: a socket on 127.0.0.1 that listens but accepts nothing until
    released. A request's connection completes in the kernel's accept queue, the
    request is sent, and no reply comes: the call hangs with nothing running on
    either side (no thread, no polling). :meth:`release` accepts each waiting
    connection, reads its request and answers 200 with ``Connection: close``.

    Not the upstream's ``HoldSpec``: the FaultServer's ``Hold`` polls its release
    every 20 ms per held request, and in the upstream that also serves B those
    wake-ups contend for its GIL and slowed B's replies (its p90 by 7-30% in trials)."""

    REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(4 * SLOTS)
        self._socket.settimeout(0.2)
        self.port = self._socket.getsockname()[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def release(self, expected: int, limit: float) -> int:
        """Answer up to ``expected`` waiting requests, for at most ``limit`` s."""
        answered = 0
        ends = time.monotonic() + limit
        while answered < expected and time.monotonic() < ends:
            try:
                conn, _ = self._socket.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(2.0)
                request = b""
                try:
                    while b"\r\n\r\n" not in request and len(request) < 65536:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        request += chunk
                    conn.sendall(self.REPLY)
                    answered += 1
                except OSError:
                    pass  # the client gave up on this one
        return answered

    def close(self) -> None:
        self._socket.close()


def _measure_b(session: rr.ResilientSession, url: str, calls: int, limit: float) -> Phase:
    """``WARM_CALLS`` uncounted calls to B, then up to ``calls`` sequential ones,
    stopping after ``limit`` s."""
    latencies, results = [], []
    for _ in range(WARM_CALLS):
        _outcome(session.get, url)
    ends = time.monotonic() + limit
    for _ in range(calls):
        if time.monotonic() >= ends:
            break
        started = time.perf_counter_ns()
        result = _outcome(session.get, url)
        latencies.append((time.perf_counter_ns() - started) / 1000)
        results.append(result)
    return Phase(latencies, results)


def _compartment(session: rr.ResilientSession, url: str) -> rr.Compartment:
    """The compartment ``session`` uses for ``url`` (introspection, not public API)."""
    return session._pipeline.routes.compartment(url)  # noqa: SLF001 - read-only


def _probe(session: rr.ResilientSession, url: str) -> Tuple[str, float]:
    """One more call to A while its slots are held: what it ended with, and its ms."""
    started = time.perf_counter()
    try:
        result = f"HTTP {session.get(url).status_code}"
    except Exception as exc:
        result = type(exc).__name__
    return result, (time.perf_counter() - started) * 1000


def _full_phase(
    a: StalledOrigin, b_url: str, session: rr.ResilientSession, name: str, plan: Plan
) -> Phase:
    """Fill A's bulkhead with hung calls from SLOTS threads, measure B, release, join."""
    a_url = a.url(HUNG)
    outcomes: List[str] = []
    holders = [
        threading.Thread(
            target=lambda: outcomes.append(_outcome(session.get, a_url)),
            name=f"bench-compartments-hung-{i}",
            daemon=True,
        )
        for i in range(SLOTS)
    ]
    phase: Optional[Phase] = None
    try:
        for holder in holders:
            holder.start()
        bulkhead = _compartment(session, a_url).bulkhead
        ends = time.monotonic() + FILL_WAIT
        while bulkhead.in_use < SLOTS and time.monotonic() < ends:
            time.sleep(0.005)
        if bulkhead.in_use < SLOTS:
            raise RuntimeError(f"{name}: the hung calls took {bulkhead.in_use}/{SLOTS} slots")
        probe = _probe(session, a_url)
        gc.collect()
        phase = _measure_b(session, b_url, plan.compart_calls, plan.compart_phase_limit)
        phase.a_in_use = bulkhead.in_use
        overall = session._pipeline.overall  # noqa: SLF001 - read-only
        phase.overall_in_use = overall.in_use if overall is not None else None
        phase.probe = probe
    finally:
        a.release(SLOTS, RELEASE_LIMIT)
        for holder in holders:
            holder.join(timeout=RELEASE_LIMIT + 35)  # at worst, the 30 s read timeout
    alive = [h.name for h in holders if h.is_alive()]
    if alive:
        raise RuntimeError(f"{name}: hung calls still running after release: {alive}")
    phase.held = sum(result == OK for result in outcomes)
    return phase


def _isolation_round(
    a: StalledOrigin, b_url: str, sessions: Dict[str, rr.ResilientSession], name: str,
    number: int, plan: Plan,
) -> Dict[str, Phase]:
    """Both phases for one contender; which comes first alternates by round."""
    session = sessions[name]
    phases: Dict[str, Phase] = {}
    order = (IDLE, FULL) if number % 2 == 0 else (FULL, IDLE)
    for phase in order:
        rr.reset()
        if phase == IDLE:
            gc.collect()
            phases[IDLE] = _measure_b(
                session, b_url, plan.compart_calls, plan.compart_phase_limit
            )
        else:
            phases[FULL] = _full_phase(a, b_url, session, name, plan)
    return phases


def _isolation(
    upstream: Upstream, plan: Plan
) -> Tuple[Dict[str, Dict[str, List[Phase]]], Table]:
    upstream.route(HEALTHY, ok(b"ok"))
    b_url = upstream.url(HEALTHY)
    a = StalledOrigin()
    sessions: Dict[str, rr.ResilientSession] = {}
    try:
        for name in ISO_NAMES:
            sessions[name] = rr.ResilientSession(ISO_CONFIGS[name])
            for _ in range(20):  # warm: the connection to B, the routes made
                _outcome(sessions[name].get, b_url)
        rounds = interleaved(
            ISO_NAMES,
            plan.compart_rounds,
            lambda name, number: _isolation_round(a, b_url, sessions, name, number, plan),
        )
    finally:
        for session in sessions.values():
            session.close()
        a.close()
        rr.reset()
    phases = {
        name: {p: [r[p] for r in rs] for p in (IDLE, FULL)} for name, rs in rounds.items()
    }
    rows = []
    for name in ISO_NAMES:
        idle_p99 = percentile([x for ph in phases[name][IDLE] for x in ph.latencies_us], 99)
        for label in (IDLE, FULL):
            runs = phases[name][label]
            latencies = [x for ph in runs for x in ph.latencies_us]
            results = [x for ph in runs for x in ph.results]
            p99 = percentile(latencies, 99)
            rows.append(
                [
                    ISO_LABELS[name],
                    "nothing hung" if label == IDLE else f"A's {SLOTS} slots held",
                    fmt(len(latencies)),
                    f"{sum(r == OK for r in results):,} / {sum(r == REJECTED for r in results):,}"
                    f" / {sum(r == FAILED for r in results):,}",
                    fmt(percentile(latencies, 50), 1),
                    fmt(p99, 1),
                    fmt(max(latencies), 0) if latencies else "n/a",
                    "1.00×" if label == IDLE else fmt_ratio(ratio(p99, idle_p99)),
                    _held(runs) if label == FULL else "–",
                ]
            )
    table = Table(
        [
            "contender",
            "A",
            "calls to B",
            "B: 200 / refused / failed",
            "B p50 µs",
            "B p99 µs",
            "B max µs",
            "B p99 vs nothing hung",
            "while B was measured (median of rounds)",
        ],
        rows,
        caption="Isolation: calls to healthy B from the session whose calls to A hang",
    )
    return phases, table


def _held(runs: Sequence[Phase]) -> str:
    in_use = median(p.a_in_use for p in runs if p.a_in_use is not None)
    probe_ms = median(p.probe[1] for p in runs if p.probe is not None)
    probes = sorted({p.probe[0] for p in runs if p.probe is not None})
    overall = [p.overall_in_use for p in runs if p.overall_in_use is not None]
    held = sum(p.held for p in runs)
    text = f"A's bulkhead {in_use:.0f}/{SLOTS} in use"
    if overall:
        text += f", total cap {median(overall):.0f}/{SLOTS}"
    return (
        f"{text}; one more call to A: {'/'.join(probes)} after {probe_ms:.0f} ms; "
        f"{held} hung calls answered 200 after release"
    )


DIGEST_CALLS = 200


def _policy_key_us() -> float:
    """The median µs of computing the task config's policy digest (what a new session's
    first call to an origin pays; introspection, not public API)."""
    samples = []
    for _ in range(DIGEST_CALLS):
        started = time.perf_counter_ns()
        policy_key(TASK_CONFIG)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return median(samples)


# -- the section -------------------------------------------------------------------


def compartments(upstream: Upstream, plan: Plan) -> Section:
    """Session-per-task outage and dependency isolation, with the compartment registry."""
    threads_before = set(threading.enumerate())
    rr.reset()
    try:
        tasks, task_table, cost_table = _session_per_task(upstream, plan)
        phases, iso_table = _isolation(upstream, plan)
    finally:
        rr.reset()
    shared, long_lived, isolated = tasks[SHARED], tasks[LONG_LIVED], tasks[ISOLATED]
    shared_p99 = percentile(shared.refused_us, 99)
    long_p99 = percentile(long_lived.refused_us, 99)

    def p99(name: str, label: str) -> float:
        return percentile([x for ph in phases[name][label] for x in ph.latencies_us], 99)

    iso_ratio = ratio(p99(PER_DEPENDENCY, FULL), p99(PER_DEPENDENCY, IDLE))
    cap_ratio = ratio(p99(TOTAL_CAP, FULL), p99(TOTAL_CAP, IDLE))
    goals = [
        Goal(
            f"(a) session per task, shared registry: ≤ {AFTER_OPEN_GOAL} upstream requests per "
            "call after the breaker opened",
            shared.after_open <= AFTER_OPEN_GOAL,
            f"{shared.after_open:.4f} ((b) isolated: {isolated.after_open:.2f}; "
            f"(c) long-lived: {long_lived.after_open:.4f})",
        ),
        Goal(
            f"(a) session per task: refused `.get()` p99 ≤ {FAIL_FAST_GOAL_US:g} µs, "
            "as the long-lived session's",
            shared_p99 <= FAIL_FAST_GOAL_US,
            f"p99 {fmt(shared_p99, 1)} µs ((c): {fmt(long_p99, 1)} µs)",
        ),
        Goal(
            f"per-dependency bulkheads: B's p99 with A's bulkhead full ≤ {ISOLATION_GOAL}× "
            "B's p99 with nothing hung",
            iso_ratio <= ISOLATION_GOAL,
            f"{fmt(p99(PER_DEPENDENCY, FULL), 1)} µs vs {fmt(p99(PER_DEPENDENCY, IDLE), 1)} µs: "
            f"{fmt_ratio(iso_ratio)} (`total_concurrency={SLOTS}`: {fmt_ratio(cap_ratio)})",
        ),
    ]
    leftover = [t.name for t in threading.enumerate() if t not in threads_before]
    digest_us = _policy_key_us()
    per_round = max(1, plan.compart_tasks // plan.compart_task_rounds)
    return Section(
        title="11. Compartments: session per task, dependency isolation",
        setup=(
            f"Reproduce with `{COMMAND}` (add `--quick` for a smoke run). "
            "Breakers, bulkheads and retry budgets live in a process-wide registry, one "
            "compartment per dependency (origin) and policy; `resilient_requests.reset()` runs "
            "before every contender's run.\n\n"
            f"**Session per task**: the route answers 503 to every request; "
            f"{plan.compart_task_rounds} interleaved round(s) × {per_round} calls per contender, "
            "each call of (a) and (b) through a new `with ResilientSession(config) as s: "
            "s.get(url)`. Config: the defaults but `RetryConfig(max_attempts=3, min_wait=0.001, "
            f"max_wait=0.01)` and `failure_threshold={FAILURE_THRESHOLD}` (recovery timeout 30 s: "
            "an open breaker stays open). The upstream's hit counter is read after every call "
            "up to the first refused one, and at the end of the round (so no pipe round trip "
            "sits between the refused calls being timed). "
            "\"After the breaker opened\" counts from the first refused call (for a contender "
            f"that refuses none, from call #{FAILURE_THRESHOLD + 1}). Only `.get()` is timed "
            "(`time.perf_counter_ns`, exception caught); session construction and close are "
            "timed apart.\n\n"
            "**Isolation**: dependency B is a route of the upstream (`http://127.0.0.1:PORT`); "
            "dependency A another origin on 127.0.0.1, a socket that listens but accepts "
            "nothing until released, so calls to it hang with nothing running on either side "
            "(`StalledOrigin` in `bench/compartments.py`; the upstream's `Hold` polls every "
            "20 ms per held request, which in B's server process slowed B's replies). "
            "One session per contender with "
            f"`BulkheadConfig(max_concurrency={SLOTS}, acquisition_timeout={ACQUIRE:g})`; "
            f"{plan.compart_rounds} interleaved rounds, each measuring up to "
            f"{plan.compart_calls} sequential calls to B with nothing hung and with A's bulkhead "
            f"full ({SLOTS} threads' calls to A, hanging until released; the order "
            "of the two phases alternates by round; each phase starts with "
            f"{WARM_CALLS} uncounted calls to B). A phase stops after "
            f"{plan.compart_phase_limit:g} s (the capped contender's calls to B each wait "
            f"{ACQUIRE * 1000:g} ms). The hung calls are released and their threads joined "
            "at the end of every round. p50/p99 are over every call of all rounds."
        ),
        goals=goals,
        tables=[task_table, cost_table, iso_table],
        notes=[
            "(b) is what a session per task got before compartments: each new session has a fresh "
            "breaker and budget, so every call makes all its attempts against the dead origin "
            "and nothing ever fails fast.",
            "Refused `.get()` calls during which the cyclic garbage collector ran (a pause "
            f"charged to whichever call crosses its threshold): (a) {shared.refused_collected}, "
            f"(c) {long_lived.refused_collected}; without them, p99 (a) "
            f"{fmt(percentile(shared.refused_clean_us, 99), 1)} µs, (c) "
            f"{fmt(percentile(long_lived.refused_clean_us, 99), 1)} µs (to tell a GC pause or "
            "a busy machine, see the load average, from the library's own cost).",
            "(a)'s refused `.get()` includes what a new session does on its first call to an "
            "origin: making its route, which computes the policy's digest "
            f"(`compartments.policy_key(config)`: {fmt(digest_us, 1)} µs alone here, median of "
            f"{DIGEST_CALLS}) and builds a retry loop, then finding the compartment in the "
            "registry; (c) has its route cached. The digest is cached per session "
            "(`Routes._policies`), so a session per task pays it on every task.",
            f"With `total_concurrency={SLOTS}` the hung calls to A also hold every slot of the "
            f"session-wide cap, so each call to B waits `acquisition_timeout` "
            f"({ACQUIRE * 1000:g} ms) and is refused with `PoolTimeoutError`: the old single "
            "bulkhead per session.",
            f"Threads started by this scenario still running at its end: {len(leftover)} "
            f"(should be 0){': ' + ', '.join(leftover) if leftover else ''}.",
        ],
    )
