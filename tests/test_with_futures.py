"""requests-futures with our layers: ``FuturesSession(session=ResilientSession())``
(retries, breaker and ``deadline=`` apply), and the class combination (retries and
breaker apply; ``deadline=`` cannot follow the request to the worker thread, so it
is not applied and a warning says so).

Real requests-futures; what the FaultServer saw is the evidence.
"""
from __future__ import annotations

import logging
from typing import Any

import pytest

import resilient_requests as rr
from resilient_requests.testing import FaultServer, Trickle, no_waits, ok, status

futures = pytest.importorskip("requests_futures", reason="needs requests-futures (the test extra)")
from requests_futures.sessions import FuturesSession  # noqa: E402

CONFIG = rr.ClientConfig(retry=rr.RetryConfig(max_attempts=3, min_wait=0.001, max_wait=0.01))


class FuturesThenOurs(FuturesSession, rr.ResilientMixin):  # type: ignore[misc, valid-type]
    """requests-futures' request first (it hands ours to a worker thread)."""


class OursThenFutures(rr.ResilientMixin, FuturesSession):  # type: ignore[misc, valid-type]
    """Ours first."""


@pytest.fixture(autouse=True)
def _no_waits() -> Any:
    with no_waits():
        yield


def test_a_wrapped_session_retries_each_call(fault_server: FaultServer) -> None:
    """Four calls in flight at once, each meeting a 503 first: all answered, 2 requests each."""
    for n in range(4):
        fault_server.route(f"/items/{n}", status(503), ok(f"item {n}"))
    with FuturesSession(session=rr.ResilientSession(CONFIG), max_workers=4) as session:
        pending = [session.get(fault_server.url(f"/items/{n}")) for n in range(4)]
        assert [future.result(timeout=10).text for future in pending] == [f"item {n}" for n in range(4)]
    assert [fault_server.hits(f"/items/{n}") for n in range(4)] == [2, 2, 2, 2]


def test_a_wrapped_session_applies_the_deadline(fault_server: FaultServer) -> None:
    """``deadline=`` reaches the wrapped session's call: a 1 s trickle is cut off."""
    fault_server.route("/slow", Trickle(b"x", every=0.05, count=20))
    with FuturesSession(session=rr.ResilientSession(CONFIG)) as session:
        with pytest.raises(rr.DeadlineExceededError):
            session.get(fault_server.url("/slow"), deadline=0.3).result(timeout=10)


def test_a_wrapped_session_keeps_the_breaker(fault_server: FaultServer) -> None:
    """The breaker opens in the wrapped session: the refusal comes out of the future."""
    config = rr.ClientConfig(retry=rr.RetryConfig(max_attempts=1),
                             circuit_breaker=rr.CircuitBreakerConfig(failure_threshold=2))
    fault_server.route("/down", status(503))
    with FuturesSession(session=rr.ResilientSession(config), max_workers=1) as session:
        for _ in range(2):
            assert session.get(fault_server.url("/down")).result(timeout=10).status_code == 503
        with pytest.raises(rr.CircuitOpenError):
            session.get(fault_server.url("/down")).result(timeout=10)
    assert fault_server.hits("/down") == 2


@pytest.mark.parametrize("cls", [FuturesThenOurs, OursThenFutures], ids=lambda cls: cls.__name__)
def test_a_combined_class_retries_on_the_worker(fault_server: FaultServer, cls: Any) -> None:
    """``config=`` passes; the calls run on the pool's threads with our retries."""
    fault_server.route("/items/1", status(503), status(503), ok("item 1"))
    with cls(config=CONFIG, max_workers=2) as session:
        assert session.config is CONFIG
        assert session.get(fault_server.url("/items/1")).result(timeout=10).text == "item 1"
    assert fault_server.hits("/items/1") == 3


@pytest.mark.parametrize("cls", [FuturesThenOurs, OursThenFutures], ids=lambda cls: cls.__name__)
def test_a_combined_class_says_the_deadline_was_not_applied(
        fault_server: FaultServer, cls: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The intended difference: ``deadline=0.1`` on a class combination is not applied (the
    0.4 s reply arrives whole) and one warning names the wrapped form instead."""
    caplog.set_level(logging.WARNING, logger="resilient_requests")
    fault_server.route("/slow", Trickle(b"x", every=0.05, count=8))
    with cls(config=CONFIG, max_workers=1) as session:
        for _ in range(2):
            answer = session.get(fault_server.url("/slow"), deadline=0.1).result(timeout=10)
            assert answer.content == b"x" * 8
    told = [r.getMessage() for r in caplog.records if getattr(r, "outcome", None) == "deadline_lost"]
    assert len(told) == 1 and "FuturesSession(session=ResilientSession())" in told[0], told


def test_a_plain_futures_session_is_not_reached_by_the_swap(fault_server: FaultServer) -> None:
    """The intended difference: ``FuturesSession()`` builds a plain ``requests.Session``
    (requests-futures imported it before any swap): one request for a 503."""
    fault_server.route("/items/1", status(503))
    with FuturesSession() as session:
        assert session.get(fault_server.url("/items/1")).result(timeout=10).status_code == 503
    assert fault_server.hits("/items/1") == 1
