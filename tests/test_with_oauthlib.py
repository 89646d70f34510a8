"""requests-oauthlib's ``OAuth2Session`` with our layers, in either base order:
``config=`` passes through, the token refresh works, and ``deadline=`` applies to
the call and never reaches the token endpoint (requests-oauthlib sends arguments
it does not know there as form fields).

Real requests-oauthlib; a FaultServer is both the token endpoint and the API, and
the bodies and headers it saw are the evidence. OAuth2 insists on https; the
loopback server speaks http, so the tests set ``OAUTHLIB_INSECURE_TRANSPORT``.
"""
from __future__ import annotations

import json
import time
from typing import Any, Dict, List

import pytest
import requests

import resilient_requests as rr
from resilient_requests.testing import FaultServer, Trickle, no_waits, ok, status

oauthlib = pytest.importorskip("requests_oauthlib", reason="needs requests-oauthlib (the test extra)")
OAuth2Session = oauthlib.OAuth2Session

CONFIG = rr.ClientConfig(retry=rr.RetryConfig(max_attempts=4, min_wait=0.001, max_wait=0.01))


class OAuthFirst(OAuth2Session, rr.ResilientMixin):  # type: ignore[misc, valid-type]
    """requests-oauthlib's request first, then ours."""


class OursFirst(rr.ResilientMixin, OAuth2Session):  # type: ignore[misc, valid-type]
    """Ours first, then requests-oauthlib's."""


class OAuthThenSession(OAuth2Session, rr.ResilientSession):  # type: ignore[misc, valid-type]
    """With ResilientSession instead of the bare mixin."""


class SessionThenOAuth(rr.ResilientSession, OAuth2Session):  # type: ignore[misc, valid-type]
    """The order that raised TypeError before ResilientMixin."""


CLASSES = [OAuthFirst, OursFirst, OAuthThenSession, SessionThenOAuth]
TOKEN = {"access_token": "new", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "r2"}


@pytest.fixture(autouse=True)
def _loopback_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture(autouse=True)
def _no_waits() -> Any:
    with no_waits():
        yield


def _expired(server: FaultServer, cls: Any, updates: List[Dict[str, Any]], **kwargs: Any) -> Any:
    server.route("/token", ok(json.dumps(TOKEN), **{"Content-Type": "application/json"}))
    return cls(client_id="shop", auto_refresh_url=server.url("/token"), token_updater=updates.append,
               token={"access_token": "old", "token_type": "Bearer", "expires_at": time.time() - 10,
                      "refresh_token": "r1"}, **kwargs)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_an_expired_token_is_refreshed_and_the_call_retried(fault_server: FaultServer, cls: Any) -> None:
    """``config=`` is taken by our mixin (4 attempts); the expired token is refreshed once;
    the API's 503s are retried with the new token."""
    updates: List[Dict[str, Any]] = []
    fault_server.route("/orders", status(503), status(503), ok("orders"))
    with _expired(fault_server, cls, updates, config=CONFIG) as session:
        assert session.config is CONFIG
        assert session.get(fault_server.url("/orders")).text == "orders"
    assert [update["access_token"] for update in updates] == ["new"]
    assert fault_server.hits("/token") == 1 and fault_server.hits("/orders") == 3
    assert {seen.headers["Authorization"] for seen in fault_server.requests if seen.path == "/orders"} == \
        {"Bearer new"}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_deadline_never_reaches_the_token_endpoint(fault_server: FaultServer, cls: Any) -> None:
    """With an expired token, ``get(..., deadline=5)``: the token request's body is the one
    plain requests-oauthlib sends for the same call (no ``deadline`` field)."""
    with _expired(fault_server, OAuth2Session, []) as plain:
        plain.get(fault_server.url("/orders"))
    [baseline] = [seen.body for seen in fault_server.requests if seen.path == "/token"]
    fault_server.reset_counts()
    with _expired(fault_server, cls, [], config=CONFIG) as session:
        assert session.get(fault_server.url("/orders"), deadline=5).status_code == 200
    [body] = [seen.body for seen in fault_server.requests if seen.path == "/token"]
    assert b"deadline" not in body
    assert body == baseline




@pytest.mark.parametrize("cls", [OAuthFirst, OursFirst, OAuthThenSession, SessionThenOAuth],
                         ids=lambda cls: cls.__name__)
def test_deadline_bounds_the_call(fault_server: FaultServer, cls: Any) -> None:
    """The deadline reaches our layers: a reply that trickles for 1 s is cut off."""
    fault_server.route("/slow", Trickle(b"x", every=0.05, count=20))
    with _expired(fault_server, cls, [], config=CONFIG) as session:
        with pytest.raises(rr.DeadlineExceededError):
            session.get(fault_server.url("/slow"), deadline=0.3)
    assert fault_server.hits("/token") == 1


def test_a_post_with_a_token_is_sent_once_on_503(fault_server: FaultServer) -> None:
    """Our POST rule holds through OAuth2Session: a 503 to a POST is not sent again."""
    fault_server.route("/orders", status(503))
    with _expired(fault_server, OursFirst, [], config=CONFIG) as session:
        assert session.post(fault_server.url("/orders"), json={"sku": 7}).status_code == 503
    assert fault_server.hits("/orders", "POST") == 1


def test_the_breaker_applies_to_the_api(fault_server: FaultServer) -> None:
    """After the threshold of failures, the API's calls are refused without a request."""
    config = rr.ClientConfig(retry=rr.RetryConfig(max_attempts=1),
                             circuit_breaker=rr.CircuitBreakerConfig(failure_threshold=2))
    fault_server.route("/orders", status(503))
    with _expired(fault_server, OAuthFirst, [], config=config) as session:
        session.get(fault_server.url("/orders"))
        session.get(fault_server.url("/orders"))
        with pytest.raises(rr.CircuitOpenError):
            session.get(fault_server.url("/orders"))
    assert fault_server.hits("/orders") == 2
    assert isinstance(requests.Session(), requests.Session)  # nothing installed on the side
