"""Proxies from the environment: looked up once per origin, and re-read when the environment changes."""
from __future__ import annotations

import requests
import requests.auth

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


def _authorization(server: FaultServer):
    return [r.headers.get("Authorization") for r in server.requests]


def test_a_netrc_file_is_read_as_requests_reads_it_even_when_made_or_changed_meanwhile(
        fault_server, make_session, monkeypatch, tmp_path):
    """The netrc lookup keeps only its paths: a file created, changed or moved (NETRC, HOME)
    while the process runs is seen on the next call, as with plain requests."""
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    session = make_session()
    url = fault_server.url("/n")
    session.get(url)                                                  # no netrc file yet
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login alice password one\n")
    session.get(url)                                                  # created since: used
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login alice password two\n")
    session.get(url)                                                  # changed: read again
    elsewhere = tmp_path / "other"
    elsewhere.write_text("machine 127.0.0.1 login bob password three\n")
    monkeypatch.setenv("NETRC", str(elsewhere))
    session.get(url)                                                  # NETRC now points elsewhere
    session.trust_env = False
    session.get(url)                                                  # trust_env off: no netrc
    plain = requests.Session()
    monkeypatch.delenv("NETRC")
    expected_last = plain.prepare_request(requests.Request("GET", url)).headers.get("Authorization")
    assert _authorization(fault_server) == [
        None,
        requests.auth._basic_auth_str("alice", "one"),
        requests.auth._basic_auth_str("alice", "two"),
        requests.auth._basic_auth_str("bob", "three"),
        None,
    ]
    assert expected_last == requests.auth._basic_auth_str("alice", "two")  # plain requests agrees
