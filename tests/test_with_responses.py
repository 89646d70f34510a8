"""responses intercepts our calls, at session and module level, with retries and the
breaker applied to what it answers; the test mode keeps one test's breaker and
budget state out of the next and leaves out ``X-Request-ID`` (strict header matching).

responses patches ``HTTPAdapter.send`` on the class; our adapter is an ``HTTPAdapter``,
and our retry loop sits above it, so every attempt is one mocked call. Real responses;
what it recorded (``responses.calls``) is the evidence.
"""
from __future__ import annotations

import re

import pytest
import requests

import resilient_requests as rr
from resilient_requests.testing import no_retries, no_waits
from resilient_requests.testmode import no_request_ids

responses = pytest.importorskip("responses", reason="needs responses (the test extra)")
from responses import matchers  # noqa: E402

API = "http://api.example.test"


@pytest.fixture(autouse=True)
def _no_waits():
    with no_waits():
        yield


def _fast() -> rr.ClientConfig:
    return rr.ClientConfig(retry=rr.RetryConfig(max_attempts=3, min_wait=0.001, max_wait=0.01))


def test_a_session_call_is_intercepted_and_retried():
    """A mocked 500 is asked 3 times with retries on, once with no_retries()."""
    with responses.RequestsMock() as mocked, rr.ResilientSession(_fast()) as session:
        mocked.get(f"{API}/users/7", status=500)
        assert session.get(f"{API}/users/7").status_code == 500
        assert len(mocked.calls) == 3
        with no_retries():
            assert session.get(f"{API}/users/7").status_code == 500
        assert len(mocked.calls) == 4


def test_a_module_level_call_is_intercepted_and_retried():
    """``resilient_requests.get`` (the swap's ``requests.get``) goes through the mock too."""
    with responses.RequestsMock() as mocked:
        mocked.get(f"{API}/health", status=500)
        assert rr.get(f"{API}/health").status_code == 500
        assert len(mocked.calls) == 3
        with no_retries():
            assert rr.get(f"{API}/health").status_code == 500
        assert len(mocked.calls) == 4


def test_a_flaky_answer_is_absorbed_by_the_retry():
    """Registered in order (503, then 200): one call, two mocked answers, the 200 returned."""
    with responses.RequestsMock() as mocked, rr.ResilientSession(_fast()) as session:
        mocked.get(f"{API}/users/7", status=503)
        mocked.get(f"{API}/users/7", json={"id": 7})
        assert session.get(f"{API}/users/7").json() == {"id": 7}
        assert len(mocked.calls) == 2


def test_the_breaker_opens_on_mocked_failures():
    """Five mocked failures open the breaker: the next call is refused without reaching the mock."""
    config = rr.ClientConfig(retry=rr.RetryConfig(max_attempts=1),
                             circuit_breaker=rr.CircuitBreakerConfig(failure_threshold=5))
    with responses.RequestsMock() as mocked, rr.ResilientSession(config) as session:
        mocked.get(f"{API}/users/7", status=503)
        for _ in range(5):
            session.get(f"{API}/users/7")
        with pytest.raises(rr.CircuitOpenError):
            session.get(f"{API}/users/7")
        assert len(mocked.calls) == 5


def _strict(headers: dict) -> list:
    expected = dict(requests.utils.default_headers(), **headers)
    return [matchers.header_matcher(expected, strict_match=True)]


def test_a_strict_header_matcher_matches_without_request_ids():
    """``header_matcher(strict_match=True)`` written for plain requests: our added
    ``X-Request-ID`` breaks the match; with request ids off (as in the test mode) it matches."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.get(f"{API}/users/7", json={"id": 7}, match=_strict({"Accept": "application/json"}))
        assert requests.get(f"{API}/users/7", headers={"Accept": "application/json"}).json() == {"id": 7}
        with pytest.raises(requests.ConnectionError, match="doesn't match"):
            rr.get(f"{API}/users/7", headers={"Accept": "application/json"})
        with no_request_ids():
            assert rr.get(f"{API}/users/7", headers={"Accept": "application/json"}).json() == {"id": 7}
            with rr.ResilientSession(_fast()) as session:
                assert session.get(f"{API}/users/7", headers={"Accept": "application/json"}).json() == {"id": 7}


# ------------------------------------------------------------------ the test mode, in a user's suite

_SUITE = '''
import pytest
import requests
import responses
from responses import matchers

import resilient_requests as rr

ORDERS, QUOTA, ME = "http://orders.example.test", "http://quota.example.test", "http://me.example.test"


@responses.activate
def test_an_outage():
    responses.get(f"{ORDERS}/orders", status=500)
    for _ in range(2):                      # 3 attempts each: the breaker opens
        assert rr.get(f"{ORDERS}/orders").status_code == 500
    with pytest.raises(rr.CircuitOpenError):
        rr.get(f"{ORDERS}/orders")


@responses.activate
def test_the_next_test_starts_fresh():
    responses.get(f"{ORDERS}/orders", json=[])
    assert rr.get(f"{ORDERS}/orders").json() == []


@pytest.mark.parametrize("n", range(10))
@responses.activate
def test_a_rate_limited_call(n):
    responses.get(f"{QUOTA}/quota", status=429)
    assert rr.get(f"{QUOTA}/quota").status_code == 429
    assert len(responses.calls) == 3        # three attempts, every time


@responses.activate
def test_strict_headers():
    expected = dict(requests.utils.default_headers(), Accept="application/json")
    responses.get(f"{ME}/me", json={}, match=[matchers.header_matcher(expected, strict_match=True)])
    assert rr.get(f"{ME}/me", headers={"Accept": "application/json"}).json() == {}
'''


def _run_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str,
               conftest: str = "") -> pytest.RunResult:
    pytester.makepyfile(test_suite=_SUITE)
    if conftest:
        pytester.makeconftest(conftest)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # only our plugin, as in tests/test_docs.py
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "resilient_requests.testing.pytest_plugin",
                                        "-rf", "--durations=0", "--durations-min=0", *args)


def test_the_test_mode_keeps_breaker_and_budget_state_inside_each_test(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--resilient-test-mode``: the open breaker of one test is gone in the next, each
    repeated 429 gets its three attempts, the strict matcher matches, and nothing waits."""
    result = _run_suite(pytester, monkeypatch, "--resilient-test-mode")
    result.assert_outcomes(passed=13)
    durations = re.findall(r"^([\d.]+)s call\s+(\S+)$", "\n".join(result.outlines), re.M)
    assert durations and all(float(seconds) < 0.5 for seconds, _ in durations), durations


def test_without_the_test_mode_state_passes_from_test_to_test(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control (waits off by hand, nothing else): the breaker opened by the first test
    refuses the second test's call, the shared retry budget runs dry after a few 429s,
    the strict matcher sees ``X-Request-ID``."""
    result = _run_suite(pytester, monkeypatch, conftest="""
import pytest

@pytest.fixture(autouse=True)
def _fast(resilient_no_waits):
    yield
""")
    failed = {line.split("::")[1].split(" ")[0] for line in result.outlines if line.startswith("FAILED")}
    assert "test_an_outage" not in failed
    assert "test_the_next_test_starts_fresh" in failed and "CircuitOpenError" in "\n".join(result.outlines)
    assert "test_a_rate_limited_call[0]" not in failed
    assert any(name.startswith("test_a_rate_limited_call[") for name in failed), result.outlines
    assert "test_strict_headers" in failed
