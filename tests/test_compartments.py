"""Compartments: resilience state per dependency, shared by every session in the process."""
from __future__ import annotations

import json
import os
import threading
import time
import warnings

import pytest

import resilient_requests as rr
from resilient_requests.testing import FaultServer, Hold, ok, status

from .conftest import NEEDS_REDIS, fast_config, wait_until


def _fast_fail_count(call, times: int) -> int:
    """How many of ``times`` calls raised CircuitOpenError."""
    refused = 0
    for _ in range(times):
        try:
            call()
        except rr.CircuitOpenError:
            refused += 1
    return refused


@pytest.mark.parametrize("make", [
    pytest.param(lambda: rr.ResilientSession(fast_config()), id="ResilientSession(config)"),
    pytest.param(lambda: rr.Session(fast_config()), id="requests.Session after the swap"),
])
def test_a_session_per_task_shares_the_breaker(fault_server, make):
    """200 calls, each through a new session, to an origin answering 503: the
    breaker opens after failure_threshold failed attempts and the rest fail fast."""
    fault_server.route("/down", status(503))

    def task():
        with make() as session:
            return session.get(fault_server.url("/down"))

    refused = _fast_fail_count(task, 200)
    assert fault_server.hits("/down") <= 5 * 3  # failure_threshold x max_attempts
    assert refused >= 200 - 5


def test_a_fresh_default_session_per_call_fails_fast_within_microseconds(fault_server):
    """Once open, a new session's refused call costs no I/O and little time."""
    fault_server.route("/down", status(503))
    config = fast_config(threshold=1, attempts=1)
    with rr.ResilientSession(config) as first:
        first.get(fault_server.url("/down"))
    started = time.perf_counter()
    refused = _fast_fail_count(lambda: rr.ResilientSession(config).get(fault_server.url("/down")), 50)
    assert refused == 50
    assert (time.perf_counter() - started) / 50 < 0.05  # generous: a session's construction included
    assert fault_server.hits("/down") == 1


@pytest.fixture
def second_server():
    """Another loopback origin: a second dependency."""
    with FaultServer() as server:
        yield server


def _hold_every_slot(call_a, slots: int, server: FaultServer, path: str):
    threads = [threading.Thread(target=call_a) for _ in range(slots)]
    for thread in threads:
        thread.start()
    wait_until(lambda: server.hits(path) == slots)
    return threads


def test_a_hung_dependency_fills_only_its_own_bulkhead(fault_server, second_server, make_session):
    """With every slot of dependency A held by hung calls, a call to B goes at
    once; A's next call is refused after A's acquisition_timeout."""
    release = threading.Event()
    fault_server.route("/hung", Hold(release, limit=10))
    session = make_session(slots=3, acquire=0.2)
    threads = _hold_every_slot(lambda: session.get(fault_server.url("/hung")), 3, fault_server, "/hung")
    try:
        started = time.monotonic()
        assert session.get(second_server.url("/b")).status_code == 200
        assert time.monotonic() - started < 1.0
        with pytest.raises(rr.PoolTimeoutError):
            session.get(fault_server.url("/next"))
        assert fault_server.hits("/next") == 0
        stats = session.stats()["origins"]
        assert stats[f"http://127.0.0.1:{fault_server.port}"]["bulkhead_in_use"] == 3
        assert stats[f"http://127.0.0.1:{second_server.port}"]["bulkhead_in_use"] == 0
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=10)


def test_module_level_calls_to_a_healthy_dependency_do_not_wait_for_a_hung_one(fault_server, second_server):
    """The module-level API: a hung dependency holds its own slots only."""
    rr.configure(fast_config(slots=3, acquire=0.2))
    release = threading.Event()
    fault_server.route("/hung", Hold(release, limit=10))
    threads = _hold_every_slot(lambda: rr.get(fault_server.url("/hung")), 3, fault_server, "/hung")
    try:
        started = time.monotonic()
        assert rr.get(second_server.url("/b")).status_code == 200
        assert time.monotonic() - started < 1.0
        with pytest.raises(rr.PoolTimeoutError):
            rr.get(fault_server.url("/next"))
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=10)
        rr.configure()


def test_an_overall_cap_bounds_the_session_across_dependencies(fault_server, second_server, make_session):
    """total_concurrency caps one session's calls in flight over every dependency."""
    release = threading.Event()
    fault_server.route("/hung", Hold(release, limit=10))
    session = make_session(fast_config(slots=10, acquire=0.2).replace(total_concurrency=2))
    threads = _hold_every_slot(lambda: session.get(fault_server.url("/hung")), 2, fault_server, "/hung")
    try:
        with pytest.raises(rr.PoolTimeoutError):
            session.get(second_server.url("/b"))
        assert second_server.hits("/b") == 0
        assert session.stats()["overall"] == {"capacity": 2, "in_use": 2}
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=10)
    assert session.get(second_server.url("/b")).status_code == 200


def test_each_dependency_gets_its_own_timeouts_attempts_and_breaker(fault_server, second_server, make_session):
    """Two origins in one session, each with its config: observed at the servers."""
    a, b = fault_server, second_server
    config = fast_config(attempts=3, threshold=100).replace(dependencies={
        a.base_url: {"retry": {"max_attempts": 1}, "circuit_breaker": {"failure_threshold": 1},
                     "timeout": {"read": 0.2}},
    })
    session = make_session(config)
    a.route("/503", status(503))
    b.route("/503", status(503))
    assert session.get(a.url("/503")).status_code == 503
    assert session.get(b.url("/503")).status_code == 503
    assert (a.hits("/503"), b.hits("/503")) == (1, 3)
    with pytest.raises(rr.CircuitOpenError):
        session.get(a.url("/503"))  # threshold 1: open
    assert session.get(b.url("/503")).status_code == 503  # threshold 100: still closed
    a.route("/slow", ok(delay=0.6))
    b.route("/slow", ok(delay=0.6))
    rr.reset(a.base_url)
    with pytest.raises(rr.TimeoutError):
        session.get(a.url("/slow"))  # read 0.2
    assert session.get(b.url("/slow")).status_code == 200  # read 5


def test_a_named_group_of_origins_shares_one_compartment(fault_server, second_server, make_session):
    """Two origins named as one dependency share its breaker."""
    config = fast_config(attempts=1).replace(dependencies={
        "replicas": {"origins": [fault_server.base_url, second_server.base_url],
                     "circuit_breaker": {"failure_threshold": 2}},
    })
    session = make_session(config)
    fault_server.route("/x", status(503))
    second_server.route("/x", status(503))
    session.get(fault_server.url("/x"))
    session.get(second_server.url("/x"))
    with pytest.raises(rr.CircuitOpenError) as refused:
        session.get(fault_server.url("/x"))
    assert refused.value.origin == "replicas"
    assert "replicas" in session.stats()["origins"]


def test_same_policy_shares_and_a_different_policy_does_not(fault_server, make_session):
    """Sessions with equal configs share a compartment; a session with another
    breaker policy for the same origin has its own, behaving as it asked."""
    fault_server.route("/down", status(503))
    first = make_session(threshold=1, attempts=1)
    same = make_session(threshold=1, attempts=1)
    other = make_session(threshold=3, attempts=1)
    first.get(fault_server.url("/down"))
    with pytest.raises(rr.CircuitOpenError):
        same.get(fault_server.url("/down"))
    assert other.get(fault_server.url("/down")).status_code == 503
    assert fault_server.hits("/down") == 2
    policies = {c["policy"] for c in rr.registry().stats()}
    assert len(policies) == 2


def test_timeouts_and_attempts_are_not_part_of_the_policy(fault_server, make_session):
    """A session that only asks for other timeouts or attempts still shares the breaker."""
    fault_server.route("/down", status(503))
    make_session(threshold=1, attempts=1).get(fault_server.url("/down"))
    with pytest.raises(rr.CircuitOpenError):
        make_session(threshold=1, attempts=4, read=9.0).get(fault_server.url("/down"))


def test_an_isolated_session_keeps_private_state(fault_server, make_session):
    """isolated=True: the shared open breaker does not apply, and its own does not leak."""
    fault_server.route("/down", status(503))
    make_session(threshold=1, attempts=1).get(fault_server.url("/down"))
    with rr.ResilientSession(fast_config(threshold=1, attempts=1), isolated=True) as private:
        assert private.get(fault_server.url("/down")).status_code == 503
        with pytest.raises(rr.CircuitOpenError):
            private.get(fault_server.url("/down"))
    assert fault_server.hits("/down") == 2
    with pytest.raises(ValueError, match="not both"):
        rr.ResilientSession(registry=rr.Registry(), isolated=True)


def test_reset_forgets_all_or_one_dependency(fault_server, second_server, make_session):
    """reset() closes every breaker; reset(url) only that dependency's."""
    session = make_session(threshold=1, attempts=1)
    for server in (fault_server, second_server):
        server.route("/down", status(503))
        session.get(server.url("/down"))
    rr.reset(fault_server.url("/anything"))
    assert session.circuit_state(fault_server.url("/")) is rr.CircuitState.CLOSED
    assert session.circuit_state(second_server.url("/")) is rr.CircuitState.OPEN
    rr.reset()
    assert session.circuit_state(second_server.url("/")) is rr.CircuitState.CLOSED
    assert session.get(second_server.url("/down")).status_code == 503  # the session goes on


def test_a_shared_breakers_change_reaches_each_listener_once(fault_server, make_session):
    """One listener on two sessions sharing a compartment hears one transition, not two;
    a listener on only the other session hears it too."""
    seen, other_seen = [], []

    class Listener:
        def breaker_state_changed(self, event):
            seen.append((event.old, event.new))

    class Other:
        def breaker_state_changed(self, event):
            other_seen.append((event.old, event.new))

    listener = Listener()
    first, second = make_session(threshold=1, attempts=1), make_session(threshold=1, attempts=1)
    first.add_listener(listener)
    second.add_listener(listener)
    second.add_listener(Other())
    fault_server.route("/down", status(503))
    second.circuit_state(fault_server.url("/"))  # looked up: second hears this dependency
    first.get(fault_server.url("/down"))
    assert seen == [("closed", "open")]
    assert other_seen == [("closed", "open")]


def test_registry_stats_and_describe_show_compartments(fault_server, make_session):
    """registry().stats() lists each compartment; describe() shows the session's."""
    session = make_session(slots=7)
    session.get(fault_server.url("/"))
    entries = [c for c in rr.registry().stats() if c["dependency"].endswith(f":{fault_server.port}")]
    assert len(entries) == 1
    assert entries[0]["bulkhead_capacity"] == 7 and entries[0]["breaker_state"] == "closed"
    described = session.describe()["compartments"]
    assert described[0]["bulkhead_capacity"] == 7


@pytest.mark.parametrize("source", ["dict", "json", "toml", "env"])
def test_dependencies_come_from_every_config_source(tmp_path, source):
    """dependencies= is read from a dict, a JSON or TOML file and the environment."""
    data = {"preset": "default", "dependencies": {
        "https://payments.internal": {"preset": "fast_microservice"},
        "reports": {"origins": ["https://r1.internal", "https://r2.internal"], "timeout": {"read": 120}},
    }}
    if source == "dict":
        config = rr.ClientConfig.from_dict(data)
    elif source == "json":
        path = tmp_path / "c.json"
        path.write_text(json.dumps(data))
        config = rr.ClientConfig.from_file(path)
    elif source == "toml":
        path = tmp_path / "c.toml"
        path.write_text('preset = "default"\n[dependencies."https://payments.internal"]\npreset = "fast_microservice"\n'
                        '[dependencies.reports]\norigins = ["https://r1.internal", "https://r2.internal"]\n'
                        '[dependencies.reports.timeout]\nread = 120\n')
        config = rr.ClientConfig.from_file(path)
    else:
        config = rr.ClientConfig.from_env(environ={"RESILIENT_REQUESTS_DEPENDENCIES": json.dumps(data["dependencies"])})
    name, payments = config.policy_for("https://payments.internal:443")
    assert payments.timeout == rr.preset("fast_microservice").timeout
    assert config.policy_for("https://r2.internal:443")[0] == "reports"
    assert config.policy_for("https://r2.internal:443")[1].timeout.read == 120.0


@pytest.mark.parametrize("dependencies, message", [
    ({"https://x": {"retry": {"max_attempts": 0}}}, r"dependencies\['https://x'\].retry.max_attempts=0"),
    ({"group": {"timeout": {"read": 1}}}, "must list its 'origins'"),
    ({"https://x": 3}, "must be a ClientConfig or a mapping"),
    ({"a": {"origins": ["https://x"]}, "b": {"origins": ["https://x:443"]}}, "already in dependency 'a'"),
    ({"g": {"origins": ["ftp://x"]}}, "http"),
])
def test_bad_dependencies_name_the_field_and_value(dependencies, message):
    """A bad dependencies entry raises at construction, naming the key and the value."""
    with pytest.raises((TypeError, ValueError), match=message):
        rr.ClientConfig(dependencies=dependencies)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
@NEEDS_REDIS
def test_two_processes_with_two_sessions_each_share_one_breaker_through_redis(fault_server, redis_server):
    """Two forked processes, each calling through two sessions made per call,
    share one breaker per dependency in Redis: the origin sees about
    failure_threshold requests in all, the rest fail fast."""
    fault_server.route("/down", status(503))
    config = rr.ClientConfig(
        retry=rr.RetryConfig(max_attempts=1),
        circuit_breaker=rr.CircuitBreakerConfig(failure_threshold=3, recovery_timeout=30,
                                                storage=redis_server.url, state_cache_ttl=0.0),
    )

    def child(write_end: int) -> None:
        refused = 0
        for i in range(20):
            with rr.ResilientSession(config) as session:  # a session per call, two kinds alternating
                try:
                    session.get(fault_server.url("/down"), headers={"X-Session": str(i % 2)})
                except rr.CircuitOpenError:
                    refused += 1
        os.write(write_end, str(refused).encode())

    pids, reads = [], []
    for _ in range(2):
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads: handled, see forking.py
            pid = os.fork()
        if pid == 0:
            try:
                os.close(read_end)
                child(write_end)
            finally:
                os._exit(0)
        os.close(write_end)
        pids.append(pid)
        reads.append(read_end)
    refused = []
    for pid, read_end in zip(pids, reads):
        with os.fdopen(read_end) as pipe:
            refused.append(int(pipe.read() or "-1"))
        os.waitpid(pid, 0)
    assert 3 <= fault_server.hits("/down") <= 3 + 2  # the threshold, plus a call in flight per process
    assert sum(refused) == 40 - fault_server.hits("/down")
