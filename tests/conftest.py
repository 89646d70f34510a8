"""Shared fixtures. The ``fault_server`` fixture comes from the package's own
pytest plugin (resilient_requests.testing.pytest_plugin)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from typing import Any, Callable, Iterator, List

import pytest

import resilient_requests as rr
from resilient_requests import (
    BulkheadConfig,
    CircuitBreakerConfig,
    ClientConfig,
    ResilientSession,
    RetryConfig,
    TimeoutConfig,
)

#: pytester runs small suites as a user's would (the plugin's fixtures in use).
pytest_plugins = ["pytester"]


def pytest_collection_modifyitems(session: Any, config: Any, items: List[Any]) -> None:
    """When requests' own suite is among the tests to run, start it now, beside the others."""
    if any(item.nodeid.startswith("tests/test_requests_suite.py") for item in items):
        from . import test_requests_suite

        test_requests_suite.start()


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    """Whatever happened, requests' suite is not left running."""
    from . import test_requests_suite

    test_requests_suite.stop()


def wait_until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    """Poll ``condition`` (a server-side counter, say) every 5 ms until it holds;
    fail the test if it does not within ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def sockets_to(port: int) -> int:
    """Sockets of this process connected to ``port`` (in any TCP state until closed):
    its descriptors in /proc/self/fd, matched by inode to /proc/net/tcp's remote ports."""
    inodes = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the listing's own descriptor, closed already
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as lines:
            next(lines)  # the header
            for line in lines:
                fields = line.split()  # sl local_address rem_address st ... uid timeout inode
                if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                    count += 1
    return count


def fast_config(
    *,
    attempts: int = 3,
    threshold: int = 5,
    recovery: float = 30.0,
    slots: int = 50,
    acquire: float = 5.0,
    read: float = 5.0,
    **fields: Any,
) -> ClientConfig:
    """Defaults with millisecond waits, so retries do not slow the suite."""
    return ClientConfig(
        timeout=TimeoutConfig(connect=2.0, read=read, write=2.0, pool=2.0),
        retry=RetryConfig(max_attempts=attempts, min_wait=0.001, max_wait=0.01),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=threshold, recovery_timeout=recovery),
        bulkhead=BulkheadConfig(max_concurrency=slots, acquisition_timeout=acquire),
        **fields,
    )


@pytest.fixture(autouse=True)
def fresh_compartments() -> Iterator[None]:
    """Every test starts and ends with an empty process-wide registry: no
    breaker or bulkhead state passes from one test to the next."""
    rr.reset()
    yield
    rr.reset()


@pytest.fixture
def make_session() -> Iterator[Callable[..., ResilientSession]]:
    """Build sessions from ``fast_config(**kwargs)``; all are closed after the test."""
    made: List[ResilientSession] = []

    def make(config: Any = None, **kwargs: Any) -> ResilientSession:
        session = ResilientSession(config if config is not None else fast_config(**kwargs))
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()


@pytest.fixture(scope="module")
def authority() -> Any:
    """A throwaway certificate authority (trustme)."""
    import trustme

    return trustme.CA()


@pytest.fixture
def tls_origin(authority: Any) -> Iterator[Any]:
    """A FaultServer speaking HTTPS with a certificate for 127.0.0.1 from ``authority``."""
    import ssl

    from resilient_requests.testing import FaultServer

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    with FaultServer(ssl_context=context) as server:
        yield server


#: Marks tests that run a real redis-server.
NEEDS_REDIS = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="needs redis-server (Debian: apt-get install redis-server; .ci/run installs it)",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisProcess:
    """A throwaway redis-server on a loopback port, no persistence."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: "subprocess.Popen[bytes] | None" = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisProcess]:
    """A started redis-server, stopped after the test."""
    server = RedisProcess(_free_port())
    server.start()
    yield server
    server.stop()
