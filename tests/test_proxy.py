"""Calls through a real forwarding proxy and CONNECT tunnel on 127.0.0.1
(resilient_requests.testing.ForwardProxy): a request the proxy may have
delivered is never sent again unless it is idempotent; one that provably never
left (the proxy refused the connection, did not accept it, or refused the
CONNECT) is retried for every method."""
from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterator, List

import pytest
import requests
import trustme
import urllib3

import resilient_requests as rr
from resilient_requests.errors import RetryWhen, causes, classify
from resilient_requests.testing import ForwardProxy, Reset, Trickle, ok, refused_url

from .conftest import fast_config

ATTEMPTS = 3


@pytest.fixture
def ca_file(authority: trustme.CA, tmp_path: Any) -> str:
    """The authority's certificate as a file, for ``verify=``."""
    path = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def make_proxy() -> Iterator[Callable[..., ForwardProxy]]:
    """Start ForwardProxy(*args, **kwargs) instances; all are stopped after the test."""
    started: List[ForwardProxy] = []

    def make(*args: Any, **kwargs: Any) -> ForwardProxy:
        proxy = ForwardProxy(*args, **kwargs).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture
def session(make_session: Callable[..., rr.ResilientSession]) -> rr.ResilientSession:
    """A session with millisecond waits, ATTEMPTS attempts and a breaker that stays closed."""
    return make_session(attempts=ATTEMPTS, threshold=100)


def retries(session: rr.ResilientSession) -> int:
    """The retries the session made (all its calls go to one origin)."""
    (origin,) = session.stats()["origins"].values()
    return int(origin["retries"])


KINDS: Dict[str, Dict[str, Any]] = {
    "GET": {"method": "GET", "headers": {}},
    "POST+key": {"method": "POST", "headers": {"Idempotency-Key": "k-1"}},
}


# -- the proxy may have delivered the request: a plain POST goes out once --

@pytest.mark.parametrize("mode", ["reset", "close"])
def test_post_reaches_origin_once_when_http_proxy_drops_client_after_forwarding(
        fault_server, make_proxy, session, mode):
    """A POST the proxy forwarded before resetting/closing the client is not sent again."""
    fault_server.route("/x", ok())
    proxy = make_proxy(mode)
    with pytest.raises(rr.ConnectionError) as raised:
        session.post(fault_server.url("/x"), data=b"payload", proxies={"http": proxy.url})
    assert isinstance(raised.value, requests.exceptions.ProxyError)
    assert fault_server.hits("/x") == 1
    assert proxy.requests == 1
    assert retries(session) == 0


@pytest.mark.parametrize("mode", ["reset", "close"])
def test_post_reaches_origin_once_when_tunnel_drops_client_after_request(
        tls_origin, ca_file, make_proxy, session, mode):
    """An HTTPS POST the tunnel carried before the client's side was reset/closed is not sent again."""
    tls_origin.route("/x", Reset())  # reads the request, then ends the tunnel's far side
    proxy = make_proxy(mode)
    with pytest.raises(rr.ConnectionError):
        session.post(tls_origin.url("/x"), data=b"payload", proxies={"https": proxy.url}, verify=ca_file)
    assert tls_origin.hits("/x") == 1
    assert proxy.connects == 1


def test_post_reaches_origin_once_with_proxy_from_environment(fault_server, make_proxy, make_session,
                                                             monkeypatch):
    """HTTP_PROXY (trust_env, the default) gets the same at-most-once guarantee as proxies=."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    fault_server.route("/x", ok())
    proxy = make_proxy("reset")
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    session = make_session(attempts=ATTEMPTS, threshold=100)
    assert session.trust_env
    with pytest.raises(rr.ConnectionError):
        session.post(fault_server.url("/x"), data=b"payload")
    assert proxy.requests == 1  # it went through the proxy
    assert fault_server.hits("/x") == 1


# -- idempotent requests are still retried after such a proxy error --

@pytest.mark.parametrize("kind", KINDS)
def test_idempotent_request_is_retried_when_http_proxy_resets_after_forwarding(
        fault_server, make_proxy, session, kind):
    """A GET, or a POST with an Idempotency-Key, is retried after the proxy reset the client."""
    fault_server.route("/x", ok())
    proxy = make_proxy("reset")
    with pytest.raises(rr.ConnectionError):
        session.request(KINDS[kind]["method"], fault_server.url("/x"), data=b"payload",
                        headers=KINDS[kind]["headers"], proxies={"http": proxy.url})
    assert fault_server.hits("/x") == ATTEMPTS
    assert proxy.requests == ATTEMPTS


@pytest.mark.parametrize("kind", KINDS)
def test_idempotent_request_is_retried_when_tunnel_resets_after_request(
        tls_origin, ca_file, make_proxy, session, kind):
    """A GET, or a POST with an Idempotency-Key, is retried after the tunnel's client side was reset."""
    tls_origin.route("/x", Reset())
    proxy = make_proxy("reset")
    with pytest.raises(rr.ConnectionError):
        session.request(KINDS[kind]["method"], tls_origin.url("/x"), data=b"payload",
                        headers=KINDS[kind]["headers"], proxies={"https": proxy.url}, verify=ca_file)
    assert tls_origin.hits("/x") == ATTEMPTS
    assert proxy.connects == ATTEMPTS


# -- the request provably never left: retried for every method --

@pytest.mark.parametrize("scheme", ["http", "https"])
def test_post_is_retried_when_the_proxy_port_is_refused(fault_server, session, scheme):
    """Nothing listens on the proxy's port: the POST never left, so it is retried; a ConnectionError."""
    proxy_url = refused_url().rstrip("/")
    with pytest.raises(rr.ConnectionError) as raised:
        session.post(fault_server.url("/x"), data=b"payload", proxies={"http": proxy_url, "https": proxy_url})
    assert isinstance(raised.value, requests.exceptions.ProxyError)
    assert not isinstance(raised.value, rr.TimeoutError)
    assert retries(session) == ATTEMPTS - 1
    assert fault_server.hits() == 0


@contextlib.contextmanager
def stalled_proxy_port() -> Iterator[int]:
    """A loopback port whose accept queue is full: connecting to it times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: List[socket.socket] = []
    try:
        for _ in range(16):
            filler = socket.socket()
            fillers.append(filler)
            filler.settimeout(0.2)
            try:
                filler.connect(("127.0.0.1", port))
            except socket.timeout:
                break  # the queue is full: the kernel drops further SYNs
        else:
            pytest.skip("could not fill the accept queue of a loopback listener")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_post_is_retried_when_connecting_to_the_proxy_times_out(fault_server, make_session):
    """The proxy never accepts the connection: the POST is retried and ends in a TimeoutError."""
    config = fast_config(attempts=ATTEMPTS, threshold=100)
    config.timeout = rr.TimeoutConfig(connect=0.2, read=2.0, write=2.0, pool=2.0)
    session = make_session(config)
    with stalled_proxy_port() as port:
        with pytest.raises(rr.TimeoutError) as raised:
            session.post(fault_server.url("/x"), data=b"payload",
                         proxies={"http": f"http://127.0.0.1:{port}"})
    assert isinstance(raised.value, rr.ConnectionError)
    assert retries(session) == ATTEMPTS - 1
    assert fault_server.hits() == 0


@pytest.mark.parametrize("status", [502, 407])
def test_post_is_retried_when_the_proxy_refuses_the_connect(tls_origin, ca_file, make_proxy, session, status):
    """A CONNECT answered with an error status carried nothing: the POST is retried; the origin sees none."""
    proxy = make_proxy("refuse", status=status)
    with pytest.raises(rr.ConnectionError) as raised:
        session.post(tls_origin.url("/x"), data=b"payload", proxies={"https": proxy.url}, verify=ca_file)
    assert f"Tunnel connection failed: {status}" in str(raised.value)
    assert proxy.connects == ATTEMPTS
    assert tls_origin.hits() == 0


# -- the classification itself, from plain requests' errors --

def plain_failure(url: str, proxies: Dict[str, str], **kwargs: Any) -> BaseException:
    """The exception plain requests raises for a POST to ``url`` through ``proxies``."""
    with requests.Session() as plain:
        plain.trust_env = False
        with pytest.raises(requests.exceptions.ProxyError) as raised:
            plain.post(url, data=b"payload", proxies=proxies, timeout=(0.2, 2), **kwargs)
    return raised.value


def wrapped(exc: BaseException) -> BaseException:
    """The error urllib3's ProxyError ("Unable to connect to proxy") wraps."""
    return next(c.original_error for c in causes(exc) if isinstance(c, urllib3.exceptions.ProxyError))


@pytest.mark.parametrize("mode", ["reset", "close"])
def test_drop_after_forwarding_is_a_proxy_error_that_may_have_reached(fault_server, make_proxy, mode):
    """A reset/close after forwarding ("Unable to connect to proxy") may have reached: idempotent only."""
    proxy = make_proxy(mode)
    exc = plain_failure(fault_server.url("/x"), {"http": proxy.url})
    assert isinstance(wrapped(exc), (ConnectionResetError, http.client.RemoteDisconnected))
    assert fault_server.hits("/x") == 1
    verdict = classify(exc)
    assert (verdict.reached, verdict.retry, verdict.breaker, verdict.raise_as) == (
        True, RetryWhen.IDEMPOTENT, True, (rr.ConnectionError,))


def test_refused_proxy_port_never_reached(fault_server):
    """A refused connection to the proxy (NewConnectionError inside) never reached: always retried."""
    exc = plain_failure(fault_server.url("/x"), {"http": refused_url().rstrip("/")})
    assert isinstance(wrapped(exc), urllib3.exceptions.NewConnectionError)
    verdict = classify(exc)
    assert (verdict.reached, verdict.retry, verdict.breaker, verdict.raise_as) == (
        False, RetryWhen.ALWAYS, True, (rr.ConnectionError,))


def test_proxy_connect_timeout_never_reached(fault_server):
    """A connect timeout to the proxy (ConnectTimeoutError inside) never reached: a timeout, always retried."""
    with stalled_proxy_port() as port:
        exc = plain_failure(fault_server.url("/x"), {"http": f"http://127.0.0.1:{port}"})
    assert type(wrapped(exc)) is urllib3.exceptions.ConnectTimeoutError
    verdict = classify(exc)
    assert (verdict.reached, verdict.retry, verdict.breaker, verdict.raise_as) == (
        False, RetryWhen.ALWAYS, True, (rr.TimeoutError, rr.ConnectionError))


def test_refused_connect_never_reached(tls_origin, ca_file, make_proxy):
    """A CONNECT answered 407 (http.client's "Tunnel connection failed") never reached: always retried."""
    proxy = make_proxy("refuse", status=407)
    exc = plain_failure(tls_origin.url("/x"), {"https": proxy.url}, verify=ca_file)
    assert str(wrapped(exc)) == "Tunnel connection failed: 407 Proxy Authentication Required"
    verdict = classify(exc)
    assert (verdict.reached, verdict.retry, verdict.breaker, verdict.raise_as) == (
        False, RetryWhen.ALWAYS, True, (rr.ConnectionError,))


# -- the proxy itself --

def test_forwarding_and_tunnelling_proxy_relays_and_counts(fault_server, tls_origin, ca_file, make_proxy,
                                                           session):
    """In "forward" mode both kinds of client get the origin's answer; the proxy counts each."""
    fault_server.route("/plain", ok("plain"))
    tls_origin.route("/tls", ok("tls"))
    proxy = make_proxy()
    proxies = {"http": proxy.url, "https": proxy.url}
    assert session.post(fault_server.url("/plain"), data=b"p", proxies=proxies).text == "plain"
    assert session.get(tls_origin.url("/tls"), proxies=proxies, verify=ca_file).text == "tls"
    assert (proxy.requests, proxy.connects) == (1, 1)
    assert proxy.seen == [f"POST {fault_server.url('/plain')}", f"CONNECT 127.0.0.1:{tls_origin.port}"]
    assert fault_server.requests[0].body == b"p"


def test_forwarding_proxy_answers_502_for_an_unreachable_origin(make_proxy, session):
    """A forwarding proxy that cannot reach the origin answers 502 itself: a response, not an error."""
    proxy = make_proxy()
    response = session.post(refused_url("/x"), data=b"p", proxies={"http": proxy.url})
    assert response.status_code == 502
    assert proxy.requests == 1  # a POST's 502 is not retried


def test_stop_ends_every_thread_and_connection(tls_origin):
    """Leaving the proxy's with-block ends its threads, an open tunnel included."""
    with ForwardProxy() as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port)) as client:
            client.sendall(f"CONNECT 127.0.0.1:{tls_origin.port} HTTP/1.1\r\n\r\n".encode())
            assert client.recv(64).startswith(b"HTTP/1.1 200")
            name = f"ForwardProxy:{proxy.port}"
            assert any(t.name.startswith(name) for t in threading.enumerate())
            proxy.stop()
            assert client.recv(64) == b""  # the tunnel was shut down
    assert not [t for t in threading.enumerate() if t.name.startswith(name)]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_deadline_ends_a_trickling_reply_through_a_proxy(fault_server, tls_origin, make_proxy, make_session,
                                                            ca_file, scheme):
    """Through a forwarding proxy or a CONNECT tunnel, the call's deadline still
    ends a reply that trickles one byte every 50 ms."""
    origin = fault_server if scheme == "http" else tls_origin
    origin.route("/slow", Trickle(chunk=b"x", every=0.05, count=100))  # 5 s
    proxy = make_proxy("forward")
    session = make_session(attempts=1)
    started = time.monotonic()
    with pytest.raises(rr.DeadlineExceededError):
        session.get(origin.url("/slow"), deadline=0.5, proxies={scheme: proxy.url},
                    verify=ca_file if scheme == "https" else True)
    assert time.monotonic() - started < 2.0
