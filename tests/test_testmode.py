"""The test mode users switch on in their own suites."""
from __future__ import annotations

import time

import resilient_requests as rr
from resilient_requests.testing import no_retries, no_waits, ok, status


def _slow_config() -> rr.ClientConfig:
    return rr.ClientConfig(retry=rr.RetryConfig(min_wait=2.0, max_wait=5.0, jitter=False))


def test_no_waits_keeps_attempts_without_sleeping(fault_server):
    """With waits off a flaky GET still takes three requests, and no 2 s + 4 s of sleep."""
    fault_server.route("/x", status(503), status(503), ok())
    started = time.monotonic()
    with no_waits(), rr.ResilientSession(_slow_config()) as session:
        assert session.get(fault_server.url("/x")).status_code == 200
    assert fault_server.hits("/x") == 3
    assert time.monotonic() - started < 5  # generous: the real waits would be 6 s


def test_no_retries_makes_one_attempt(fault_server):
    """With retries off a 503 is returned after one request."""
    fault_server.route("/x", status(503))
    with no_retries(), rr.ResilientSession(_slow_config()) as session:
        assert session.get(fault_server.url("/x")).status_code == 503
    assert fault_server.hits("/x") == 1


def test_switches_are_restored(fault_server):
    """After the block, the normal behaviour is back."""
    from resilient_requests.testmode import MODE

    with no_waits(), no_retries():
        assert (MODE.waits, MODE.retries) == (False, False)
    assert (MODE.waits, MODE.retries) == (True, True)


def test_pytest_fixtures(fault_server, resilient_no_waits):
    """The resilient_no_waits fixture does the same for a whole test."""
    fault_server.route("/x", status(503), ok())
    started = time.monotonic()
    with rr.ResilientSession(_slow_config()) as session:
        assert session.get(fault_server.url("/x")).status_code == 200
    assert time.monotonic() - started < 1.5


def test_no_retries_fixture(fault_server, resilient_no_retries):
    """The resilient_no_retries fixture makes every call one attempt."""
    fault_server.route("/x", status(503))
    with rr.ResilientSession(_slow_config()) as session:
        session.get(fault_server.url("/x"))
    assert fault_server.hits("/x") == 1


def test_the_reset_fixture_ends_a_test_with_no_breaker_state(pytester):
    """resilient_reset, autouse in a suite's conftest: an open breaker of one test
    is gone in the next (run in a pytester sub-session, as a user's suite would)."""
    pytester.makeconftest("""
import pytest

@pytest.fixture(autouse=True)
def _fresh(resilient_reset):
    yield
""")
    pytester.makepyfile("""
import resilient_requests as rr
from resilient_requests.testing import status

CONFIG = rr.ClientConfig(retry=rr.RetryConfig(max_attempts=1),
                         circuit_breaker=rr.CircuitBreakerConfig(failure_threshold=1))

def test_first(fault_server):
    fault_server.route("/x", status(503))
    with rr.ResilientSession(CONFIG) as session:
        session.get(fault_server.url("/x"))
        assert session.circuit_state(fault_server.url("/")) is rr.CircuitState.OPEN
    assert len(rr.registry()) == 1

def test_second():
    assert len(rr.registry()) == 0
""")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
