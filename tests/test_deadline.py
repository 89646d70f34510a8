"""The total deadline: one bound over every attempt, every wait and the body."""
from __future__ import annotations

import threading
import time

import pytest
import requests

import resilient_requests as rr
from resilient_requests.deadline import WATCHDOG
from resilient_requests.testing import Trickle, ok, status

from .conftest import fast_config

# Generous: the watchdog fires at the deadline and measured overruns are a few
# milliseconds; the bound only has to tell "bounded" from "held for seconds".
MARGIN = 1.5


def _timed(call):
    started = time.monotonic()
    try:
        return call(), time.monotonic() - started
    except Exception as error:  # returned for the test to inspect
        return error, time.monotonic() - started


@pytest.mark.parametrize("in_headers", [False, True], ids=["trickled body", "trickled headers"])
def test_a_trickling_server_is_cut_off_at_the_deadline(fault_server, make_session, in_headers):
    """A server sending a byte every 0.1 s for 6 s ends the call at total=0.5 with DeadlineExceededError."""
    fault_server.route("/slow", Trickle(chunk=b"a", every=0.1, count=60, in_headers=in_headers))
    config = fast_config()
    config.timeout = rr.TimeoutConfig(connect=2.0, read=5.0, write=2.0, pool=2.0, total=0.5)
    error, elapsed = _timed(lambda: make_session(config).get(fault_server.url("/slow")))
    assert isinstance(error, rr.DeadlineExceededError)
    assert isinstance(error, rr.TimeoutError) and isinstance(error, requests.Timeout)
    assert elapsed < 0.5 + MARGIN
    assert fault_server.hits("/slow") == 1  # not retried: the deadline ends the call


def test_plain_requests_is_held_by_the_same_server(fault_server):
    """The baseline: requests' per-read timeout does not bound a trickling server."""
    fault_server.route("/slow", Trickle(chunk=b"a", every=0.1, count=15))
    response, elapsed = _timed(lambda: requests.get(fault_server.url("/slow"), timeout=0.5))
    assert response.status_code == 200 and elapsed > 1.0


def test_per_call_deadline_overrides_the_config(fault_server, make_session):
    """deadline= bounds one call; the next call is unbounded by it."""
    fault_server.route("/slow", Trickle(chunk=b"a", every=0.05, count=10))
    session = make_session()
    error, _ = _timed(lambda: session.get(fault_server.url("/slow"), deadline=0.2))
    assert isinstance(error, rr.DeadlineExceededError)
    assert session.get(fault_server.url("/slow")).content == b"a" * 10


def test_a_wait_that_would_pass_the_deadline_is_not_slept(fault_server, make_session):
    """A Retry-After of 5 s with 1 s left ends the call at once with the 503."""
    fault_server.route("/busy", status(503, retry_after=5))
    config = fast_config()
    config.retry = rr.RetryConfig(min_wait=0.001, max_wait=10.0)
    response, elapsed = _timed(lambda: make_session(config).get(fault_server.url("/busy"), deadline=1.0))
    assert response.status_code == 503
    assert fault_server.hits("/busy") == 1
    assert elapsed < 1.0


def test_deadline_passed_between_attempts_ends_the_loop(fault_server, make_session):
    """Attempts that each take 0.3 s stop once the deadline is spent, not after max_attempts."""
    fault_server.route("/x", status(503, delay=0.3))
    response, elapsed = _timed(lambda: make_session(attempts=10).get(fault_server.url("/x"), deadline=0.7))
    assert isinstance(response, rr.DeadlineExceededError) or response.status_code == 503
    assert fault_server.hits("/x") <= 3
    assert elapsed < 0.7 + MARGIN


def test_stream_deadline_covers_only_until_the_response_is_returned(fault_server, make_session):
    """With stream=True the body may take longer than the deadline once the response is returned."""
    fault_server.route("/stream", Trickle(chunk=b"x", every=0.05, count=10))
    with make_session().get(fault_server.url("/stream"), stream=True, deadline=0.2) as response:
        assert response.content == b"x" * 10


@pytest.mark.parametrize("bad", [0, -1, "5", True, float("nan")])
def test_invalid_deadline_names_the_parameter(make_session, bad):
    """A deadline that is not a positive number raises ValueError naming it."""
    with pytest.raises(ValueError, match="deadline"):
        make_session().get("http://127.0.0.1:9/", deadline=bad)


def test_total_is_validated_in_the_config():
    """TimeoutConfig.total must be a positive number or None."""
    assert rr.TimeoutConfig(total=None).total is None
    with pytest.raises(ValueError, match="TimeoutConfig.total"):
        rr.TimeoutConfig(total=0)


def test_presets_add_a_total(fault_server):
    """The named presets bound the whole call; the default does not."""
    assert rr.preset("default").timeout.total is None
    for name in ("high_latency", "fast_microservice", "batch_processing"):
        total = rr.preset(name).timeout.total
        assert total is not None and total > rr.preset(name).timeout.read


def test_a_healthy_call_is_unaffected_and_the_connection_reused(fault_server, make_session):
    """Calls that finish in time are not cut, and keep-alive still works after them."""
    fault_server.route("/x", ok("fine"))
    session = make_session()
    for _ in range(5):
        assert session.get(fault_server.url("/x"), deadline=5).text == "fine"
    assert fault_server.hits("/x") == 5


def test_watchdog_thread_exits_when_idle(fault_server, make_session):
    """The watchdog starts with the first deadline and leaves no thread behind once idle."""
    make_session().get(fault_server.url("/"), deadline=5)
    deadline = time.monotonic() + 10
    while WATCHDOG.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not WATCHDOG.running()
    assert not [t for t in threading.enumerate() if t.name == "resilient_requests-watchdog"]


def test_watchdog_fires_every_live_deadline_and_no_cancelled_one():
    """Cancelled deadlines never fire, live ones all do, and cancelling fired ones leaves no drift."""
    from resilient_requests.deadline import Deadline, Watchdog

    watchdog = Watchdog(idle_exit=0.2)

    def fire_all(live, cancelled):
        for deadline in live + cancelled:
            watchdog.watch(deadline)
        for deadline in cancelled:
            watchdog.cancel(deadline)
        limit = time.monotonic() + 10
        while not all(d.expired for d in live):
            assert time.monotonic() < limit, "a live deadline did not fire"
            time.sleep(0.01)
        assert not any(d.expired for d in cancelled)
        for deadline in live:
            watchdog.cancel(deadline)  # as a finished call does, after its deadline fired

    for _ in range(3):
        fire_all([Deadline(0.02 + i / 1000) for i in range(50)], [Deadline(0.03) for _ in range(200)])
    limit = time.monotonic() + 10
    while watchdog.running():
        assert time.monotonic() < limit, "the watchdog thread did not exit when idle"
        time.sleep(0.02)
