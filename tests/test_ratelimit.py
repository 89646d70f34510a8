"""Batch jobs against rate-limited APIs: permits per dependency, a shared cool-down on 429,
a learnt rate; against a real loopback server that enforces a limit."""
from __future__ import annotations

import os
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import List

import pytest

import resilient_requests as rr
from resilient_requests.contrib._http import unavailable
from resilient_requests.testing import Hold, Limit, ok, status

from .conftest import NEEDS_REDIS, fast_config, wait_until


def _config(**rate_limit: object) -> rr.ClientConfig:
    config = fast_config(attempts=5, threshold=1000, slots=32)
    config.retry = rr.RetryConfig(max_attempts=5, min_wait=0.01, max_wait=5.0)
    return config.replace(rate_limit=rr.RateLimitConfig(**rate_limit))


def _batch(session: rr.ResilientSession, url: str, items: int, threads: int = 16):
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda _: session.get(url).status_code, range(items)))


def test_a_configured_rate_keeps_a_batch_within_the_apis_limit(fault_server, make_session):
    """16 threads x 500 items against an API allowing 200 requests/s, the client set
    5% under it: every item succeeds, the API refuses <= 1% of requests, the wall
    time is <= 1.1x ideal."""
    limit = Limit(200, 1.0)
    fault_server.route("/item", limit)
    session = make_session(_config(rate=190, max_wait=30))
    started = time.monotonic()
    statuses = _batch(session, fault_server.url("/item"), 500)
    elapsed = time.monotonic() - started
    assert statuses == [200] * 500
    assert limit.refused <= 0.01 * (limit.refused + limit.answered)
    assert elapsed <= 1.1 * 500 / 200 + 0.5  # + a half-second for a loaded CI machine


def test_without_a_limiter_the_same_batch_collects_429s(fault_server, make_session):
    """The control: no rate limit, the API refuses a large share."""
    limit = Limit(200, 1.0, retry_after=0)
    fault_server.route("/item", limit)
    session = make_session(_config())
    _batch(session, fault_server.url("/item"), 300)
    assert limit.refused > 0.05 * limit.answered


def test_a_retry_after_pauses_every_thread_then_one_goes_alone(fault_server, make_session):
    """After a 429 with Retry-After: 1, no thread sends for that second; then
    exactly one request goes first, and the others only once it was answered."""
    release = threading.Event()
    fault_server.route("/item", ok(), ok(), status(429, retry_after=1), Hold(release, ok(), limit=10), ok())
    session = make_session(_config(cooldown=True, max_wait=30))
    url = fault_server.url("/item")
    with ThreadPoolExecutor(8) as pool:
        first = [pool.submit(session.get, url) for _ in range(2)]
        assert [f.result(timeout=10).status_code for f in first] == [200, 200]
        refused = pool.submit(session.get, url)  # gets the 429, waits, retries
        wait_until(lambda: fault_server.hits("/item") == 3)
        others = [pool.submit(session.get, url) for _ in range(6)]
        wait_until(lambda: fault_server.in_flight == 1)  # the one after the pause, held
        alone = fault_server.hits("/item")
        time.sleep(0.3)  # the others had time to send, if they were going to
        assert fault_server.hits("/item") == alone == 4
        release.set()
        assert refused.result(timeout=10).status_code == 200
        assert [f.result(timeout=10).status_code for f in others] == [200] * 6
    seen = [r.at for r in fault_server.requests if r.path == "/item"]
    assert seen[3] - seen[2] >= 0.95  # nothing was sent during the second asked for


def test_view_style_fails_fast_with_the_time_a_permit_is_due(fault_server, make_session):
    """max_wait=0: a call with no permit free raises RateLimitedError at once, nothing sent."""
    fault_server.route("/x", ok())
    session = make_session(_config(rate=1, per=1.0, max_wait=0))
    assert session.get(fault_server.url("/x")).status_code == 200
    started = time.perf_counter()
    with pytest.raises(rr.RateLimitedError) as refused:
        session.get(fault_server.url("/x"))
    assert time.perf_counter() - started < 0.05
    assert 0.5 < refused.value.retry_after <= 1.0 / 0.98  # paced 2% under the rate
    assert isinstance(refused.value, rr.CircuitOpenError)  # fails fast like an open breaker
    assert fault_server.hits("/x") == 1
    answer = unavailable(refused.value)
    assert answer is not None and answer.reason == "rate_limited" and answer.retry_after in (1, 2)
    assert session.stats()["origins"][f"http://127.0.0.1:{fault_server.port}"]["rate_limited"] == 1


def test_a_pause_refuses_view_calls_with_its_retry_after(fault_server, make_session):
    """Cool-down with max_wait=0: during the pause calls fail fast with the time left."""
    fault_server.route("/x", status(429, retry_after=3), ok())
    config = _config(cooldown=True, max_wait=0)
    config.retry = rr.RetryConfig(max_attempts=1)
    session = make_session(config)
    assert session.get(fault_server.url("/x")).status_code == 429
    with pytest.raises(rr.RateLimitedError) as refused:
        session.get(fault_server.url("/x"))
    assert 2.0 < refused.value.retry_after <= 3.0
    assert fault_server.hits("/x") == 1


def test_remaining_zero_pauses_before_the_429(fault_server, make_session):
    """An answer with RateLimit-Remaining: 0 pauses the dependency until its reset."""
    fault_server.route("/x", ok(**{"RateLimit-Remaining": "0", "RateLimit-Reset": "2"}), ok())
    session = make_session(_config(cooldown=True, max_wait=0))
    assert session.get(fault_server.url("/x")).status_code == 200
    with pytest.raises(rr.RateLimitedError):
        session.get(fault_server.url("/x"))
    assert fault_server.hits("/x") == 1


def test_adaptive_mode_learns_the_rate(fault_server, make_session):
    """No rate configured: the limiter backs off on 429s and the batch completes
    with few of them."""
    limit = Limit(150, 1.0)
    fault_server.route("/item", limit)
    session = make_session(_config(adaptive=True, max_wait=30))
    statuses = _batch(session, fault_server.url("/item"), 450)
    assert statuses == [200] * 450
    assert limit.refused <= 0.1 * 450
    snapshot = session.stats()["origins"][f"http://127.0.0.1:{fault_server.port}"]["rate_limit"]
    assert snapshot["rate"] is not None and snapshot["rate"] < 300


@pytest.mark.parametrize("field, value, message", [
    ("rate", 0, "RateLimitConfig.rate must be > 0, got 0"),
    ("burst", 0, "RateLimitConfig.burst must be >= 1, got 0"),
    ("max_wait", -1, "RateLimitConfig.max_wait must be >= 0, got -1"),
    ("fallback_share", 2, "RateLimitConfig.fallback_share must be a share <= 1, got 2"),
])
def test_bad_rate_limit_config_names_the_field(field, value, message):
    """A bad value is refused when the config is made, naming the field and value."""
    with pytest.raises(ValueError, match=message):
        rr.RateLimitConfig(**{field: value})


def _forked(work, count: int = 2) -> List[int]:
    """Run ``work()`` (returning a small int) in ``count`` forked processes at once; their results."""
    children = []
    for _ in range(count):
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads: see forking.py
            pid = os.fork()
        if pid == 0:
            try:
                os.close(read_end)
                os.write(write_end, str(work()).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        children.append((pid, read_end))
    results = []
    for pid, read_end in children:
        with os.fdopen(read_end) as pipe:
            results.append(int(pipe.read() or "-1"))
        os.waitpid(pid, 0)
    return results


def _shared_config(redis_url: str) -> rr.ClientConfig:
    return _config().replace(
        circuit_breaker=rr.CircuitBreakerConfig(failure_threshold=1000, storage=redis_url, storage_retry=60.0),
        rate_limit=rr.RateLimitConfig(rate=90, max_wait=30, shared=True, fallback_share=0.5),
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
@NEEDS_REDIS
def test_two_processes_share_one_limit_through_redis(fault_server, redis_server):
    """Two processes x 8 threads x 150 items, one limit of 90/s (a tenth under the API's 100, as
    scheduling delays on a loaded machine bunch arrivals) kept in Redis: the
    API refuses <= 1% together; with Redis down, each keeps half the rate on its
    own, and nothing fails."""
    limit = Limit(100, 1.0)
    fault_server.route("/item", limit)
    config = _shared_config(redis_server.url)

    def work() -> int:
        with rr.ResilientSession(config) as session:
            return sum(status == 200 for status in _batch(session, fault_server.url("/item"), 150, threads=8))

    started = time.monotonic()
    assert _forked(work) == [150, 150]
    assert limit.refused <= 0.01 * limit.answered
    assert time.monotonic() - started >= 300 / 100 * 0.9  # they did share it: 300 at 90/s
    redis_server.stop()
    limit.refused = 0
    assert _forked(work) == [150, 150]  # Redis down: each process at 50/s, locally
    assert limit.refused <= 0.02 * 300


def test_prometheus_shows_the_rate_limit(fault_server, make_session):
    """CompartmentCollector exports permits, waits, refusals, pause and rate of a limited dependency."""
    from prometheus_client import CollectorRegistry, generate_latest

    from resilient_requests.contrib.prometheus import CompartmentCollector

    registry = CollectorRegistry()
    CompartmentCollector().register(registry)
    fault_server.route("/x", ok())
    session = make_session(_config(rate=1, max_wait=0))
    session.get(fault_server.url("/x"))
    with pytest.raises(rr.RateLimitedError):
        session.get(fault_server.url("/x"))
    text = generate_latest(registry).decode()
    port = f":{fault_server.port}"
    lines = {line.split("{")[0]: line for line in text.splitlines() if port in line}
    assert lines["resilient_requests_compartment_rate_limit_permits_total"].endswith(" 1.0")
    assert lines["resilient_requests_compartment_rate_limit_refused_total"].endswith(" 1.0")
    assert lines["resilient_requests_compartment_rate_limit_rate"].endswith(" 0.98")  # 2% under
