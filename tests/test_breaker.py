"""Per-origin circuit breakers: what counts, when they open, how they recover."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List

import pytest

import resilient_requests as rr
from resilient_requests import CircuitState
from resilient_requests.testing import FaultServer, Hold, ok, refused_url, status

from .conftest import wait_until


def test_opens_after_threshold_consecutive_failures_and_fails_fast(fault_server, make_session):
    """After failure_threshold failing attempts the origin fails fast with no I/O."""
    fault_server.route("/x", status(500))
    session = make_session(attempts=1, threshold=3)
    for _ in range(3):
        assert session.get(fault_server.url("/x")).status_code == 500
    assert session.circuit_state(fault_server.url("/")) is CircuitState.OPEN
    with pytest.raises(rr.CircuitOpenError) as got:
        session.get(fault_server.url("/x"))
    assert fault_server.hits() == 3
    assert got.value.origin == f"http://127.0.0.1:{fault_server.port}"
    assert 0 < got.value.retry_after <= 30.0
    assert isinstance(got.value, rr.ConnectionError)


def test_failure_statuses_count_without_raise_for_status_and_4xx_is_success(fault_server, make_session):
    """503s count as failures; a 404 between them resets the streak, so the breaker stays closed."""
    fault_server.route("/bad", status(503))
    fault_server.route("/missing", status(404))
    session = make_session(attempts=1, threshold=2)
    for _ in range(5):
        session.get(fault_server.url("/bad"))
        session.get(fault_server.url("/missing"))
    assert session.circuit_state(fault_server.url("/")) is CircuitState.CLOSED
    session.get(fault_server.url("/bad"))
    session.get(fault_server.url("/bad"))
    assert session.circuit_state(fault_server.url("/")) is CircuitState.OPEN


def test_failure_statuses_are_configurable(fault_server, make_session):
    """A status listed in failure_statuses trips the breaker; one removed from it does not."""
    from tests.conftest import fast_config

    config = fast_config(attempts=1)
    config.circuit_breaker = rr.CircuitBreakerConfig(failure_threshold=2, failure_statuses={429})
    session = make_session(config)
    fault_server.route("/limited", status(429))
    fault_server.route("/down", status(500))
    for _ in range(3):
        session.get(fault_server.url("/down"))
    assert session.circuit_state(fault_server.url("/")) is CircuitState.CLOSED
    session.get(fault_server.url("/limited"))
    session.get(fault_server.url("/limited"))
    assert session.circuit_state(fault_server.url("/")) is CircuitState.OPEN


def test_each_attempt_is_recorded_and_an_open_breaker_ends_the_retry_loop(fault_server, make_session):
    """With 5 attempts and threshold 2 only 2 requests go out, and the last real response is returned."""
    fault_server.route("/x", status(503))
    response = make_session(attempts=5, threshold=2).get(fault_server.url("/x"))
    assert response.status_code == 503
    assert fault_server.hits("/x") == 2


def test_connection_errors_count_as_failures(make_session):
    """Refused connections open the breaker; then calls fail fast with CircuitOpenError."""
    url = refused_url("/x")
    session = make_session(attempts=1, threshold=2)
    for _ in range(2):
        with pytest.raises(rr.ConnectionError) as got:
            session.get(url)
        assert not isinstance(got.value, rr.CircuitOpenError)
    with pytest.raises(rr.CircuitOpenError):
        session.get(url)


def test_other_origins_are_unaffected(fault_server, make_session):
    """One origin's open breaker does not touch another origin's."""
    fault_server.route("/x", status(503))
    session = make_session(attempts=1, threshold=1)
    with FaultServer() as healthy:
        session.get(fault_server.url("/x"))
        assert session.circuit_state(fault_server.url("/")) is CircuitState.OPEN
        assert session.get(healthy.url("/ok")).status_code == 200
        assert session.circuit_state(healthy.url("/")) is CircuitState.CLOSED


def test_origin_includes_scheme_host_and_port(fault_server, make_session):
    """127.0.0.1 and localhost are different origins; the path is not part of it."""
    fault_server.route("/x", status(503))
    session = make_session(attempts=1, threshold=1)
    session.get(fault_server.url("/x"))
    assert session.circuit_state(fault_server.url("/elsewhere")) is CircuitState.OPEN
    assert session.circuit_state(f"http://localhost:{fault_server.port}/x") is CircuitState.CLOSED


def test_half_open_admits_one_trial_and_its_success_closes(fault_server, make_session):
    """After recovery_timeout one trial goes out; other callers fail fast until it succeeds."""
    session = make_session(attempts=1, threshold=1, recovery=0.2)
    fault_server.route("/x", status(503))
    session.get(fault_server.url("/x"))
    release = threading.Event()
    fault_server.route("/x", Hold(release, ok("recovered")))
    time.sleep(0.25)  # let the breaker's own timer pass; no assertion rests on it
    with ThreadPoolExecutor(max_workers=1) as pool:
        trial = pool.submit(session.get, fault_server.url("/x"))
        wait_until(lambda: fault_server.in_flight == 1)
        assert session.circuit_state(fault_server.url("/")) is CircuitState.HALF_OPEN
        errors: List[BaseException] = []
        for _ in range(8):
            try:
                session.get(fault_server.url("/x"))
            except rr.CircuitOpenError as error:
                errors.append(error)
        release.set()
        assert trial.result(timeout=10).text == "recovered"
    assert len(errors) == 8 and all(e.retry_after == 0.0 for e in errors)
    assert fault_server.hits("/x") == 2
    assert session.circuit_state(fault_server.url("/")) is CircuitState.CLOSED
    assert session.get(fault_server.url("/x")).status_code == 200


def test_concurrent_callers_in_half_open_send_exactly_one_trial(fault_server, make_session):
    """16 threads arriving together at a recovering origin: one request reaches it."""
    session = make_session(attempts=1, threshold=1, recovery=0.2)
    fault_server.route("/x", status(503))
    session.get(fault_server.url("/x"))
    release = threading.Event()
    fault_server.route("/x", Hold(release, ok()))
    time.sleep(0.25)
    barrier = threading.Barrier(16)

    def call() -> str:
        barrier.wait(timeout=10)
        try:
            return str(session.get(fault_server.url("/x")).status_code)
        except rr.CircuitOpenError:
            return "fast"

    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(call) for _ in range(16)]
        wait_until(lambda: sum(f.done() for f in futures) == 15)
        release.set()
        results = sorted(f.result(timeout=10) for f in futures)
    assert results == ["200"] + ["fast"] * 15
    assert fault_server.hits("/x") == 2


def test_failed_trial_reopens_and_restarts_the_timer(fault_server, make_session):
    """A failing trial re-opens the breaker for a full recovery_timeout."""
    session = make_session(attempts=1, threshold=1, recovery=0.3)
    fault_server.route("/x", status(503))
    session.get(fault_server.url("/x"))
    time.sleep(0.35)
    assert session.get(fault_server.url("/x")).status_code == 503  # the trial
    with pytest.raises(rr.CircuitOpenError) as got:
        session.get(fault_server.url("/x"))
    assert got.value.retry_after > 0.15
    assert fault_server.hits("/x") == 2


def test_trial_with_no_verdict_frees_the_trial_slot(fault_server, make_session):
    """A trial that ends in the caller's own hook error does not leave the breaker stuck half-open."""
    session = make_session(attempts=1, threshold=1, recovery=0.2)
    fault_server.route("/x", status(503))
    session.get(fault_server.url("/x"))
    time.sleep(0.25)
    fault_server.route("/x", ok())

    def boom(response, **kwargs):
        raise RuntimeError("caller bug")

    with pytest.raises(RuntimeError):
        session.get(fault_server.url("/x"), hooks={"response": boom})
    assert session.get(fault_server.url("/x")).status_code == 200
    assert session.circuit_state(fault_server.url("/")) is CircuitState.CLOSED


def test_breaker_does_not_serialize_threads(fault_server, make_session):
    """16 threads through one origin's breaker are in flight at the server together."""
    release = threading.Event()
    fault_server.route("/x", Hold(release, ok()))
    session = make_session(slots=16)
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(session.get, fault_server.url("/x")) for _ in range(16)]
        wait_until(lambda: fault_server.in_flight == 16)
        release.set()
        assert all(f.result(timeout=10).status_code == 200 for f in futures)
    assert fault_server.peak_in_flight == 16


def test_circuit_state_values():
    """CircuitState members carry the documented string values."""
    assert [s.value for s in CircuitState] == ["closed", "open", "half_open"]


def test_open_breaker_rejects_before_the_request_is_prepared(fault_server):
    """An open origin fails fast in request(), before requests prepares or merges settings."""
    from tests.conftest import fast_config

    class Counting(rr.ResilientSession):
        prepared = 0

        def prepare_request(self, request):
            Counting.prepared += 1
            return super().prepare_request(request)

    fault_server.route("/x", status(503))
    with Counting(fast_config(attempts=1, threshold=1)) as session:
        session.get(fault_server.url("/x"))
        with pytest.raises(rr.CircuitOpenError):
            session.get(fault_server.url("/x"), params={"q": 1})
    assert Counting.prepared == 1
