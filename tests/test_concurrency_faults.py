"""64 threads, thousands of calls with random faults through one session while the breaker flips:
afterwards only documented exceptions were raised and nothing (slot, thread, fd) was left behind,
and with the garbage collector off close() alone closed every socket to the server."""
from __future__ import annotations

import contextlib
import gc
import io
import logging
import os
import random
import threading
import time
import traceback
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, NamedTuple, Optional, Set, Tuple

import pytest

import resilient_requests as rr
from resilient_requests.testing import (
    FaultServer,
    Hang,
    Hold,
    Reset,
    Trickle,
    Truncate,
    ok,
    refused_url,
    status,
)

from .conftest import fast_config, sockets_to

SEED = 20240611
THREADS = 64
CALLS = 5000
# Well under THREADS, and low enough that the bulkhead, not the CPU, is what bounds the server's
# concurrency on 2 cores (with 24 slots the server never got past ~18 and the bound tested nothing).
SLOTS = 12
ACQUIRE = 0.25
ATTEMPTS = 3
THRESHOLD = 3
RECOVERY = 0.05
READ = 0.2  # a Hang ends on the client's read timeout...
HANG_LIMIT = 0.5  # ...long before the server would give up on it
DEADLINE_SHARE = 0.25
DEADLINES = (0.03, 0.06, 0.1, 0.2)
RUN_LIMIT = 120.0  # a hard bound on the storm; it takes ~6 s on 2 cores
SETTLE = 10.0  # bound on waiting for sockets to close and threads to exit
WATCHDOG = "resilient_requests-watchdog"
LOGGER = "resilient_requests.test_concurrency_faults"

# The server's in-flight count runs from parsing a request until its handler returns. That outlives
# the client's use of the request: after the response is sent the handler still has to be scheduled
# to return (with 64 client threads on 2 cores: up to ~20 ms measured), and a request the client
# gave up on (read timeout, deadline) stays counted until its handler notices or its delay ends.
# Meanwhile the slot is free and the next call is already at the server. Instrumented runs (server
# begin/end and client return times per call id) showed the raw peak at SLOTS + 1 in ~40% of runs,
# every time with at most SLOTS *calls* being served: the extra request was one whose call had
# already returned, or an earlier attempt of a call already on its retry. The raw peak is therefore
# checked with this allowance, and the exact bound is checked after the storm with held requests,
# where no handler can end early (see _check_bulkhead_end_to_end).
STALE_ALLOWANCE = 2

#: Everything a caller may see (raise_for_status is off, so 4xx/5xx are responses).
DOCUMENTED = (rr.ConnectionError, rr.TimeoutError, rr.PoolTimeoutError)
#: Most specific first: each error is named by the documented class it is.
NAMED = (rr.CircuitOpenError, rr.DeadlineExceededError, rr.PoolTimeoutError, rr.TimeoutError,
         rr.ConnectionError)

SCRIPTS = {  # about one attempt in six fails in a way the breaker counts
    "/a": (ok(), ok(delay=0.005), status(503), ok(delay=0.02), ok(), ok(delay=0.01),
           status(429, retry_after=0), ok(delay=0.015), Reset(), ok(), ok(delay=0.008),
           ok(delay=0.002)),
    "/b": (ok(delay=0.001), Truncate(), ok(delay=0.01), ok(), Trickle(b".", every=0.005, count=4),
           ok(delay=0.02), ok(delay=0.004), status(500), ok(), ok(delay=0.012)),
    "/c": (Hang(limit=HANG_LIMIT), ok(), ok(delay=0.003), ok(delay=0.02), status(503), ok(),
           ok(delay=0.006), Trickle(b"h", every=0.01, count=3, in_headers=True), ok(delay=0.015),
           ok(), Truncate(), ok()),
    "/d": (ok(delay=0.01), ok(), status(429, retry_after=0), ok(delay=0.002), ok(delay=0.018),
           ok(), status(503), ok(delay=0.007)),
}
TARGET_WEIGHTS = {"/a": 30, "/b": 25, "/c": 20, "/d": 20, "refused": 5}
KIND_WEIGHTS = {"GET": 35, "PUT": 15, "POST": 20, "POST+key": 15, "DELETE": 15}


class Plan(NamedTuple):
    """One call: what to send where."""

    call_id: int
    method: str
    keyed: bool  # sends an Idempotency-Key
    target: str  # a key of SCRIPTS, or "refused"
    deadline: Optional[float]


def _plans(rng: random.Random) -> List[Plan]:
    targets, target_weights = zip(*TARGET_WEIGHTS.items())
    kinds, kind_weights = zip(*KIND_WEIGHTS.items())
    plans = []
    for call_id in range(CALLS):
        target = rng.choices(targets, target_weights)[0]
        kind = rng.choices(kinds, kind_weights)[0]
        deadline = rng.choice(DEADLINES) if rng.random() < DEADLINE_SHARE else None
        plans.append(Plan(call_id, kind.split("+")[0], kind == "POST+key", target, deadline))
    return plans


class _LogCounter(logging.Handler):
    """Counts the library's log lines: breaker transitions per origin, retries."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = str(record.msg)
        if message.startswith("circuit"):
            outcome = getattr(record, "outcome", "?")
            self.counts[(outcome, getattr(record, "origin", "?"))] += 1
        else:
            self.counts[message.split(" ", 1)[0]] += 1  # "retrying", "not"


def _fds() -> Dict[int, str]:
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass  # the listing's own descriptor, closed already
    return fds


def _new_threads(before: Set[threading.Thread]) -> Set[threading.Thread]:
    return set(threading.enumerate()) - before


def _poll(condition: Callable[[], bool], limit: float) -> bool:
    """Bounded polling for something that settles on its own (sockets closing, threads exiting)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _name(error: BaseException) -> str:
    ours = next((cls.__name__ for cls in NAMED if isinstance(error, cls)), "UNDOCUMENTED")
    return f"{ours}({type(error).__module__}.{type(error).__name__})"


def _config() -> rr.ClientConfig:
    return fast_config(
        attempts=ATTEMPTS, threshold=THRESHOLD, recovery=RECOVERY, slots=SLOTS, acquire=ACQUIRE,
        read=READ, logging=rr.LoggingConfig(level="INFO", logger_name=LOGGER),
    )


def test_64_threads_of_random_faults_leave_nothing_behind():
    """64 threads x 5000 faulty calls, one session, gc off: documented errors only, no leaks."""
    gc.collect()
    threads_before = {t for t in threading.enumerate() if t.name != WATCHDOG}
    fds_before = _fds()

    log = logging.getLogger(LOGGER)
    counter = _LogCounter()
    log.addHandler(counter)
    log.setLevel(logging.INFO)
    log.propagate = False  # thousands of retry lines: counted here, not captured by pytest
    # Off for the storm: sockets must be closed by close(), not by the garbage collector
    # finding reference cycles that hold them (checked in _storm_with_server).
    gc.disable()
    try:
        report = _storm(counter)
    finally:
        gc.enable()
        log.removeHandler(counter)
        log.propagate = True
        log.setLevel(logging.NOTSET)
    print(report)  # shown with -s / -rP: the outcome counts of this run

    gc.collect()  # an unclosed socket would raise its ResourceWarning here (filterwarnings=error)
    # Nothing started during the test may outlive it. The watchdog exits after ~1 s idle, the
    # server's handler threads once their sockets close: polled, with a bound. (A thread or
    # descriptor of an earlier test that ends meanwhile is not ours, so "before" may shrink.)
    settled = _poll(lambda: set(threading.enumerate()) <= threads_before, SETTLE)
    assert settled, f"threads left behind: {sorted(t.name for t in _new_threads(threads_before))}"
    settled = _poll(lambda: set(_fds().items()) <= set(fds_before.items()), SETTLE)
    leaked = sorted(set(_fds().items()) - set(fds_before.items()))
    assert settled, f"descriptors left behind: {leaked}"


def _storm(counter: _LogCounter) -> str:
    """Run the calls, then check what needs the live server and session. Returns a report."""
    plans = _plans(random.Random(SEED))
    # The server's handlers print a traceback for every write to a client that already left
    # (BrokenPipeError...): summarised in the report instead of flooding the captured output.
    server_errors = io.StringIO()
    with contextlib.redirect_stderr(server_errors):
        try:
            report = _storm_with_server(counter, plans)
        except AssertionError as failure:
            raise AssertionError(f"{failure}{_summary(server_errors)}") from None
    return report + _summary(server_errors)


def _summary(stderr: io.StringIO) -> str:
    lines = [line for line in stderr.getvalue().splitlines() if line and not line.startswith(
        (" ", "-" * 40, "Traceback", "Exception occurred during processing"))]
    return f"\nserver-side stderr: {dict(Counter(line[:120] for line in lines))}"


def _storm_with_server(counter: _LogCounter, plans: List[Plan]) -> str:
    """The storm and its checks against one FaultServer and one session."""
    with FaultServer() as server:
        for path, script in SCRIPTS.items():
            server.route(path, *script, cycle=True)
        server.route("/healthy", ok())
        refused = refused_url("/refused")
        urls = {path: server.url(path) for path in SCRIPTS}
        urls["refused"] = refused
        session = rr.ResilientSession(_config())
        try:
            outcomes, per_call, unexpected, elapsed = _run(session, plans, urls)
            transitions = {
                f"{key[0]} {'refused' if key[1] in refused else 'server'}": n
                for key, n in counter.counts.items() if isinstance(key, tuple)
            }
            report = (
                f"\n{len(per_call)} calls in {elapsed:.2f}s; outcomes:\n  "
                + "\n  ".join(f"{k}: {v}" for k, v in sorted(outcomes.items()))
                + f"\nbreaker transitions: {dict(sorted(transitions.items()))}"
                + f"\nretries: {counter.counts['retrying']}, "
                f"requests the server saw: {len(server.requests)}, "
                f"its peak in flight: {server.peak_in_flight} (slots: {SLOTS})"
                f"\ncalls with a deadline < READ that got a plain TimeoutError (a library bug, see "
                f"test_every_timeout_of_a_call_with_a_short_deadline_is_deadline_exceeded): "
                f"{_plain_timeouts_within_deadline(plans, per_call)}"
            )
            assert not unexpected, f"undocumented exceptions:\n{''.join(unexpected[:3])}{report}"
            assert len(per_call) == CALLS, f"the storm did not finish in {RUN_LIMIT}s{report}"

            in_use = session.stats()["bulkhead"]["in_use"]
            assert in_use == 0, f"{in_use} bulkhead slots still taken{report}"
            assert server.peak_in_flight <= SLOTS + STALE_ALLOWANCE, (
                f"more in flight at the server than the bulkhead and stale handlers explain{report}"
            )
            assert transitions.get("circuit_open server", 0) >= 3, f"breaker hardly flipped{report}"
            assert transitions.get("circuit_closed server", 0) >= 2, f"breaker never closed{report}"
            _check_server_saw(server, plans, per_call, report)
            _check_breakers(session, server.url("/healthy"), refused, report)
            _check_bulkhead_end_to_end(session, server, report)
        finally:
            session.close()
        # Right after close(), with the collector off since the storm began: close() alone
        # closed every socket (no cycle left by a failed call holds a pool and its idle ones).
        left = sockets_to(server.port)
        assert left == 0, f"{left} sockets to the server still open right after close(){report}"
    return report


def _plain_timeouts_within_deadline(plans: List[Plan], per_call: Dict[int, str]) -> int:
    """Calls whose deadline capped every read timeout, yet ended in a plain TimeoutError."""
    return sum(
        1 for plan in plans
        if plan.deadline is not None and plan.deadline < READ
        and per_call.get(plan.call_id, "").startswith("TimeoutError")
    )


def _run(session: rr.ResilientSession, plans: List[Plan], urls: Dict[str, str]
         ) -> Tuple[Counter, Dict[int, str], List[str], float]:
    """All calls from THREADS threads started together; each call's outcome by call id."""
    outcomes: Counter = Counter()
    per_call: Dict[int, str] = {}
    unexpected: List[str] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS, timeout=30)
    queue = iter(plans)  # shared: a thread takes the next call when it is free
    stop_at = time.monotonic() + RUN_LIMIT

    def call(plan: Plan) -> Tuple[str, float]:
        kwargs: dict = {"params": {"call": plan.call_id}}
        if plan.method in ("PUT", "POST"):
            kwargs["data"] = f"{plan.method}-{plan.call_id}".encode()
        if plan.keyed:
            kwargs["headers"] = {"Idempotency-Key": f"key-{plan.call_id}"}
        if plan.deadline is not None:
            kwargs["deadline"] = plan.deadline
        try:
            with session.request(plan.method, urls[plan.target], **kwargs) as response:
                return f"status {response.status_code}", 0.0
        except rr.CircuitOpenError as error:
            return _name(error), min(error.retry_after, RECOVERY) or RECOVERY
        except DOCUMENTED as error:
            return _name(error), 0.0
        except Exception as error:  # reported by the test with its traceback
            with lock:
                unexpected.append("".join(traceback.format_exception(error)))
            return _name(error), 0.0

    def worker() -> None:
        start.wait()
        while time.monotonic() < stop_at:  # the hard bound; the count assertion then fails
            with lock:
                plan = next(queue, None)
            if plan is None:
                return
            outcome, pause = call(plan)
            with lock:
                outcomes[outcome] += 1
                per_call[plan.call_id] = outcome
            if pause:
                # A polite caller: after CircuitOpenError it waits the error's retry_after (a
                # recovery period while a half-open trial is in flight) before its next call.
                # Without this, 64 threads burn thousands of calls in one 50 ms open spell.
                time.sleep(pause)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="storm") as pool:
        futures = [pool.submit(worker) for _ in range(THREADS)]
        for future in futures:
            future.result(timeout=RUN_LIMIT + 30)
    return outcomes, per_call, unexpected, time.monotonic() - started


def _check_server_saw(server: FaultServer, plans: List[Plan], per_call: Dict[int, str],
                      report: str) -> None:
    """Per call id: a POST without Idempotency-Key at most once, nothing after a fail-fast."""
    seen: Counter = Counter()
    methods: Dict[int, Set[str]] = defaultdict(set)
    for request in server.requests:
        if not request.query.startswith("call="):
            continue  # /healthy and /hold
        call_id = int(request.query[len("call="):].split("&", 1)[0])
        seen[call_id] += 1
        methods[call_id].add(request.method)
    for plan in plans:
        count, outcome = seen[plan.call_id], per_call[plan.call_id]
        where = f"call {plan.call_id} ({plan.method} {plan.target}, ended in {outcome})"
        assert count <= ATTEMPTS, f"{where} reached the server {count} times{report}"
        assert count == 0 or methods[plan.call_id] == {plan.method}, where
        if plan.method == "POST" and not plan.keyed:
            assert count <= 1, f"{where}: POST without Idempotency-Key sent {count} times{report}"
        if outcome.startswith(("CircuitOpenError", "PoolTimeoutError")):
            assert count == 0, f"{where} failed fast but reached the server {count} times{report}"
        if outcome.startswith("DeadlineExceededError"):
            assert plan.deadline is not None, f"{where} without a deadline{report}"
        if outcome.startswith("status"):
            assert count >= 1, f"{where}: a response the server never sent{report}"
        if plan.target == "refused":
            assert count == 0, where


def _check_breakers(session: rr.ResilientSession, healthy: str, refused: str, report: str) -> None:
    """Each breaker is in a valid state, and still recovers: no half-open trial slot leaked."""
    for url in (healthy, refused):
        assert session.circuit_state(url) in set(rr.CircuitState), report
    time.sleep(RECOVERY * 2)  # not synchronisation: past the recovery timeout, a trial is due
    with session.get(healthy) as response:
        assert response.status_code == 200, report
    assert session.circuit_state(healthy) is rr.CircuitState.CLOSED, report
    with pytest.raises(rr.ConnectionError) as caught:
        session.get(refused)  # the trial goes out (nothing listens) and opens the breaker again
    assert not isinstance(caught.value, rr.CircuitOpenError), f"no trial admitted{report}"
    assert session.circuit_state(refused) is rr.CircuitState.OPEN, report


def _check_bulkhead_end_to_end(session: rr.ResilientSession, server: FaultServer,
                               report: str) -> None:
    """The exact bound, after the storm: 64 held calls put exactly SLOTS requests on the server."""
    release = threading.Event()
    server.route("/hold", Hold(release, ok(), limit=SETTLE))
    # Handlers of abandoned storm requests end on their own (a Hang within HANG_LIMIT).
    assert _poll(lambda: server.in_flight == 0, SETTLE), f"{server.in_flight} in flight{report}"
    server.reset_counts()
    timeout = (2.0, SETTLE + 5)  # held longer than READ: must not time out

    def held() -> str:
        try:
            with session.get(server.url("/hold"), timeout=timeout) as response:
                return f"status {response.status_code}"
        except DOCUMENTED as error:
            return _name(error)

    with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="held") as pool:
        try:
            futures = [pool.submit(held) for _ in range(THREADS)]
            # SLOTS calls reach the server and stay there; every other call gets no slot
            # within ACQUIRE and fails with PoolTimeoutError, sending nothing.
            assert _poll(lambda: server.in_flight >= SLOTS, SETTLE), (
                f"only {server.in_flight} calls reached the server{report}"
            )
            assert _poll(lambda: sum(f.done() for f in futures) == THREADS - SLOTS, SETTLE), (
                f"{sum(f.done() for f in futures)} calls ended while {SLOTS} were held{report}"
            )
            assert server.in_flight == SLOTS, f"{server.in_flight} held at the server{report}"
            assert server.hits("/hold") == SLOTS, report
        finally:
            release.set()
        results = Counter(f.result(timeout=SETTLE) for f in futures)
    assert results == {"status 200": SLOTS, _name(rr.PoolTimeoutError("x")): THREADS - SLOTS}, (
        f"{results}{report}"
    )
    assert server.peak_in_flight == SLOTS, report
    assert session.stats()["bulkhead"]["in_use"] == 0, report


# -- bugs this storm turned up, each reproduced on its own --------------------------------------


def test_every_timeout_of_a_call_with_a_short_deadline_is_deadline_exceeded(fault_server,
                                                                             make_session):
    """32 threads x 300 calls with deadline=0.05 to a hanging server: all DeadlineExceededError."""
    # Fails today (~1 call in 6 raises a plain ReadTimeout): _Hop._cap_timeout sets the read
    # timeout to exactly the time left, so the socket timeout races the watchdog; when it wins
    # (the watchdog thread has not had the GIL yet), deadline.expired is still False in
    # _Hop._send and the error table classifies a read timeout. Single-threaded it never shows.
    fault_server.route("/hang", Hang(limit=5.0))
    session = make_session(slots=64, read=5.0, threshold=1_000_000)
    url = fault_server.url("/hang")

    def call(_: int) -> str:
        try:
            session.get(url, deadline=0.05).close()
            return "a response"
        except rr.TimeoutError as error:
            return _name(error)

    with ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = Counter(pool.map(call, range(300)))
    assert outcomes == {_name(rr.DeadlineExceededError("x")): 300}, dict(outcomes)


def test_a_saturated_bulkhead_does_not_starve_a_waiting_caller(fault_server, make_session):
    """64 threads x 20 calls of ~8 ms through 12 slots, 0.5 s to get one: no caller times out."""
    # Fails today (6-18 PoolTimeoutErrors per run, while slots are freed every few ms):
    # threading.BoundedSemaphore is not fair. A releasing thread that calls again takes the
    # slot back before the waiter it notified runs, so a waiter can lose every round until its
    # acquisition_timeout passes. A FIFO bulkhead (hand a released slot to the oldest waiter)
    # bounds the wait by the queue ahead: ~52 / 12 rounds of ~10 ms here.
    fault_server.route("/x", ok(delay=0.005))
    session = make_session(slots=SLOTS, acquire=0.5, read=5.0)
    url = fault_server.url("/x")

    def calls(_: int) -> List[Tuple[str, float]]:
        results = []
        for _ in range(20):
            started = time.monotonic()
            try:
                with session.get(url) as response:
                    outcome = f"status {response.status_code}"
            except rr.PoolTimeoutError as error:
                outcome = _name(error)
            results.append((outcome, time.monotonic() - started))
        return results

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = [r for per_thread in pool.map(calls, range(THREADS)) for r in per_thread]
    outcomes = Counter(outcome for outcome, _ in results)
    durations = sorted(elapsed for _, elapsed in results)
    assert outcomes == {"status 200": THREADS * 20}, (
        f"{dict(outcomes)}; call times: median {durations[len(durations) // 2] * 1000:.0f} ms, "
        f"max {durations[-1] * 1000:.0f} ms; the server's peak in flight: "
        f"{fault_server.peak_in_flight}"
    )
