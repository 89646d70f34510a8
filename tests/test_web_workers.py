"""Views on threaded workers: the web preset, sizing the bulkhead from the server's
threads, and an end-to-end run under a real gunicorn (gthread, 2 workers x 8 threads)."""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, List, Tuple

import flask
import pytest
import requests

import resilient_requests as rr
from resilient_requests.contrib._server import bulkhead_for, worker_threads
from resilient_requests.contrib.flask import EXTENSION_KEY, ResilientRequests
from resilient_requests.testing import Hang, ok

ROOT = Path(__file__).resolve().parents[1]


def test_the_web_preset_fits_a_view():
    """A deadline of seconds, retries inside it, a short recovery, a small bulkhead that barely waits."""
    web = rr.preset("web")
    assert web.timeout.total is not None and web.timeout.total <= 5
    assert web.retry.max_attempts * web.timeout.read <= web.timeout.total
    assert web.circuit_breaker.recovery_timeout <= 10
    assert web.bulkhead.max_concurrency < 8 and web.bulkhead.acquisition_timeout <= 0.1


@pytest.mark.parametrize("threads, slots", [(1, 1), (2, 1), (8, 4), (16, 8)])
def test_the_bulkhead_is_half_the_workers_threads(threads, slots):
    """Half the threads, at least one."""
    assert bulkhead_for(threads) == slots


def test_worker_threads_from_the_setting_and_the_environment(monkeypatch):
    """An explicit setting wins, then RESILIENT_REQUESTS_WORKER_THREADS; a bad value names it."""
    monkeypatch.setenv("RESILIENT_REQUESTS_WORKER_THREADS", "6")
    assert worker_threads(12) == 12
    assert worker_threads() == 6
    monkeypatch.setenv("RESILIENT_REQUESTS_WORKER_THREADS", "none")
    with pytest.raises(ValueError, match="RESILIENT_REQUESTS_WORKER_THREADS must be a number of threads"):
        worker_threads()


def _flask_session(**config: object) -> rr.ResilientSession:
    app = flask.Flask(__name__)
    app.config.update(config)
    ResilientRequests(app)
    session: rr.ResilientSession = app.extensions[EXTENSION_KEY]
    return session


def test_flask_with_no_configuration_gets_the_web_preset_sized_to_the_worker():
    """No RESILIENT_REQUESTS_* keys: the web preset, with a bulkhead of half the worker's threads."""
    session = _flask_session(RESILIENT_REQUESTS_WORKER_THREADS=8)
    try:
        assert session.config.timeout == rr.preset("web").timeout
        assert session.config.bulkhead.max_concurrency == 4
    finally:
        session.close()


def test_a_bulkhead_as_wide_as_the_worker_is_warned_about_once(caplog):
    """A chosen preset keeps its bulkhead; one warning says it is not below the worker's threads."""
    caplog.set_level(logging.WARNING, logger="resilient_requests")
    session = _flask_session(RESILIENT_REQUESTS_PRESET="fast_microservice", RESILIENT_REQUESTS_WORKER_THREADS=8)
    try:
        assert session.config.bulkhead.max_concurrency == 100
        warnings = [r for r in caplog.records if "bulkhead" in r.getMessage() and "8 threads" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        session.close()


# -- end to end: a real gunicorn ----------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Gunicorn:
    """gunicorn --worker-class gthread --workers 2 --threads 8 serving tests.web_app."""

    def __init__(self, kind: str, dependency: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "WEB_APP_KIND": kind, "WEB_APP_DEPENDENCY": dependency}
        env.pop("RESILIENT_REQUESTS_WORKER_THREADS", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", "2", "--threads", "8",
             "--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "2", "--log-level", "warning",
             f"tests.web_app:{kind}_app"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"gunicorn did not start: {self.process.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture
def dependency(fault_server):
    """The dependency /checkout calls, answering at first."""
    fault_server.route("/pay", ok("paid"))
    return fault_server


def _load(base: str, stop: threading.Event, clients: int) -> List[threading.Thread]:
    """``clients`` threads calling /checkout until ``stop`` (plain requests, one try each)."""
    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    session.get(base + "/checkout", timeout=10)
                except requests.RequestException:
                    time.sleep(0.01)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def _probe(base: str, until: float, every: float = 0.2) -> List[Tuple[float, int]]:
    """GET /health every ``every`` s until ``until``: (seconds taken, status; 0 = no answer)."""
    seen = []
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            status = requests.get(base + "/health", timeout=5).status_code
        except requests.RequestException:
            status = 0
        seen.append((time.monotonic() - started, status))
        time.sleep(max(0.0, every - (time.monotonic() - started)))
    return seen


@pytest.mark.skipif(sys.platform == "win32", reason="gunicorn runs on POSIX only")
@pytest.mark.parametrize("kind", ["flask", "django"])
def test_a_hung_dependency_leaves_the_worker_free_and_recovery_is_prompt(dependency, kind):
    """Under gunicorn gthread 2x8 with 24 clients on /checkout and the integration
    unconfigured: while the dependency hangs, /health answers every probe within
    0.5 s; once it is back, /checkout succeeds again within the recovery time + 4 s."""
    server = _Gunicorn(kind, dependency.base_url)
    stop = threading.Event()
    load: List[threading.Thread] = []
    try:
        assert requests.get(server.base + "/bulkhead", timeout=5).text == "4"  # half of 8 threads
        assert requests.get(server.base + "/checkout", timeout=5).text == "paid"
        load = _load(server.base, stop, clients=24)
        dependency.route("/pay", Hang(limit=30))
        probes = _probe(server.base, until=time.monotonic() + 6.0)
        dependency.route("/pay", ok("paid"))
        back = time.monotonic()
        recovered = None
        while time.monotonic() - back < 15:
            try:
                if requests.get(server.base + "/checkout", timeout=5).text == "paid":
                    recovered = time.monotonic() - back
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in load:
            thread.join(timeout=15)
        server.stop()
    latencies = sorted(seconds for seconds, _ in probes)
    assert all(status == 200 for _, status in probes), probes
    assert latencies[int(0.99 * (len(latencies) - 1))] <= 0.5, latencies
    recovery = rr.preset("web").circuit_breaker.recovery_timeout
    assert recovered is not None and recovered <= recovery + 4, recovered


@pytest.fixture(autouse=True)
def _no_leftover_env(monkeypatch) -> Iterator[None]:
    """No WORKER_THREADS from the environment leaks into these tests."""
    monkeypatch.delenv("RESILIENT_REQUESTS_WORKER_THREADS", raising=False)
    yield
