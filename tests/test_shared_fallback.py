"""Shared breaker state while Redis is in trouble: stopped (SIGSTOP: connections
hang), killed (connections refused), or stalled for one operation. Real
redis-server, real sessions; each session of its own registry plays a worker
process of its own."""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, List, NamedTuple, Union

import pytest
import redis

import resilient_requests as rr
from resilient_requests.shared_state import RedisState, connect
from resilient_requests.testing import ok, status

from .conftest import NEEDS_REDIS, RedisProcess, wait_until

pytestmark = NEEDS_REDIS

THRESHOLD = 3  # failures that open a breaker
WORKERS = 3  # sessions with registries of their own: processes, as far as the breaker can tell
RECOVERY = 1.0  # seconds a breaker stays open
STORAGE_TIMEOUT = 0.05  # seconds a Redis call may take


def _config(redis_url: str, threshold: int = THRESHOLD, recovery: float = RECOVERY,
            storage_timeout: float = STORAGE_TIMEOUT, **fields: Any) -> rr.ClientConfig:
    breaker = rr.CircuitBreakerConfig(failure_threshold=threshold, recovery_timeout=recovery, storage=redis_url,
                                      state_cache_ttl=0.0, storage_timeout=storage_timeout, **fields)
    return rr.ClientConfig(retry=rr.RetryConfig(max_attempts=1), circuit_breaker=breaker)


class Call(NamedTuple):
    worker: int
    started: float  # time.monotonic()
    ended: float
    outcome: Union[int, str]  # the status, or "refused" by the breaker


def _call(worker: int, session: rr.ResilientSession, url: str) -> Call:
    started = time.monotonic()
    try:
        outcome: Union[int, str] = session.get(url).status_code
    except rr.CircuitOpenError:
        outcome = "refused"
    return Call(worker, started, time.monotonic(), outcome)


@contextmanager
def _outage(server: RedisProcess, how: str) -> Iterator[None]:
    """Redis stopped (SIGSTOP: calls hang until their timeout) or killed (calls refused)."""
    assert server.process is not None
    pid = server.process.pid
    if how == "stopped":
        os.kill(pid, signal.SIGSTOP)
    else:
        server.stop()
    try:
        yield
    finally:
        if how == "stopped":
            os.kill(pid, signal.SIGCONT)


def _warnings(caplog: Any) -> List[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("resilient_requests") and r.levelno >= logging.WARNING]


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_an_open_breaker_stays_open_through_a_redis_outage(fault_server, redis_server, caplog, how):
    """The shared breaker is open when Redis goes away: every worker, on its local state
    now, goes on refusing until the open period it knew of is over (with Redis up, the
    dependency would get nothing in that time either), then admits one trial."""
    caplog.set_level(logging.WARNING, logger="resilient_requests")
    fault_server.route("/x", status(503))
    url = fault_server.url("/x")
    workers = [rr.ResilientSession(_config(redis_server.url), isolated=True) for _ in range(WORKERS)]
    calls: List[Call] = []
    try:
        for n in range(THRESHOLD - 1):
            assert workers[n % WORKERS].get(url).status_code == 503
        opening = time.monotonic()  # the shared breaker opens during the next call: not before this
        assert workers[-1].get(url).status_code == 503
        assert [_call(n, w, url).outcome for n, w in enumerate(workers)] == ["refused"] * WORKERS
        assert fault_server.hits("/x") == THRESHOLD

        def every_worker_tried() -> bool:  # after the open period
            calls.extend(_call(n, w, url) for n, w in enumerate(workers))
            late = {c.worker for c in calls if c.outcome != "refused" and c.ended >= opening + RECOVERY}
            return len(late) == WORKERS

        with _outage(redis_server, how):
            wait_until(every_worker_tried, limit=10 * RECOVERY)
    finally:
        for worker in workers:
            worker.close()
    admitted = [c for c in calls if c.outcome != "refused"]
    early = [c for c in admitted if c.ended < opening + RECOVERY]
    assert not early, f"{len(early)} requests reached the dependency while the shared breaker was open"
    assert sorted(c.worker for c in admitted) == list(range(WORKERS))  # one trial each, then open again
    assert all(c.outcome == 503 for c in admitted)
    assert fault_server.hits("/x") == THRESHOLD + WORKERS
    # The trial is not held back either: due at most RECOVERY after the opening ended.
    assert all(c.started < opening + RECOVERY + 0.5 for c in admitted), [c.started - opening for c in admitted]
    # A hung Redis costs a worker a few storage timeouts, never more.
    assert max(c.ended - c.started for c in calls) < 10 * STORAGE_TIMEOUT + 0.5
    unavailable = [m for m in _warnings(caplog) if "unavailable" in m]
    assert len(unavailable) == WORKERS  # once per worker (each has its own breaker object)
    assert all("starting open" in m for m in unavailable)


def test_one_stalled_redis_operation_neither_falls_back_nor_warns(fault_server, redis_server, caplog):
    """Redis stops for 1.5 storage timeouts (a loaded host): one operation times out, is
    answered from the last known state, and nothing is logged above DEBUG; the failure
    seen during the stall still reaches the shared breaker, which another worker sees open."""
    caplog.set_level(logging.DEBUG, logger="resilient_requests")
    fault_server.route("/bad", status(503))
    fault_server.route("/ok", ok())
    timeout = 0.1
    config = _config(redis_server.url, threshold=2, recovery=30.0, storage_timeout=timeout)
    assert redis_server.process is not None
    pid = redis_server.process.pid
    with rr.ResilientSession(config, isolated=True) as a, rr.ResilientSession(config, isolated=True) as b:
        assert a.get(fault_server.url("/bad")).status_code == 503  # one failure, counted in Redis
        resume = threading.Timer(1.5 * timeout, os.kill, (pid, signal.SIGCONT))
        os.kill(pid, signal.SIGSTOP)
        resume.start()
        try:
            assert a.get(fault_server.url("/bad")).status_code == 503  # its first Redis read stalls
        finally:
            resume.join()
            os.kill(pid, signal.SIGCONT)
        assert not [m for m in _warnings(caplog) if "shared breaker state" in m]
        stalled = [r for r in caplog.records if "Redis failed" in r.getMessage()]
        assert stalled and all(r.levelno == logging.DEBUG for r in stalled)  # the stall did hit an operation
        with pytest.raises(rr.CircuitOpenError):
            b.get(fault_server.url("/ok"))
    assert fault_server.hits("/bad") == 2
    assert fault_server.hits("/ok") == 0


def test_a_failure_redis_did_not_answer_for_still_counts(redis_server, caplog):
    """A failure whose count times out in Redis is counted on the last known state:
    with one failure known and a threshold of two, it opens the breaker."""
    caplog.set_level(logging.WARNING, logger="resilient_requests")
    client = connect(redis_server.url, 0.1)
    state = RedisState(client, "test:breaker:counted", 0.0, 5.0)
    assert state.record_failure(2) is False  # counted in Redis
    assert redis_server.process is not None
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        opened = state.record_failure(2)
        known = state.state  # the second failed operation: still on the last known state
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    assert opened is True
    assert known == "open"
    assert not _warnings(caplog)
    client.close()


def test_the_fallback_starts_from_the_known_failure_count(redis_server, caplog):
    """Redis killed with two of three failures counted: the local fallback starts
    from those two, so the next failure opens it."""
    caplog.set_level(logging.WARNING, logger="resilient_requests")
    client = connect(redis_server.url, 0.1)
    state = RedisState(client, "test:breaker:fallback", 0.0, 5.0)
    assert state.record_failure(3) is False
    assert state.record_failure(3) is False
    redis_server.stop()
    assert [state.state for _ in range(3)] == ["closed"] * 3  # three failures in a row: the fallback
    assert [m for m in _warnings(caplog) if "unavailable" in m]
    assert state.counter == 2
    assert state.record_failure(3) is True
    client.close()


def test_a_half_open_breaker_keeps_a_known_trial_place_through_an_outage(fault_server, redis_server):
    """Half-open, its only trial place held by another worker's trial, when Redis is
    killed: this worker refuses until that trial's lease ends, then sends one trial."""
    from resilient_requests.compartments import breaker_key

    fault_server.route("/x", ok())
    lease = 0.6
    config = _config(redis_server.url, threshold=1, trial_timeout=2 * lease)
    key = f"resilient_requests:breaker:http://127.0.0.1:{fault_server.port}:{breaker_key(config)}"
    peer = redis.Redis.from_url(redis_server.url)
    with rr.ResilientSession(config, isolated=True) as session:
        assert session.get(fault_server.url("/x")).status_code == 200  # the breaker exists, closed
        seconds, microseconds = peer.time()
        now = seconds + microseconds / 1e6
        peer.hset(key, mapping={"state": "half-open", "successes": 0, "opened_at": repr(now - RECOVERY),
                                "trial:peer-1": repr(now + lease)})
        ends = time.monotonic() + lease  # the peer's lease, on this clock (Redis is on this host)
        assert _call(0, session, fault_server.url("/x")).outcome == "refused"  # read: the place is taken
        peer.close()
        redis_server.stop()
        calls: List[Call] = []

        def admitted() -> bool:
            calls.append(_call(0, session, fault_server.url("/x")))
            return calls[-1].outcome == 200

        wait_until(admitted, limit=10 * lease)
    assert all(c.outcome == "refused" for c in calls[:-1])
    assert calls[-1].ended >= ends - 0.05, calls[-1].ended - ends
    assert calls[-1].started < ends + 0.5
    assert fault_server.hits("/x") == 2
