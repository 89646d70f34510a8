"""Shared breaker state between processes that disagree: about the time (a host
whose clock is an hour ahead), and about the state (each process's pybreaker
object caches the state it last saw). Real redis-server, real sessions, and a
real second process where the clock matters."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List, Tuple, Union

import pytest
import redis
from prometheus_client import CollectorRegistry

import resilient_requests as rr
from resilient_requests import CircuitState
from resilient_requests.contrib.prometheus import PrometheusListener
from resilient_requests.testing import ok, status

from . import shared_worker
from .conftest import NEEDS_REDIS, wait_until

pytestmark = NEEDS_REDIS

REPO = Path(__file__).resolve().parents[1]
HOUR = 3600.0
RECOVERY = 0.3  # seconds: the open period, and the trial lease where one is set


def _config(redis_url: str, *, namespace: str = "resilient_requests", logger: str = "resilient_requests",
            **breaker: Any) -> rr.ClientConfig:
    fields: dict = {"failure_threshold": 1, "recovery_timeout": RECOVERY, **breaker}
    return rr.ClientConfig(
        retry=rr.RetryConfig(max_attempts=1),
        circuit_breaker=rr.CircuitBreakerConfig(storage=redis_url, namespace=namespace, state_cache_ttl=0.0,
                                                **fields),
        logging=rr.LoggingConfig(logger_name=logger),
    )


def _key(fault_server: Any, config: rr.ClientConfig) -> str:
    """The origin's hash: the dependency and the breaker policy name it."""
    from resilient_requests.compartments import breaker_key

    namespace = config.circuit_breaker.namespace
    return f"{namespace}:breaker:http://127.0.0.1:{fault_server.port}:{breaker_key(config)}"


def _outcome(session: rr.ResilientSession, url: str) -> Union[int, float]:
    """The status of one GET, or -retry_after if the breaker refused it (-0.0: trial places taken)."""
    try:
        return session.get(url).status_code
    except rr.CircuitOpenError as refused:
        return -refused.retry_after


@pytest.fixture
def peer(redis_server):
    """A plain Redis client: writes the hash as a process on another host would."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.mark.parametrize("reopens, multiplier", [(0, 1.0), (3, 2.0)])
def test_an_opening_stamped_an_hour_ahead_lasts_one_open_period(fault_server, redis_server, peer,
                                                                 reopens, multiplier):
    """A peer whose clock is 1 h ahead opened the breaker (opened_at = its now): this session
    refuses for at most the open period (grown by the failed trials, within the cap), then
    lets a trial through, which closes it."""
    fault_server.route("/x", ok())
    config = _config(redis_server.url, recovery_multiplier=multiplier, max_recovery_timeout=2 * RECOVERY)
    open_for = config.circuit_breaker.open_for(reopens)
    assert open_for == (RECOVERY if reopens == 0 else 2 * RECOVERY)
    with rr.ResilientSession(config) as session:
        assert _outcome(session, fault_server.url("/x")) == 200  # the breaker exists, closed
        peer.hset(_key(fault_server, config), mapping={
            "state": "open", "opened_at": repr(time.time() + HOUR), "failures": 0, "reopens": reopens,
        })
        refusals: List[float] = []

        def through() -> bool:
            got = _outcome(session, fault_server.url("/x"))
            if got == 200:
                return True
            refusals.append(-got)
            return False

        started = time.monotonic()
        wait_until(through, limit=10 * open_for)
        assert time.monotonic() - started < 10 * open_for
        assert refusals, "the peer's opening was ignored"
        assert all(0 < left <= open_for for left in refusals), (open_for, refusals)
        assert session.circuit_state(fault_server.url("/")) is CircuitState.CLOSED
    assert fault_server.hits("/x") == 2


def test_a_trial_lease_ending_an_hour_ahead_holds_its_place_one_lease_length(fault_server, redis_server, peer):
    """Half-open, its only trial place held by a peer whose clock is 1 h ahead: the place
    is free again one lease length later, not in an hour."""
    fault_server.route("/x", ok())
    config = _config(redis_server.url, trial_timeout=RECOVERY)
    with rr.ResilientSession(config) as session:
        assert _outcome(session, fault_server.url("/x")) == 200
        peer.hset(_key(fault_server, config), mapping={
            "state": "half-open", "successes": 0, "opened_at": repr(time.time() + HOUR - 1),
            "trial:peer-1": repr(time.time() + HOUR),
        })
        assert _outcome(session, fault_server.url("/x")) == 0.0  # the peer's trial holds the place
        started = time.monotonic()
        wait_until(lambda: _outcome(session, fault_server.url("/x")) == 200, limit=10 * RECOVERY)
        assert time.monotonic() - started < 10 * RECOVERY
        assert session.circuit_state(fault_server.url("/")) is CircuitState.CLOSED
    assert fault_server.hits("/x") == 2


def _skewed_call(url: str, redis_url: str, skew: float) -> Tuple[str, float]:
    """One call from a fresh process whose clock runs ``skew`` seconds ahead: its result and its time."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.shared_worker", url, redis_url, "1", repr(RECOVERY)],
        cwd=REPO, env={**os.environ, shared_worker.SKEW_VARIABLE: repr(skew)},
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    result, clock = done.stdout.split()
    return result, float(clock)


def test_a_process_an_hour_ahead_opens_it_for_one_open_period(fault_server, redis_server, peer):
    """A real process whose clock is 1 h ahead opens the shared breaker: it stamps the
    opening with Redis's time, not its own (pybreaker's write of opened_at included), and
    here the breaker is open for at most recovery_timeout, then a trial closes it."""
    fault_server.route("/x", status(503))
    url = fault_server.url("/x")
    result, their_time = _skewed_call(url, redis_server.url, HOUR)
    assert result == "503"
    assert their_time - time.time() > HOUR - 60  # its clock really was ahead
    seconds, microseconds = peer.time()
    config = shared_worker.config(redis_server.url, 1, RECOVERY)
    opened_at = float(peer.hget(_key(fault_server, config), "opened_at"))
    assert 0 <= seconds + microseconds / 1e6 - opened_at < 60
    with rr.ResilientSession(config) as session:
        with pytest.raises(rr.CircuitOpenError) as got:
            session.get(url)
        assert 0 < got.value.retry_after <= RECOVERY
        fault_server.route("/x", ok())
        wait_until(lambda: _outcome(session, url) == 200, limit=10 * RECOVERY)
        assert session.circuit_state(fault_server.url("/")) is CircuitState.CLOSED
    assert fault_server.hits("/x") == 2


class Changes(rr.Listener):
    """The breaker changes one session reports, as (old, new)."""

    def __init__(self) -> None:
        self.seen: List[Tuple[str, str]] = []

    def breaker_state_changed(self, event: Any) -> None:
        self.seen.append((event.old, event.new))


def _logged(caplog: Any, logger: str) -> List[str]:
    return [r.getMessage().split(" for ")[0] for r in caplog.records
            if r.name == logger and r.getMessage().startswith("circuit ")]


def test_reopening_after_another_process_closed_it_reports_the_true_previous_state(
        fault_server, redis_server, caplog):
    """A opens the breaker; B, after the open period, sends the trial that closes it; A opens
    it again. Each session, like a process of its own, has its own breaker object, whose
    cached state is stale when the other changed the shared one: A must still report
    closed -> open (not open -> open), B open -> half_open (not closed -> half_open), to its
    listeners, its log and Prometheus alike."""
    caplog.set_level(logging.INFO)
    fault_server.route("/bad", status(503))
    fault_server.route("/ok", ok())
    registry = CollectorRegistry()
    a_changes, b_changes = Changes(), Changes()
    with rr.ResilientSession(_config(redis_server.url, logger="shared.a"), isolated=True) as a, \
            rr.ResilientSession(_config(redis_server.url, logger="shared.b"), isolated=True) as b:
        a.add_listener(a_changes)
        a.add_listener(PrometheusListener(registry))
        b.add_listener(b_changes)
        assert b.get(fault_server.url("/ok")).status_code == 200  # B's breaker exists, closed
        assert a.get(fault_server.url("/bad")).status_code == 503  # A opens it
        with pytest.raises(rr.CircuitOpenError):
            b.get(fault_server.url("/ok"))  # B sees it open
        wait_until(lambda: _outcome(b, fault_server.url("/ok")) == 200, limit=10 * RECOVERY)
        assert a.circuit_state(fault_server.url("/")) is CircuitState.CLOSED  # B's trial closed it
        assert a.get(fault_server.url("/bad")).status_code == 503  # A opens it again
        assert b.circuit_state(fault_server.url("/")) is CircuitState.OPEN
    assert a_changes.seen == [("closed", "open"), ("closed", "open")]
    assert b_changes.seen == [("open", "half_open"), ("half_open", "closed")]
    assert _logged(caplog, "shared.a") == ["circuit closed -> open"] * 2
    assert _logged(caplog, "shared.b") == ["circuit open -> half-open", "circuit half-open -> closed"]
    transitions = {
        (s.labels["from_state"], s.labels["to_state"]): s.value
        for metric in registry.collect() if metric.name.endswith("breaker_transitions")
        for s in metric.samples if s.name.endswith("_total")
    }
    assert transitions == {("closed", "open"): 2.0}


def test_a_failed_trial_after_another_process_reopened_it_reports_half_open_to_open(
        fault_server, redis_server):
    """A opens it; B's trial closes it; B opens it again; A's trial, after the open period,
    fails: A reports open -> half_open -> open, never a change to the state it was in."""
    fault_server.route("/bad", status(503))
    fault_server.route("/ok", ok())
    a_changes = Changes()
    with rr.ResilientSession(_config(redis_server.url), isolated=True) as a, \
            rr.ResilientSession(_config(redis_server.url), isolated=True) as b:  # as two processes
        a.add_listener(a_changes)
        assert a.get(fault_server.url("/bad")).status_code == 503
        wait_until(lambda: _outcome(b, fault_server.url("/ok")) == 200, limit=10 * RECOVERY)
        assert b.get(fault_server.url("/bad")).status_code == 503  # B opens it again
        wait_until(lambda: _outcome(a, fault_server.url("/bad")) == 503, limit=10 * RECOVERY)
        assert a.circuit_state(fault_server.url("/")) is CircuitState.OPEN
    assert a_changes.seen == [("closed", "open"), ("open", "half_open"), ("half_open", "open")]
    assert all(old != new for old, new in a_changes.seen)
