"""The failure-rate and slow-call breaker policy (Resilience4j/Polly style), against a real server."""
from __future__ import annotations

import time

import pytest

import resilient_requests as rr
from resilient_requests import CircuitState
from resilient_requests.testing import ok, status

from .conftest import fast_config


def _config(**breaker: object) -> rr.ClientConfig:
    config = fast_config(attempts=1)
    settings = {"policy": "rate", "recovery_timeout": 0.2, "window_size": 20, "minimum_calls": 10, **breaker}
    config.circuit_breaker = rr.CircuitBreakerConfig(**settings)  # type: ignore[arg-type]
    return config


def _calls_until_open(session: rr.ResilientSession, url: str, limit: int = 100) -> int:
    for made in range(1, limit + 1):
        try:
            session.get(url)
        except rr.CircuitOpenError:
            return made
    return limit + 1


def test_a_40_percent_failure_rate_opens_the_rate_policy_but_not_the_consecutive_one(fault_server, make_session):
    """Failures that never come 5 in a row open a rate breaker (40% >= 0.4) and not the default one."""
    fault_server.route("/x", status(503), ok(), ok(), status(503), ok(), cycle=True)
    rate = make_session(_config(failure_rate_threshold=0.4))
    assert _calls_until_open(rate, fault_server.url("/x")) <= 25
    consecutive = make_session(fast_config(attempts=1))
    for _ in range(60):
        consecutive.get(fault_server.url("/x"))
    assert consecutive.circuit_state(fault_server.url("/")) is CircuitState.CLOSED


def test_fewer_than_minimum_calls_never_open(fault_server, make_session):
    """Nine failures of nine calls stay below minimum_calls=10."""
    fault_server.route("/x", status(503))
    session = make_session(_config())
    for _ in range(9):
        session.get(fault_server.url("/x"))
    assert session.circuit_state(fault_server.url("/")) is CircuitState.CLOSED
    session.get(fault_server.url("/x"))
    assert session.circuit_state(fault_server.url("/")) is CircuitState.OPEN


def test_slow_successful_calls_open_the_breaker(fault_server, make_session):
    """Calls slower than slow_call_duration count toward the slow-call rate even when they succeed."""
    fault_server.route("/slow", ok(delay=0.06))
    session = make_session(_config(slow_call_duration=0.03, slow_call_rate_threshold=0.8, minimum_calls=5))
    assert _calls_until_open(session, fault_server.url("/slow")) <= 6
    assert fault_server.hits("/slow") == 5


def test_a_time_window_forgets_old_failures(fault_server, make_session):
    """With a 0.3 s time window, failures older than that no longer count."""
    fault_server.route("/bad", status(503))
    fault_server.route("/good", ok())
    session = make_session(_config(window_type="time", window_size=0.3, minimum_calls=5))
    for _ in range(4):
        session.get(fault_server.url("/bad"))
    time.sleep(0.35)  # the window's own span; nothing is asserted on timing
    for _ in range(5):
        session.get(fault_server.url("/good"))
    assert session.circuit_state(fault_server.url("/")) is CircuitState.CLOSED


def test_a_successful_trial_closes_and_starts_a_fresh_window(fault_server, make_session):
    """After recovery one trial decides, as with the default policy; the old failures are forgotten."""
    fault_server.route("/x", status(503))
    session = make_session(_config(minimum_calls=3))
    assert _calls_until_open(session, fault_server.url("/x")) == 4
    time.sleep(0.25)
    fault_server.route("/x", ok())
    assert session.get(fault_server.url("/x")).status_code == 200
    assert session.circuit_state(fault_server.url("/")) is CircuitState.CLOSED
    fault_server.route("/x", status(503))
    for _ in range(2):
        session.get(fault_server.url("/x"))
    assert session.circuit_state(fault_server.url("/")) is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("field", "value"),
    [("policy", "percent"), ("window_type", "calls"), ("failure_rate_threshold", 1.5),
     ("failure_rate_threshold", 0), ("minimum_calls", 0), ("slow_call_duration", -1)],
)
def test_policy_settings_are_checked(field, value):
    """Bad policy settings are refused, naming the field."""
    with pytest.raises((TypeError, ValueError), match=f"CircuitBreakerConfig.{field}"):
        rr.CircuitBreakerConfig(**{field: value})
