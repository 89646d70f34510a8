"""Hedged requests against the fault server: who wins, what is sent, what is given back."""
from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import resilient_requests as rr
from resilient_requests.testing import Hold, ok, status

from .conftest import fast_config, wait_until


def _session(make_session, attempts: int = 1, slots: int = 50, **hedge):
    return make_session(fast_config(attempts=attempts, slots=slots,
                                    hedge=rr.HedgeConfig(enabled=True, **{"delay": 0.02, **hedge})))


def _counts(session, server):
    return session.stats()["origins"][f"http://127.0.0.1:{server.port}"]


def _hedge_threads():
    return [t for t in threading.enumerate() if t.name.startswith("resilient_requests-hedge")]


def test_a_hedge_answers_while_the_first_attempt_hangs(fault_server, make_session):
    """The first request is held; the hedge sent after the delay answers; the held one is cancelled."""
    release = threading.Event()
    fault_server.route("/x", Hold(release, ok("slow")), ok("fast"))
    session = _session(make_session)
    try:
        assert session.get(fault_server.url("/x")).text == "fast"
        assert fault_server.hits("/x") == 2
        assert _counts(session, fault_server)["hedges"] == 1
        # The loser's socket was shut down: its slot and connection are given back.
        assert session.stats()["bulkhead"]["in_use"] == 0
    finally:
        release.set()
    wait_until(lambda: fault_server.in_flight == 0)
    session.close()
    wait_until(lambda: _hedge_threads() == [])  # close() does not wait; the idle workers end at once


def test_an_answer_before_the_delay_sends_no_hedge(fault_server, make_session):
    """Fast answers: one request each, no hedge."""
    fault_server.route("/x", ok())
    session = _session(make_session, delay=5.0)
    for _ in range(5):
        assert session.get(fault_server.url("/x")).status_code == 200
    assert fault_server.hits("/x") == 5
    assert _counts(session, fault_server)["hedges"] == 0


def test_a_hedge_wins_over_a_first_attempt_that_fails_later(fault_server, make_session):
    """The held first attempt would answer 503; the hedge's 200 wins and is returned."""
    release = threading.Event()
    fault_server.route("/x", Hold(release, status(503)), ok("fast"))
    session = _session(make_session)
    try:
        response = session.get(fault_server.url("/x"))
    finally:
        release.set()
    assert response.text == "fast"
    assert _counts(session, fault_server)["failures"] == 0
    assert session.circuit_state(fault_server.url("/")) is rr.CircuitState.CLOSED


def test_when_every_racer_fails_the_first_attempts_outcome_counts(fault_server, make_session):
    """The hedge fails at once; the caller waits for its own attempt, whose 503 is the answer."""
    release = threading.Event()
    fault_server.route("/x", Hold(release, status(503, body=b"first")), status(503, body=b"hedge"))
    session = _session(make_session)

    def let_go() -> None:
        wait_until(lambda: fault_server.hits("/x") == 2 and fault_server.in_flight == 1)
        release.set()

    helper = threading.Thread(target=let_go)
    helper.start()
    try:
        response = session.get(fault_server.url("/x"))
    finally:
        release.set()
        helper.join(timeout=10)
    assert (response.status_code, response.content) == (503, b"first")
    assert fault_server.hits("/x") == 2


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT", "DELETE"])
def test_methods_outside_the_hedged_set_are_never_hedged(fault_server, make_session, method):
    """Only GET, HEAD and OPTIONS are hedged by default; a slow POST (or PUT) is sent once.
    GET is the control: under the same conditions it is hedged."""
    fault_server.route("/slow", ok(delay=0.3))
    session = _session(make_session)
    assert session.request(method, fault_server.url("/slow"), data=b"x").status_code == 200
    assert fault_server.hits("/slow") == 1
    release = threading.Event()
    fault_server.route("/held", Hold(release, ok()))
    with ThreadPoolExecutor(max_workers=1) as pool:
        control = pool.submit(session.get, fault_server.url("/held"))
        wait_until(lambda: fault_server.hits("/held") == 2)  # the GET and its hedge
        release.set()
        assert control.result(timeout=10).status_code == 200


def test_no_hedge_without_a_retry_from_the_budget(fault_server, make_session):
    """An empty retry budget stops hedges as it stops retries."""
    fault_server.route("/slow", ok(delay=0.3))
    config = fast_config(attempts=1, hedge=rr.HedgeConfig(enabled=True, delay=0.02))
    session = make_session(dataclasses.replace(
        config, retry=rr.RetryConfig(max_attempts=1, budget_ratio=0.0, budget_floor=0.0)))
    assert session.get(fault_server.url("/slow")).status_code == 200
    assert fault_server.hits("/slow") == 1
    assert _counts(session, fault_server)["hedges"] == 0


def test_no_hedge_without_a_free_bulkhead_slot(fault_server, make_session):
    """With one bulkhead slot, held by the call itself, the hedge is skipped (it never waits)."""
    fault_server.route("/slow", ok(delay=0.3))
    session = _session(make_session, slots=1)
    assert session.get(fault_server.url("/slow")).status_code == 200
    assert fault_server.hits("/slow") == 1
    assert session.stats()["bulkhead"]["in_use"] == 0


def test_percentile_delay_waits_for_enough_samples(fault_server, make_session):
    """delay=None: no hedge until min_samples answers were timed; then a hung attempt is hedged."""
    fault_server.route("/x", ok())
    session = _session(make_session, delay=None, min_samples=5, percentile=0.9)
    for _ in range(5):
        session.get(fault_server.url("/x"))
    assert _counts(session, fault_server)["hedges"] == 0
    release = threading.Event()
    fault_server.route("/x", Hold(release, ok("slow")), ok("fast"))
    try:
        assert session.get(fault_server.url("/x")).text == "fast"
    finally:
        release.set()
    assert _counts(session, fault_server)["hedges"] == 1


def test_a_deadline_ends_every_racer(fault_server, make_session):
    """Both racers held: the call's total deadline still ends the call, and both sockets are shut."""
    release = threading.Event()
    fault_server.route("/x", Hold(release, ok()))
    session = _session(make_session)
    try:
        with pytest.raises(rr.DeadlineExceededError):
            session.get(fault_server.url("/x"), deadline=2.0)
        assert fault_server.hits("/x") == 2
        assert session.stats()["bulkhead"]["in_use"] == 0
    finally:
        release.set()


def test_hedged_calls_from_many_threads_give_every_slot_back(fault_server, make_session):
    """32 threads, every other reply slow (1 s): all succeed, and no slot, connection or thread is kept."""
    fault_server.route("/x", ok("slow", delay=1.0), ok("fast"), cycle=True)
    session = _session(make_session)
    results = []
    threads = [threading.Thread(target=lambda: results.append(session.get(fault_server.url("/x")).text))
               for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 32 and set(results) <= {"fast", "slow"}
    assert _counts(session, fault_server)["hedges"] >= 1
    wait_until(lambda: fault_server.in_flight == 0)
    assert session.stats()["bulkhead"]["in_use"] == 0
    session.close()
    wait_until(lambda: _hedge_threads() == [])  # close() does not wait; the idle workers end at once
