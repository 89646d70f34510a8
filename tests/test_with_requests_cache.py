"""requests-cache in front of our layers: a cached answer is never refused.

``class CachedResilientSession(CacheMixin, ResilientSession)``: the cache's ``send``
runs first and answers a fresh hit without sending; our call begins in our ``send``,
only when a request is really about to go out. So a fresh hit is served while the
breaker is open or the bulkhead is full, and ``stale_if_error`` serves a stale one
when the breaker refuses. ``install_cache()`` then ``install()``: ``requests.Session``
is the cache in front of our layers. Real requests-cache (memory backend); what the
FaultServer saw is the evidence.
"""
from __future__ import annotations

import datetime
import threading
from typing import Any, Iterator

import pytest
import requests

import resilient_requests as rr
import resilient_requests.api
from resilient_requests.session import REQUESTS_SESSION
from resilient_requests.testing import FaultServer, Hold, no_waits, ok, status

from .conftest import wait_until

requests_cache = pytest.importorskip("requests_cache", reason="needs requests-cache (the test extra)")

#: url-normalize (requests-cache's) as installed on Python 3.9 asks idna for a deprecated mode.
pytestmark = pytest.mark.filterwarnings("ignore:Transitional processing is deprecated:DeprecationWarning")
CacheMixin = requests_cache.CacheMixin


class CachedResilientSession(CacheMixin, rr.ResilientSession):  # type: ignore[misc, valid-type]
    """The recipe of docs/guides/using-with/requests-cache.md."""


class CachedMixinSession(CacheMixin, rr.ResilientMixin):  # type: ignore[misc, valid-type]
    """The same with the bare mixin."""


def _config(**bulkhead: Any) -> rr.ClientConfig:
    return rr.ClientConfig(
        retry=rr.RetryConfig(max_attempts=1),
        circuit_breaker=rr.CircuitBreakerConfig(failure_threshold=1, recovery_timeout=30),
        bulkhead=rr.BulkheadConfig(**bulkhead) if bulkhead else rr.BulkheadConfig(),
    )


@pytest.fixture(autouse=True)
def _no_waits() -> Iterator[None]:
    with no_waits():
        yield


def _open_the_breaker(session: Any, server: FaultServer) -> None:
    server.route("/broken", status(503))
    session.get(server.url("/broken"))
    assert session.circuit_state(server.url("/")) is rr.CircuitState.OPEN


@pytest.mark.parametrize("cls", [CachedResilientSession, CachedMixinSession])
def test_a_fresh_hit_is_served_while_the_breaker_is_open(fault_server: FaultServer, cls: type) -> None:
    """Cached, then the breaker opens: the hit is served (the server sees no new request);
    a miss is refused as before."""
    fault_server.route("/rates", ok('{"eur": 1.08}'))
    with cls(config=_config(), backend="memory", expire_after=60) as session:
        assert session.get(fault_server.url("/rates")).json() == {"eur": 1.08}
        _open_the_breaker(session, fault_server)
        hit = session.get(fault_server.url("/rates"))
        assert hit.from_cache and hit.json() == {"eur": 1.08}
        with pytest.raises(rr.CircuitOpenError):
            session.get(fault_server.url("/not-cached"))
    assert fault_server.hits("/rates") == 1 and fault_server.hits("/not-cached") == 0


def test_a_fresh_hit_is_served_while_the_bulkhead_is_full(fault_server: FaultServer) -> None:
    """One slot, held by a request the server keeps waiting: a hit is served at once, a
    miss is refused with PoolTimeoutError; the held request ends normally."""
    release = threading.Event()
    fault_server.route("/rates", ok("cached"))
    fault_server.route("/slow", Hold(release, then=ok("slow")))
    answers = []
    with CachedResilientSession(config=_config(max_concurrency=1, acquisition_timeout=0.05),
                                backend="memory", expire_after=60) as session:
        session.get(fault_server.url("/rates"))
        holder = threading.Thread(target=lambda: answers.append(session.get(fault_server.url("/slow")).text))
        holder.start()
        try:
            # hits, not in_flight: the server may still be finishing the first /rates
            # when its answer is back here. The holder takes its slot before sending.
            wait_until(lambda: fault_server.hits("/slow") == 1)
            hit = session.get(fault_server.url("/rates"))
            assert hit.from_cache and hit.text == "cached"
            with pytest.raises(rr.PoolTimeoutError):
                session.get(fault_server.url("/not-cached"))
        finally:
            release.set()
            holder.join(10)
    assert answers == ["slow"]
    assert fault_server.hits("/rates") == 1 and fault_server.hits("/not-cached") == 0


@pytest.mark.parametrize("stale_if_error", [True, False])
def test_stale_if_error_serves_while_the_breaker_is_open(fault_server: FaultServer, stale_if_error: bool) -> None:
    """An expired entry and an open breaker: with ``stale_if_error`` the stale answer is
    served; without it, the refusal is raised. Neither reaches the server."""
    fault_server.route("/rates", ok("v1"))
    with CachedResilientSession(config=_config(), backend="memory", expire_after=60,
                                stale_if_error=stale_if_error) as session:
        session.get(fault_server.url("/rates"))
        _open_the_breaker(session, fault_server)
        session.cache.reset_expiration(datetime.timedelta(seconds=-1))  # every entry expired
        if stale_if_error:
            stale = session.get(fault_server.url("/rates"))
            assert stale.from_cache and stale.is_expired and stale.text == "v1"
        else:
            with pytest.raises(rr.CircuitOpenError):
                session.get(fault_server.url("/rates"))
    assert fault_server.hits("/rates") == 1


def test_misses_are_retried_and_stored(fault_server: FaultServer) -> None:
    """A miss goes through the retry loop; what it finally got is what the cache stores."""
    fault_server.route("/rates", status(503), ok("fine"))
    config = rr.ClientConfig(retry=rr.RetryConfig(max_attempts=3, min_wait=0.001, max_wait=0.01))
    with CachedResilientSession(config=config, backend="memory", expire_after=60) as session:
        assert session.get(fault_server.url("/rates")).text == "fine"
        assert session.get(fault_server.url("/rates")).from_cache
    assert fault_server.hits("/rates") == 2


@pytest.fixture
def cache_then_install(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``install_cache()``, then ``install()``; both undone after the test."""
    monkeypatch.setattr(resilient_requests.api, "_shared", resilient_requests.api._shared)  # install() configures
    requests_cache.install_cache(backend="memory", expire_after=60)
    try:
        rr.install(_config())
        try:
            yield
        finally:
            rr.uninstall()
    finally:
        requests_cache.uninstall_cache()
    assert requests.Session is REQUESTS_SESSION


def test_install_cache_then_install_keeps_the_cache_in_front(
        fault_server: FaultServer, cache_then_install: None) -> None:
    """``requests.Session()`` is cached and resilient: the breaker opens, a hit is still served."""
    fault_server.route("/rates", ok("cached"))
    with requests.Session() as session:
        assert isinstance(session, CacheMixin) and isinstance(session, rr.ResilientMixin)
        session.get(fault_server.url("/rates"))
        assert session.get(fault_server.url("/rates")).from_cache
        _open_the_breaker(session, fault_server)
        assert session.get(fault_server.url("/rates")).from_cache
        with pytest.raises(rr.CircuitOpenError):
            session.get(fault_server.url("/not-cached"))
    assert fault_server.hits("/rates") == 1


def test_install_cache_then_install_keeps_requests_get_cached(
        fault_server: FaultServer, cache_then_install: None) -> None:
    """``requests.get`` twice: one request reaches the server, as with install_cache() alone."""
    fault_server.route("/rates", ok("cached"))
    requests.get(fault_server.url("/rates"))
    second = requests.get(fault_server.url("/rates"))
    assert fault_server.hits("/rates") == 1
    assert second.from_cache


def test_install_cache_alone_leaves_our_sessions_uncached(fault_server: FaultServer) -> None:
    """The intended difference: ``install_cache()`` swaps ``requests.Session``, which our
    classes do not look up (use the mixin recipe, or ``install()`` after it)."""
    requests_cache.install_cache(backend="memory", expire_after=60)
    try:
        with rr.ResilientSession(_config()) as session:
            session.get(fault_server.url("/rates"))
            assert not getattr(session.get(fault_server.url("/rates")), "from_cache", False)
    finally:
        requests_cache.uninstall_cache()
    assert fault_server.hits("/rates") == 2
