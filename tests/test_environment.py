"""Proxies from the environment: looked up once per origin, and re-read when the environment changes."""
from __future__ import annotations

from resilient_requests.testing import FaultServer


def _proxied_paths(proxy: FaultServer):
    return [r.path for r in proxy.requests]


def test_env_proxy_is_used_and_a_change_is_noticed(fault_server, make_session, monkeypatch):
    """http_proxy routes calls through the proxy; unsetting it sends the next call direct."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    session = make_session()
    target = fault_server.url("/direct")
    with FaultServer() as proxy:
        monkeypatch.setenv("http_proxy", proxy.base_url)
        session.get(target)
        session.get(target)
        assert _proxied_paths(proxy) == [target, target]  # a proxy sees the absolute URL
        monkeypatch.delenv("http_proxy")
        session.get(target)
        assert len(_proxied_paths(proxy)) == 2
    assert fault_server.hits("/direct") == 1


def test_no_proxy_change_is_noticed(fault_server, make_session, monkeypatch):
    """Adding the target to no_proxy bypasses the proxy from the next call on."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    session = make_session()
    with FaultServer() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
        session.get(fault_server.url("/x"))
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        session.get(fault_server.url("/x"))
        assert len(proxy.requests) == 1
    assert fault_server.hits("/x") == 1


def test_trust_env_false_ignores_the_environment(fault_server, make_session, monkeypatch):
    """With trust_env=False the environment's proxy is not used."""
    with FaultServer() as proxy:
        monkeypatch.setenv("http_proxy", proxy.base_url)
        session = make_session()
        session.trust_env = False
        session.get(fault_server.url("/x"))
        assert proxy.requests == []
    assert fault_server.hits("/x") == 1
