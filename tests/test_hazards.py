"""Production hazards, each reproduced with real servers, forks and signals:
forked workers, dropped streams, interrupted waits, deadline gaps, redirects
across origins, close() during a hedge, and per-origin state that never ends."""
from __future__ import annotations

import gc
import json
import os
import signal
import threading
import time
import warnings
from typing import Callable, Iterator, Optional

import pytest

import resilient_requests as rr
from resilient_requests.testing import Echo, FaultServer, Hold, Trickle, ok, redirect, status

from .conftest import fast_config, wait_until

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")


@pytest.fixture(autouse=True)
def fresh_module_state() -> Iterator[None]:
    """The module-level API starts on millisecond waits and ends on defaults."""
    rr.configure(fast_config())
    yield
    rr.configure()


def _in_child(work: Callable[[], int], limit: float = 20.0,
              meanwhile: Optional[Callable[[], None]] = None) -> int:
    """Run ``work`` in a forked child; its return value is the child's exit code.
    The parent runs ``meanwhile`` (if given), then waits at most ``limit``
    seconds for the child, then kills it."""
    with warnings.catch_warnings():
        # Python 3.12+ warns that fork() in a threaded process may deadlock the
        # child: that hazard is exactly what these tests check is handled.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 99
        try:
            code = work()
        finally:
            os._exit(code)
    if meanwhile is not None:
        meanwhile()
    deadline = time.monotonic() + limit
    while True:
        done, status_ = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status_) if hasattr(os, "waitstatus_to_exitcode") \
                else status_ >> 8
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -1
        time.sleep(0.01)


def _path_of(response) -> str:
    return json.loads(response.content)["path"]


# -- fork ---------------------------------------------------------------------------------------

@needs_fork
def test_after_fork_the_module_api_does_not_share_the_parents_connections(fault_server):
    """A child forked after a module-level call opens its own connection: no reply
    crosses between processes, even while both call at once."""
    base = fault_server.url
    for path in ["/before"] + [f"/{who}/{i}" for who in ("child", "parent") for i in range(30)]:
        fault_server.route(path, Echo())
    assert _path_of(rr.get(base("/before"))) == "/before"  # a keep-alive connection is pooled

    def child() -> int:
        wrong = sum(_path_of(rr.get(base(f"/child/{i}"))) != f"/child/{i}" for i in range(30))
        return 0 if wrong == 0 else 1

    results = []

    def parent() -> None:  # in the parent, at the same time as the child
        results.extend(_path_of(rr.get(base(f"/parent/{i}"))) == f"/parent/{i}" for i in range(30))

    code = _in_child(child, meanwhile=parent)
    assert code == 0
    assert all(results) and len(results) == 30
    seen = {r.path: r.peer for r in fault_server.requests}
    assert seen["/child/0"] != seen["/before"], "the child's first call went over the parent's socket"


@needs_fork
def test_a_forked_child_has_its_own_breaker(fault_server):
    """The parent's open breaker is the parent's: the child's first call is sent."""
    rr.configure(fast_config(threshold=1, attempts=1))
    fault_server.route("/down", status(503))
    assert rr.get(fault_server.url("/down")).status_code == 503
    with pytest.raises(rr.CircuitOpenError):
        rr.get(fault_server.url("/down"))

    def child() -> int:
        try:
            rr.get(fault_server.url("/down"))
        except rr.CircuitOpenError:
            return 1
        return 0

    assert _in_child(child) == 0
    assert fault_server.hits("/down") == 2  # the parent's one call and the child's


@needs_fork
def test_the_deadline_is_enforced_in_a_forked_child(fault_server):
    """The watchdog thread of the parent does not exist in the child: the child's
    deadline still ends a trickling reply on time."""
    fault_server.route("/slow", Trickle(chunk=b"x", every=0.05, count=200))  # 10 s
    rr.get(fault_server.url("/"), deadline=5)  # the parent's watchdog thread exists now

    def child() -> int:
        started = time.monotonic()
        try:
            rr.get(fault_server.url("/slow"), deadline=0.5)
        except rr.DeadlineExceededError:
            return 0 if time.monotonic() - started < 4.0 else 2
        return 1

    assert _in_child(child) == 0


@needs_fork
def test_hedging_works_in_a_forked_child(fault_server, make_session):
    """A session that hedged in the parent hedges in the child too (fresh workers)."""
    release = threading.Event()
    config = fast_config(attempts=1)
    config.hedge = rr.HedgeConfig(enabled=True, delay=0.05)
    session = make_session(config)
    fault_server.route("/h", ok("fast"))
    assert session.get(fault_server.url("/h")).status_code == 200
    fault_server.route("/held", Hold(release, ok("slow"), limit=10), ok("fast"))

    def child() -> int:
        answer = session.get(fault_server.url("/held")).text
        return 0 if answer == "fast" else 1

    try:
        assert _in_child(child) == 0
    finally:
        release.set()


# -- dropped streams and interrupted waits ------------------------------------------------------

def _drop_streams(get: Callable[[str], object], url: str, count: int) -> None:
    """Open ``count`` streamed responses and drop them unread and unclosed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the dropped sockets, closed by the collector
        for _ in range(count):
            get(url)
        gc.collect()


def test_dropped_streams_do_not_block_later_module_level_calls(fault_server):
    """More dropped unread stream=True responses than the pool holds: the next
    module-level call to that host still goes out at once."""
    rr.configure(fast_config(slots=4))  # pools of 10 connections per host
    fault_server.route("/stream", Trickle(chunk=b"x", every=0.05, count=100))
    _drop_streams(lambda url: rr.get(url, stream=True), fault_server.url("/stream"), 15)
    assert rr.get(fault_server.url("/next"), deadline=2).status_code == 200


def test_streams_held_open_do_not_block_a_session(fault_server, make_session):
    """A session whose every pooled connection is held by an open stream opens
    another connection for the next call instead of waiting for one."""
    fault_server.route("/stream", Trickle(chunk=b"x", every=0.05, count=100))
    session = make_session(slots=2)
    held = [session.get(fault_server.url("/stream"), stream=True) for _ in range(12)]  # pool size 10
    try:
        assert session.get(fault_server.url("/next"), deadline=2).status_code == 200
    finally:
        for response in held:
            response.close()
    _drop_streams(lambda url: session.get(url, stream=True), fault_server.url("/stream"), 12)
    assert session.get(fault_server.url("/next"), deadline=2).status_code == 200


class _Interrupted(Exception):
    """What the test's signal handler raises into the waiting thread."""


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_a_signal_raised_into_a_bulkhead_wait_gives_no_slot_away(fault_server, make_session):
    """An exception raised by a signal handler while the main thread waits for a
    bulkhead slot leaves no dead waiter behind: the slot comes back."""
    release = threading.Event()
    fault_server.route("/held", Hold(release, limit=10))
    session = make_session(slots=1, acquire=5.0)
    holder = threading.Thread(target=session.get, args=(fault_server.url("/held"),))
    holder.start()
    wait_until(lambda: fault_server.in_flight == 1)

    def interrupt(signum, frame):
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(_Interrupted):
            session.get(fault_server.url("/waits"))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        release.set()
        holder.join(timeout=10)
    assert session.stats()["bulkhead"]["in_use"] == 0
    started = time.monotonic()
    assert session.get(fault_server.url("/after")).status_code == 200
    assert time.monotonic() - started < 2.0  # not the 5 s acquisition timeout
    assert fault_server.hits("/waits") == 0


# -- one deadline for the whole call ------------------------------------------------------------

@pytest.mark.parametrize("follow", [True, False])
def test_a_redirect_whose_body_trickles_ends_at_the_deadline(fault_server, make_session, follow):
    """A 302 whose body trickles is read within the deadline, followed or not."""
    fault_server.route("/moved", Trickle(chunk=b"x", every=0.05, count=60, status=302,
                                         headers={"Location": "/target"}))
    session = make_session(attempts=1)
    started = time.monotonic()
    with pytest.raises(rr.DeadlineExceededError):
        session.get(fault_server.url("/moved"), deadline=0.5, allow_redirects=follow)
    assert time.monotonic() - started < 2.0  # the trickle lasts 3 s
    assert fault_server.hits("/target") == 0


def test_the_deadline_bounds_the_wait_for_a_bulkhead_slot(fault_server, make_session):
    """With every slot busy, a call's deadline ends its wait before acquisition_timeout;
    nothing is sent."""
    release = threading.Event()
    fault_server.route("/held", Hold(release, limit=10))
    session = make_session(slots=1, acquire=10.0)
    holder = threading.Thread(target=session.get, args=(fault_server.url("/held"),))
    holder.start()
    try:
        wait_until(lambda: fault_server.in_flight == 1)
        started = time.monotonic()
        with pytest.raises(rr.DeadlineExceededError, match="bulkhead"):
            session.get(fault_server.url("/waits"), deadline=0.3)
        assert time.monotonic() - started < 2.0
    finally:
        release.set()
        holder.join(timeout=10)
    assert fault_server.hits("/waits") == 0
    assert session.stats()["bulkhead"]["in_use"] == 0


# -- redirects across origins --------------------------------------------------------------------

def test_a_redirect_targets_failures_are_charged_to_the_target(fault_server, make_session):
    """An API that redirects to a failing CDN: the CDN's origin is charged the
    failures, the API's origin the redirects it answered; the API's throttle
    does not shed its healthy calls."""
    config = fast_config(attempts=1, threshold=1000)
    config.throttle = rr.ThrottleConfig(enabled=True)
    session = make_session(config)
    with FaultServer() as cdn:
        cdn.route("/file", status(503))
        fault_server.route("/download", redirect(cdn.url("/file")))
        for _ in range(20):
            try:
                assert session.get(fault_server.url("/download")).status_code == 503
            except rr.ThrottledError as shed:  # the CDN's own throttle, at the redirect
                assert shed.origin.endswith(f":{cdn.port}")
        for _ in range(50):
            assert session.get(fault_server.url("/health")).status_code == 200
        origins = session.stats()["origins"]
        api = next(v for k, v in origins.items() if k.endswith(f":{fault_server.port}"))
        target = next(v for k, v in origins.items() if k.endswith(f":{cdn.port}"))
    assert fault_server.hits("/health") == 50  # none shed locally
    assert api["failures"] == 0 and api["throttled"] == 0
    assert api["successes"] == 70
    assert target["calls"] == 20 and target["failures"] == 20
    assert cdn.hits("/file") + target["throttled"] == 20


# -- close() during a hedge ----------------------------------------------------------------------

def test_close_does_not_wait_for_a_hedge_and_hedging_goes_on_after(fault_server, make_session):
    """close() while a hedge is held by a slow server returns at once (the hedge is
    cancelled); the session hedges again afterwards."""
    release = threading.Event()
    config = fast_config(attempts=1)
    config.hedge = rr.HedgeConfig(enabled=True, delay=0.05)
    session = make_session(config)
    fault_server.route("/held", Hold(release, ok("first"), limit=10), Hold(release, ok("hedge"), limit=10))
    answers = []
    caller = threading.Thread(target=lambda: answers.append(session.get(fault_server.url("/held")).text))
    caller.start()
    try:
        wait_until(lambda: fault_server.hits("/held") == 2)  # the first attempt and its hedge
        started = time.monotonic()
        session.close()
        assert time.monotonic() - started < 1.0
    finally:
        release.set()
        caller.join(timeout=10)
    assert answers == ["first"]
    fault_server.route("/again", Hold(release := threading.Event(), ok("slow"), limit=10), ok("fast"))
    try:
        assert session.get(fault_server.url("/again")).text == "fast"
    finally:
        release.set()


# -- per-origin state is bounded -----------------------------------------------------------------

def test_per_origin_state_is_bounded_and_an_open_breaker_is_kept(fault_server, make_session):
    """2,000 origins touched once leave at most Registry.max_compartments
    compartments (and a session's stats stay as small); the open breaker
    survives and still fails fast."""
    session = make_session(threshold=1, attempts=1)
    fault_server.route("/down", status(503))
    session.get(fault_server.url("/down"))
    for i in range(2000):
        session.circuit_state(f"http://127.0.{i // 250}.{i % 250 + 1}:9/")
    assert len(rr.registry()) <= rr.Registry.max_compartments
    assert len(session.stats()["origins"]) <= rr.Registry.max_compartments
    with pytest.raises(rr.CircuitOpenError):
        session.get(fault_server.url("/down"))
    assert fault_server.hits("/down") == 1
