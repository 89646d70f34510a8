"""Client-side adaptive throttling (SRE book): shed calls locally when an origin accepts too few."""
from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import resilient_requests as rr
from resilient_requests.testing import Hold, ok, status
from resilient_requests.throttle import AdaptiveThrottle

from .conftest import fast_config, wait_until


def _config(enabled: bool = True, k: float = 2.0) -> rr.ClientConfig:
    config = fast_config(attempts=1, threshold=100_000)
    config.throttle = rr.ThrottleConfig(enabled=enabled, k=k)
    return config


def test_probability_follows_the_formula():
    """p = max(0, (requests - K*accepts) / (requests + 1)), counting rejected calls as requests."""
    draws = itertools.cycle([0.99])  # never below p until p > 0.99
    throttle = AdaptiveThrottle(k=2.0, window=60.0, rng=lambda: next(draws))
    for _ in range(10):
        assert throttle.admit() == 0.0
        throttle.finished(accepted=True)
    assert throttle.rejection_probability() == 0.0  # 10 requests, 10 accepts
    for _ in range(20):
        throttle.admit()
        throttle.finished(accepted=False)  # 20 more, none accepted
    assert throttle.rejection_probability() == pytest.approx((30 - 2 * 10) / 31)


def test_calls_in_flight_are_not_refusals():
    """Calls let through count when they end: 16 started at once do not make the 17th look refused."""
    throttle = AdaptiveThrottle(k=2.0, window=60.0, rng=lambda: 0.0)  # rejects whenever p > 0
    assert [throttle.admit() for _ in range(17)] == [0.0] * 17
    for _ in range(17):
        throttle.finished(accepted=True)
    assert throttle.rejection_probability() == 0.0


def test_many_threads_on_a_healthy_origin_are_never_throttled(fault_server, make_session):
    """16 threads starting together against an origin that accepts everything: nothing is shed."""
    release = threading.Event()
    fault_server.route("/x", Hold(release, ok()))
    session = make_session(_config())
    with ThreadPoolExecutor(max_workers=32) as pool:  # 16 held, 16 for the calls after them
        first = [pool.submit(session.get, fault_server.url("/x")) for _ in range(16)]
        wait_until(lambda: fault_server.in_flight == 16)
        fault_server.route("/x", ok())
        late = [pool.submit(session.get, fault_server.url("/x")) for _ in range(16 * 20)]
        wait_until(lambda: sum(f.done() for f in late) == len(late))
        release.set()
        assert all(f.result(timeout=10).status_code == 200 for f in first + late)
    assert session.stats()["origins"][fault_server.base_url]["throttled"] == 0


def test_a_failing_origin_is_shed_locally(fault_server, make_session):
    """Against an origin refusing every call, most calls never leave the client."""
    fault_server.route("/x", status(503))
    session = make_session(_config())
    throttled = 0
    for _ in range(300):
        try:
            session.get(fault_server.url("/x"))
        except rr.ThrottledError as error:
            throttled += 1
            assert isinstance(error, rr.CircuitOpenError) and 0 < error.probability < 1
    assert fault_server.hits("/x") + throttled == 300
    assert fault_server.hits("/x") < 100
    assert session.stats()["origins"][fault_server.base_url]["throttled"] == throttled


def test_a_healthy_origin_is_never_throttled(fault_server, make_session):
    """An origin that accepts every call (a 404 counts as accepted) sees every call."""
    fault_server.route("/x", ok(), status(404), cycle=True)
    session = make_session(_config())
    for _ in range(200):
        session.get(fault_server.url("/x"))
    assert fault_server.hits("/x") == 200


def test_off_by_default_and_on_in_fast_microservice(fault_server, make_session):
    """ClientConfig() does not throttle; the fast_microservice preset does."""
    assert rr.ClientConfig().throttle.enabled is False
    assert rr.preset("fast_microservice").throttle == rr.ThrottleConfig(enabled=True, k=2.0, window=120.0)
    fault_server.route("/x", status(503))
    session = make_session(_config(enabled=False))
    for _ in range(50):
        session.get(fault_server.url("/x"))
    assert fault_server.hits("/x") == 50


def test_throttle_config_is_checked():
    """K below 1 or a non-positive window is refused, naming the field."""
    with pytest.raises(ValueError, match="ThrottleConfig.k"):
        rr.ThrottleConfig(k=0.5)
    with pytest.raises(ValueError, match="ThrottleConfig.window"):
        rr.ThrottleConfig(window=0)
