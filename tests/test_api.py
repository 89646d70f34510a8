"""The module-level API: `import resilient_requests as requests` as a whole migration."""
from __future__ import annotations

import inspect
from typing import Iterator

import pytest
import requests

import resilient_requests as rr
from resilient_requests.testing import Echo, Reply, redirect, refused_url, status

from .conftest import fast_config


@pytest.fixture(autouse=True)
def fresh_module_state() -> Iterator[None]:
    """Each test starts and ends with the module-level API on fresh defaults."""
    rr.configure(fast_config())
    yield
    rr.configure()


@pytest.mark.parametrize("name", ["request", "get", "options", "head", "post", "put", "patch", "delete"])
def test_module_functions_have_requests_signatures(name):
    """Each module-level function takes the same parameters as requests' own."""
    ours = inspect.signature(getattr(rr, name)).parameters
    theirs = inspect.signature(getattr(requests, name)).parameters
    assert list(ours) == list(theirs)


@pytest.mark.parametrize("method", ["get", "options", "head", "post", "put", "patch", "delete"])
def test_module_functions_send_their_method(fault_server, method):
    """rr.get/post/... send the matching HTTP method."""
    assert getattr(rr, method)(fault_server.url("/m")).status_code == 200
    assert fault_server.hits("/m", method.upper()) == 1


def test_no_cookie_passes_from_one_call_to_the_next(fault_server):
    """A cookie set in one module-level call is not sent on the next."""
    fault_server.route("/login", Reply(200, b"in", {"Set-Cookie": "sid=user-a; Path=/"}))
    fault_server.route("/me", Echo())
    rr.get(fault_server.url("/login"))
    assert "Cookie" not in rr.get(fault_server.url("/me")).json()["headers"]


def test_breakers_are_shared_between_calls():
    """An outage seen by earlier module-level calls makes later ones fail fast."""
    rr.configure(fast_config(attempts=1, threshold=2))
    url = refused_url("/x")
    for _ in range(2):
        with pytest.raises(rr.ConnectionError):
            rr.get(url)
    with pytest.raises(rr.CircuitOpenError):
        rr.get(url)


def test_configure_starts_on_fresh_breakers(fault_server):
    """configure() replaces the config and forgets open breakers."""
    rr.configure(fast_config(attempts=1, threshold=1))
    fault_server.route("/x", status(503))
    rr.get(fault_server.url("/x"))
    with pytest.raises(rr.CircuitOpenError):
        rr.get(fault_server.url("/x"))
    rr.configure(fast_config(attempts=2, threshold=5))
    assert rr.get(fault_server.url("/x")).status_code == 503
    assert fault_server.hits("/x") == 3


def test_configure_rejects_other_types():
    """configure() names a wrong argument type."""
    with pytest.raises(TypeError, match="ClientConfig"):
        rr.configure({"retry": 1})  # type: ignore[arg-type]


def test_module_level_calls_retry(fault_server):
    """rr.get retries a 503 like a session does."""
    fault_server.route("/x", status(503), Reply(200, b"ok"))
    assert rr.get(fault_server.url("/x")).status_code == 200
    assert fault_server.hits("/x") == 2


def test_head_does_not_follow_redirects_by_default(fault_server):
    """rr.head, like requests.head, returns the redirect itself."""
    fault_server.route("/old", redirect("/new"))
    assert rr.head(fault_server.url("/old")).status_code == 302
    assert rr.get(fault_server.url("/old")).status_code == 200


def test_old_script_names_resolve():
    """The names old scripts take from requests exist on the module."""
    for name in ("Session", "session", "codes", "Request", "Response", "PreparedRequest",
                 "RequestException", "HTTPError", "Timeout", "ConnectTimeout", "ReadTimeout",
                 "TooManyRedirects", "ConnectionError", "exceptions", "adapters", "auth", "utils"):
        assert hasattr(rr, name), name
    assert rr.codes.ok == 200
    assert issubclass(rr.ConnectionError, requests.ConnectionError)
    assert isinstance(rr.session(), rr.ResilientSession)
    assert rr.exceptions.ReadTimeout is requests.exceptions.ReadTimeout
