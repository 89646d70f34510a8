"""Breaker state shared through a real Redis: every process fails fast together."""
from __future__ import annotations

import logging
import multiprocessing
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

import resilient_requests as rr
from resilient_requests import CircuitState
from resilient_requests.testing import Hold, ok, status

from . import shared_worker
from .conftest import NEEDS_REDIS

pytestmark = NEEDS_REDIS


def _config(redis_url: str, threshold: int = 2, recovery: float = 30.0, **fields: object) -> rr.ClientConfig:
    breaker = rr.CircuitBreakerConfig(failure_threshold=threshold, recovery_timeout=recovery,
                                      storage=redis_url, state_cache_ttl=0.0, **fields)
    return rr.ClientConfig(retry=rr.RetryConfig(max_attempts=1), circuit_breaker=breaker)


def test_sessions_naming_one_storage_share_one_breaker(fault_server, redis_server):
    """Failures seen by one session open the breaker for another; nothing more is sent."""
    fault_server.route("/x", status(503))
    # Private registries: the two sessions share state only through Redis, as two processes do.
    with rr.ResilientSession(_config(redis_server.url), isolated=True) as a, \
            rr.ResilientSession(_config(redis_server.url), isolated=True) as b:
        a.get(fault_server.url("/x"))
        b.get(fault_server.url("/x"))
        with pytest.raises(rr.CircuitOpenError):
            a.get(fault_server.url("/x"))
        assert b.circuit_state(fault_server.url("/")) is CircuitState.OPEN
    assert fault_server.hits("/x") == 2


def test_namespaces_keep_breakers_apart(fault_server, redis_server):
    """Another namespace on the same Redis has its own breaker."""
    fault_server.route("/x", status(503))
    with rr.ResilientSession(_config(redis_server.url, threshold=1)) as a, \
            rr.ResilientSession(_config(redis_server.url, threshold=1, namespace="other")) as b:
        a.get(fault_server.url("/x"))
        assert b.circuit_state(fault_server.url("/")) is CircuitState.CLOSED
        assert b.get(fault_server.url("/x")).status_code == 503


def test_sub_second_recovery_is_kept(fault_server, redis_server):
    """opened_at keeps fractions of a second: a 0.4 s recovery is neither cut short nor rounded up."""
    fault_server.route("/x", status(503))
    with rr.ResilientSession(_config(redis_server.url, threshold=1, recovery=0.4)) as session:
        session.get(fault_server.url("/x"))
        with pytest.raises(rr.CircuitOpenError) as got:
            session.get(fault_server.url("/x"))
        assert 0.2 < got.value.retry_after <= 0.4
        time.sleep(0.45)
        fault_server.route("/x", ok())
        assert session.get(fault_server.url("/x")).status_code == 200
        assert session.circuit_state(fault_server.url("/")) is CircuitState.CLOSED


def test_processes_fail_fast_together_and_one_trial_closes_for_all(fault_server, redis_server):
    """Three failures from three processes open it for all; after recovery exactly one trial goes out."""
    url = fault_server.url("/x")
    fault_server.route("/x", status(503))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=4, mp_context=context) as pool:
        for _ in range(3):  # one failure from each of three processes, in turn
            assert pool.submit(shared_worker.call, url, redis_server.url, 3, 1.0).result(timeout=60) == "503"
        fast = [pool.submit(shared_worker.call, url, redis_server.url, 3, 1.0) for _ in range(4)]
        assert [f.result(timeout=60) for f in fast] == ["open"] * 4
        assert fault_server.hits("/x") == 3
        time.sleep(1.1)  # the recovery_timeout passes; nothing is asserted on timing
        release = threading.Event()
        fault_server.route("/x", Hold(release, ok()))
        barrier = context.Manager().Barrier(4)
        together = [pool.submit(shared_worker.call, url, redis_server.url, 3, 1.0, barrier) for _ in range(4)]
        deadline = time.monotonic() + 30
        while fault_server.in_flight < 1 or sum(f.done() for f in together) < 3:
            assert time.monotonic() < deadline, "the trial or the fast failures did not happen"
            time.sleep(0.01)
        release.set()
        assert sorted(f.result(timeout=60) for f in together) == ["200", "open", "open", "open"]
        assert fault_server.hits("/x") == 4
        assert pool.submit(shared_worker.call, url, redis_server.url, 3, 1.0).result(timeout=60) == "200"


def test_redis_down_falls_back_to_local_state_and_comes_back(fault_server, redis_server, caplog):
    """Killing Redis breaks no call and is logged once; once it is back the state is shared again."""
    caplog.set_level(logging.WARNING, logger="resilient_requests")
    fault_server.route("/ok", ok())
    fault_server.route("/bad", status(503))
    config = _config(redis_server.url, threshold=2, storage_retry=0.2)
    with rr.ResilientSession(config, isolated=True) as a, rr.ResilientSession(config, isolated=True) as b:
        assert a.get(fault_server.url("/ok")).status_code == 200
        redis_server.stop()
        started = time.monotonic()
        for _ in range(20):
            assert a.get(fault_server.url("/ok")).status_code == 200
        assert time.monotonic() - started < 5  # no redis-py retries with backoff
        unavailable = [r for r in caplog.records if "unavailable" in r.getMessage()]
        assert len(unavailable) == 1
        redis_server.start()
        time.sleep(0.25)  # storage_retry passes
        a.get(fault_server.url("/bad"))
        a.get(fault_server.url("/bad"))
        with pytest.raises(rr.CircuitOpenError):
            b.get(fault_server.url("/ok"))  # b sees what a did: shared again
    assert any("is back" in r.getMessage() for r in caplog.records)


def test_a_bad_storage_names_the_field():
    """A storage that is neither a Redis URL nor a client is refused at config time."""
    with pytest.raises(ValueError, match="CircuitBreakerConfig.storage"):
        rr.CircuitBreakerConfig(storage="http://127.0.0.1:6379")
    with pytest.raises(TypeError, match="CircuitBreakerConfig.storage"):
        rr.CircuitBreakerConfig(storage=42)


def test_missing_redis_package_names_the_extra(monkeypatch):
    """Without the redis package, shared state says which extra to install."""
    from resilient_requests.shared_state import connect

    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=r"resilient_requests\[redis\]"):
        connect("redis://127.0.0.1:1/0", 0.05)
