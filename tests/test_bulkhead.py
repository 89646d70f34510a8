"""The bulkhead and the connection pools behind it."""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import resilient_requests as rr
from resilient_requests.testing import Hang, Hold, Trickle, ok, refused_url

from .conftest import wait_until


def test_three_slots_never_let_more_than_three_through(fault_server, make_session):
    """16 threads through 3 slots: the server never sees more than 3 at once, and all finish."""
    release = threading.Event()
    fault_server.route("/x", Hold(release, ok()))
    session = make_session(slots=3, acquire=10.0)
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(session.get, fault_server.url("/x")) for _ in range(16)]
        wait_until(lambda: fault_server.in_flight == 3)
        time.sleep(0.2)  # give a wrongly admitted fourth call time to show up
        assert fault_server.in_flight == 3
        release.set()
        assert all(f.result(timeout=20).status_code == 200 for f in futures)
    assert fault_server.peak_in_flight == 3
    assert fault_server.hits("/x") == 16


def test_full_bulkhead_raises_pool_timeout_without_io(fault_server, make_session):
    """With every slot busy and no wait allowed, a call raises PoolTimeoutError and sends nothing."""
    release = threading.Event()
    fault_server.route("/x", Hold(release, ok()))
    session = make_session(slots=1, acquire=0.0)
    with ThreadPoolExecutor(max_workers=1) as pool:
        busy = pool.submit(session.get, fault_server.url("/x"))
        wait_until(lambda: fault_server.in_flight == 1)
        with pytest.raises(rr.PoolTimeoutError):
            session.get(fault_server.url("/other"))
        release.set()
        busy.result(timeout=10)
    assert fault_server.hits("/other") == 0


def test_acquisition_waits_up_to_its_timeout(fault_server, make_session):
    """A caller waits for a slot to free up within acquisition_timeout."""
    fault_server.route("/x", ok(delay=0.2))
    session = make_session(slots=1, acquire=10.0)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: session.get(fault_server.url("/x")).status_code, range(2)))
    assert results == [200, 200]
    assert fault_server.peak_in_flight == 1


@pytest.mark.parametrize(
    ("failure", "raised"),
    [
        ("refused", rr.ConnectionError),
        ("circuit_open", rr.CircuitOpenError),
        ("hook", ZeroDivisionError),
        ("invalid_url", requests.exceptions.InvalidURL),
        ("timeout", rr.TimeoutError),
    ],
)
def test_slot_is_given_back_whatever_the_call_raises(fault_server, make_session, failure, raised):
    """After any kind of failure the single slot is free again."""
    threshold = 1 if failure == "circuit_open" else 5
    session = make_session(slots=1, acquire=0.0, attempts=1, threshold=threshold, read=0.1)
    fault_server.route("/hang", Hang(limit=5))
    calls = {
        "refused": lambda: session.get(refused_url()),
        "circuit_open": lambda: session.get(refused_url()),
        "hook": lambda: session.get(fault_server.url("/"), hooks={"response": lambda r, **k: 1 / 0}),
        "invalid_url": lambda: session.get("http://"),
        "timeout": lambda: session.get(fault_server.url("/hang")),
    }
    if failure == "circuit_open":
        url = refused_url()
        with pytest.raises(rr.ConnectionError):
            session.get(url)
        calls["circuit_open"] = lambda: session.get(url)
    with pytest.raises(raised):
        calls[failure]()
    assert session.stats()["bulkhead"]["in_use"] == 0
    assert session.get(fault_server.url("/")).status_code == 200


def test_pools_hold_as_many_connections_as_slots(fault_server, make_session, caplog):
    """32 threads through 32 slots reuse connections without 'Connection pool is full' warnings."""
    caplog.set_level(logging.WARNING, logger="urllib3")
    release = threading.Event()
    fault_server.route("/x", Hold(release, ok()))
    session = make_session(slots=32)
    with ThreadPoolExecutor(max_workers=32) as pool:
        futures = [pool.submit(session.get, fault_server.url("/x")) for _ in range(32)]
        wait_until(lambda: fault_server.in_flight == 32)
        release.set()
        assert all(f.result(timeout=10).status_code == 200 for f in futures)
    assert fault_server.peak_in_flight == 32
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_stream_gives_the_slot_back_when_the_call_returns(fault_server, make_session):
    """With stream=True the slot is free as soon as the response is returned, before the body is read."""
    fault_server.route("/stream", Trickle(chunk=b"x", every=0.01, count=5))
    session = make_session(slots=1, acquire=0.0)
    with session.get(fault_server.url("/stream"), stream=True) as streamed:
        assert session.get(fault_server.url("/")).status_code == 200
        assert streamed.content == b"xxxxx"
