"""Listener hooks and session.stats(): what happened, per origin, without breaking calls."""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, List, Tuple

import pytest

import resilient_requests as rr
from resilient_requests.testing import Hold, ok, refused_url, status

from .conftest import wait_until


class Recorder(rr.Listener):
    """Keeps every event it is given, in order."""

    def __init__(self) -> None:
        self.events: List[Tuple[str, Any]] = []

    def _keep(self, name: str, event: Any) -> None:
        self.events.append((name, event))

    def retry_scheduled(self, event):
        self._keep("retry_scheduled", event)

    def attempt_failed(self, event):
        self._keep("attempt_failed", event)

    def breaker_state_changed(self, event):
        self._keep("breaker_state_changed", event)

    def call_short_circuited(self, event):
        self._keep("call_short_circuited", event)

    def bulkhead_rejected(self, event):
        self._keep("bulkhead_rejected", event)

    def call_finished(self, event):
        self._keep("call_finished", event)

    def named(self, name: str) -> List[Any]:
        return [event for kind, event in self.events if kind == name]


def test_retries_and_the_finished_call_are_reported(fault_server, make_session):
    """503, 503, 200: two failed attempts, two scheduled retries, one successful call of 3 attempts."""
    fault_server.route("/x", status(503), status(503), ok())
    session = make_session()
    recorder = Recorder()
    session.add_listener(recorder)
    session.get(fault_server.url("/x") + "?token=secret")
    kinds = [kind for kind, _ in recorder.events]
    assert kinds == ["attempt_failed", "retry_scheduled"] * 2 + ["call_finished"]
    finished = recorder.named("call_finished")[0]
    assert (finished.status, finished.attempts, finished.outcome, finished.method) == (200, 3, "success", "GET")
    assert finished.origin == f"http://127.0.0.1:{fault_server.port}"
    assert finished.url == fault_server.url("/x") and finished.elapsed > 0
    assert [e.attempt for e in recorder.named("retry_scheduled")] == [1, 2]
    assert recorder.named("attempt_failed")[0].status == 503


def test_breaker_changes_and_short_circuits_are_reported(fault_server, make_session):
    """Opening the breaker and failing fast each produce their event; the failure is a finished call."""
    fault_server.route("/x", status(500))
    session = make_session(attempts=1, threshold=1)
    recorder = Recorder()
    session.add_listener(recorder)
    session.get(fault_server.url("/x"))
    with pytest.raises(rr.CircuitOpenError):
        session.get(fault_server.url("/x"))
    change = recorder.named("breaker_state_changed")[0]
    assert (change.old, change.new) == ("closed", "open")
    assert recorder.named("call_short_circuited")[0].retry_after > 0
    assert recorder.named("call_finished")[0].outcome == "failure"


def test_bulkhead_rejections_are_reported(fault_server, make_session):
    """A full bulkhead produces bulkhead_rejected with the capacity."""
    release = threading.Event()
    fault_server.route("/x", Hold(release, ok()))
    session = make_session(slots=1, acquire=0.0)
    recorder = Recorder()
    session.add_listener(recorder)
    with ThreadPoolExecutor(max_workers=1) as pool:
        busy = pool.submit(session.get, fault_server.url("/x"))
        wait_until(lambda: fault_server.in_flight >= 1)
        with pytest.raises(rr.PoolTimeoutError):
            session.get(fault_server.url("/y"))
        release.set()
        busy.result(timeout=10)
    assert recorder.named("bulkhead_rejected")[0].capacity == 1
    assert session.stats()["origins"][f"http://127.0.0.1:{fault_server.port}"]["rejected"] == 1


def test_a_failing_listener_never_breaks_a_call(fault_server, make_session, caplog):
    """An exception in a listener is logged and swallowed; later listeners still run."""
    caplog.set_level(logging.WARNING, logger="resilient_requests")

    class Broken(rr.Listener):
        def call_finished(self, event):
            raise RuntimeError("listener bug")

    session = make_session()
    recorder = Recorder()
    session.add_listener(Broken())
    session.add_listener(recorder)
    assert session.get(fault_server.url("/")).status_code == 200
    assert recorder.named("call_finished")
    assert any("listener bug" in (r.exc_text or "") or r.exc_info for r in caplog.records)


@pytest.mark.parametrize("policy", ["consecutive", "rate"])
def test_a_listener_may_call_the_session_when_the_breaker_changes(fault_server, make_session, policy):
    """Listeners run while the breaker is being changed; one calling the same session and
    origin back (a health probe, say) is answered, not deadlocked."""
    fault_server.route("/x", status(503))
    config = rr.ClientConfig(
        retry=rr.RetryConfig(max_attempts=1),
        circuit_breaker=rr.CircuitBreakerConfig(failure_threshold=1, policy=policy, minimum_calls=1,
                                                recovery_timeout=60),
    )
    session = make_session(config)
    seen: List[str] = []

    class CallsBack(rr.Listener):
        def breaker_state_changed(self, event):
            try:
                session.get(fault_server.url("/x"))
                seen.append("sent")
            except rr.CircuitOpenError:
                seen.append("failed fast")

    session.add_listener(CallsBack())
    caller = threading.Thread(target=session.get, args=(fault_server.url("/x"),), daemon=True)
    caller.start()
    caller.join(timeout=10)
    assert not caller.is_alive(), "the call that opened the breaker never returned"
    assert seen == ["failed fast"]
    assert session.circuit_state(fault_server.url("/")) is rr.CircuitState.OPEN


def test_removed_listener_hears_nothing(fault_server, make_session):
    """remove_listener stops delivery."""
    session = make_session()
    recorder = Recorder()
    session.add_listener(recorder)
    session.remove_listener(recorder)
    session.get(fault_server.url("/"))
    assert recorder.events == []


def test_stats_count_per_origin(fault_server, make_session):
    """stats() has calls, successes, failures, retries, short-circuits and the breaker state per origin."""
    fault_server.route("/ok", ok())
    fault_server.route("/flaky", status(503), ok())
    fault_server.route("/down", status(500))
    session = make_session(attempts=2, threshold=2)
    session.get(fault_server.url("/ok"))
    session.get(fault_server.url("/flaky"))
    session.get(fault_server.url("/down"))  # two failed attempts: the breaker opens
    with pytest.raises(rr.CircuitOpenError):
        session.get(fault_server.url("/ok"))
    refused = refused_url("/x")
    with pytest.raises(rr.ConnectionError):
        session.get(refused)
    stats = session.stats()
    mine = stats["origins"][f"http://127.0.0.1:{fault_server.port}"]
    assert mine == {
        "calls": 3, "successes": 2, "failures": 1, "retries": 2, "short_circuited": 1, "rejected": 0,
        "throttled": 0, "hedges": 0, "rate_limited": 0, "not_sent": 0, "breaker_state": "open",
        "breaker_open_for": 30.0,
        "bulkhead_in_use": 0, "bulkhead_capacity": 50, "policy": mine["policy"],
    }
    other = stats["origins"][refused.rsplit("/", 1)[0]]
    assert (other["calls"], other["failures"]) == (1, 1)
    assert stats["bulkhead"] == {"capacity": 50, "in_use": 0}
