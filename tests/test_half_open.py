"""Half-open with several trials, leases on trials, and open periods that grow:
against the fault server, with the breaker's state in this process or in a
real Redis shared by two sessions (as two processes would share it)."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, List, Union

import pytest

import resilient_requests as rr
from resilient_requests import CircuitState
from resilient_requests.testing import FaultServer, Hold, ok, status

from .conftest import NEEDS_REDIS, wait_until

Factory = Callable[..., rr.ResilientSession]


@pytest.fixture(params=["local", pytest.param("redis", marks=NEEDS_REDIS)])
def sessions(request: pytest.FixtureRequest) -> Iterator[Factory]:
    """Builds sessions with one breaker setting; with ``redis`` they share its state."""
    storage = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    made: List[rr.ResilientSession] = []

    def make(**breaker: Any) -> rr.ResilientSession:
        fields = {"failure_threshold": 1, "recovery_timeout": 0.2, **breaker}
        if storage is not None:
            fields.update(storage=storage, state_cache_ttl=0.0)
        session = rr.ResilientSession(rr.ClientConfig(
            retry=rr.RetryConfig(max_attempts=1),
            circuit_breaker=rr.CircuitBreakerConfig(**fields),
        ))
        made.append(session)
        return session

    make.shared = storage is not None  # type: ignore[attr-defined]
    yield make
    for session in made:
        session.close()


def _open(session: rr.ResilientSession, server: FaultServer, recovered: bool = False) -> None:
    """Open the breaker with one failure (threshold 1); with ``recovered``, then
    sleep past the 0.2 s recovery timeout, so the next call is a trial (the
    sleep guarantees the time has passed; nothing is asserted on timing)."""
    server.route("/x", status(503))
    assert session.get(server.url("/x")).status_code == 503
    assert session.circuit_state(server.url("/")) is CircuitState.OPEN
    if recovered:
        time.sleep(0.25)


def _when_admitted(session: rr.ResilientSession, url: str) -> Union[int, BaseException]:
    """Call ``url`` as soon as the breaker admits a call (polling, at most 10 s):
    the status, or the error the admitted call raised."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return session.get(url).status_code
        except rr.CircuitOpenError:
            assert time.monotonic() < deadline, "the breaker never admitted a call"
            time.sleep(0.01)
        except rr.RequestException as error:
            return error


def _open_for(session: rr.ResilientSession, server: FaultServer) -> float:
    return float(session.stats()["origins"][server.url("").rstrip("/")]["breaker_open_for"])


#: Both policies, each opening on the first failure.
POLICIES = {"consecutive": {}, "rate": {"policy": "rate", "minimum_calls": 1}}


@pytest.mark.parametrize("policy", list(POLICIES))
def test_concurrent_callers_in_half_open_send_exactly_the_permitted_trials(fault_server, sessions, policy):
    """12 callers (on two sessions sharing Redis) arrive together at a recovering origin: 3 reach it, 9 fail fast."""
    a = sessions(permitted_calls_in_half_open=3, **POLICIES[policy])
    b = sessions(permitted_calls_in_half_open=3, **POLICIES[policy]) if sessions.shared else a
    _open(a, fault_server, recovered=True)
    release = threading.Event()
    fault_server.route("/x", Hold(release, ok()))
    barrier = threading.Barrier(12)

    def call(session: rr.ResilientSession) -> str:
        barrier.wait(timeout=10)
        try:
            return str(session.get(fault_server.url("/x")).status_code)
        except rr.CircuitOpenError as error:
            assert error.retry_after == 0.0  # half-open, every place taken
            return "fast"

    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(call, (a, b)[i % 2]) for i in range(12)]
        # Nine fail fast; three are admitted and reach the server (counted once they arrive).
        wait_until(lambda: sum(f.done() for f in futures) == 9 and fault_server.in_flight == 3)
        assert a.circuit_state(fault_server.url("/")) is CircuitState.HALF_OPEN
        release.set()
        results = sorted(f.result(timeout=10) for f in futures)
    assert results == ["200"] * 3 + ["fast"] * 9
    assert fault_server.hits("/x") == 1 + 3  # the failure that opened it, then the trials
    assert a.circuit_state(fault_server.url("/")) is CircuitState.CLOSED
    assert b.circuit_state(fault_server.url("/")) is CircuitState.CLOSED


def test_every_permitted_trial_must_succeed_before_it_closes(fault_server, sessions):
    """With 3 permitted trials, two successes leave it half-open; the third closes it."""
    session = sessions(permitted_calls_in_half_open=3)
    _open(session, fault_server, recovered=True)
    fault_server.route("/x", ok())
    assert session.get(fault_server.url("/x")).status_code == 200
    for expected in (CircuitState.HALF_OPEN, CircuitState.CLOSED):
        assert session.circuit_state(fault_server.url("/")) is CircuitState.HALF_OPEN
        assert session.get(fault_server.url("/x")).status_code == 200
        assert session.circuit_state(fault_server.url("/")) is expected


@pytest.mark.parametrize("policy", list(POLICIES))
def test_one_failed_trial_reopens_at_once_and_late_successes_are_ignored(fault_server, sessions, policy):
    """A trial failing while another is in flight re-opens the breaker; the other's success changes nothing."""
    session = sessions(permitted_calls_in_half_open=2, **POLICIES[policy])
    _open(session, fault_server, recovered=True)
    release = threading.Event()
    fault_server.route("/slow", Hold(release, ok()))
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(session.get, fault_server.url("/slow"))  # the first trial, held
        wait_until(lambda: fault_server.in_flight == 1)
        assert session.get(fault_server.url("/x")).status_code == 503  # the second trial fails
        assert session.circuit_state(fault_server.url("/")) is CircuitState.OPEN
        with pytest.raises(rr.CircuitOpenError) as refused:
            session.get(fault_server.url("/x"))
        assert refused.value.retry_after > 0
        release.set()
        assert slow.result(timeout=10).status_code == 200
    assert session.circuit_state(fault_server.url("/")) is CircuitState.OPEN
    assert fault_server.hits("/x") == 2


def test_open_period_grows_after_each_failed_trial_up_to_the_cap_and_resets_on_close(fault_server, sessions):
    """recovery 0.1 s, x2 per failed trial, capped at 0.4 s: 0.1, 0.2, 0.4, 0.4; back to 0.1 once closed."""
    session = sessions(recovery_timeout=0.1, recovery_multiplier=2.0, max_recovery_timeout=0.4)
    _open(session, fault_server)
    seen = [_open_for(session, fault_server)]
    for _ in range(3):
        assert _when_admitted(session, fault_server.url("/x")) == 503  # the trial fails
        seen.append(_open_for(session, fault_server))
    assert seen == [0.1, 0.2, 0.4, 0.4]
    assert fault_server.hits("/x") == 4  # the failure that opened it and three trials: nothing else got out
    fault_server.route("/x", ok())
    assert _when_admitted(session, fault_server.url("/x")) == 200
    assert session.circuit_state(fault_server.url("/")) is CircuitState.CLOSED
    assert _open_for(session, fault_server) == 0.1


def test_a_trial_that_never_reports_back_loses_its_place(fault_server, sessions):
    """A trial held past trial_timeout no longer blocks half-open: the next caller becomes the trial."""
    session = sessions(trial_timeout=1.0)
    _open(session, fault_server, recovered=True)
    release = threading.Event()
    fault_server.route("/stuck", Hold(release, ok()))
    fault_server.route("/x", ok())
    with ThreadPoolExecutor(max_workers=1) as pool:
        stuck = pool.submit(session.get, fault_server.url("/stuck"))  # the trial, held
        wait_until(lambda: fault_server.in_flight == 1)
        with pytest.raises(rr.CircuitOpenError) as refused:
            session.get(fault_server.url("/x"))  # the held trial has the only place
        assert refused.value.retry_after == 0.0
        assert _when_admitted(session, fault_server.url("/x")) == 200  # its lease ended
        assert session.circuit_state(fault_server.url("/")) is CircuitState.CLOSED
        release.set()
        assert stuck.result(timeout=10).status_code == 200
    assert session.circuit_state(fault_server.url("/")) is CircuitState.CLOSED
    assert fault_server.hits("/x") == 2  # the failure that opened it, and the trial that closed it


def test_a_slow_trial_counts_as_failed_under_the_slow_call_rule(fault_server, sessions):
    """Rate policy with slow_call_duration: a trial that succeeds slowly re-opens the breaker."""
    session = sessions(policy="rate", minimum_calls=1, slow_call_duration=0.1)
    _open(session, fault_server, recovered=True)
    fault_server.route("/x", ok(delay=0.3))
    assert session.get(fault_server.url("/x")).status_code == 200  # the caller still gets the answer
    assert session.circuit_state(fault_server.url("/")) is CircuitState.OPEN
