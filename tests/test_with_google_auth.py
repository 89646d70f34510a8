"""google-auth's ``AuthorizedSession`` with our layers, in either base order: the
credentials' token on every request, a refresh on 401, our retries and breaker
around each request, ``deadline=`` applied.

The credentials are a tiny subclass of ``google.auth.credentials.Credentials``
whose refresh makes the next token without any network. Real google-auth; what
the FaultServer saw is the evidence.
"""
from __future__ import annotations

import warnings
from typing import Any

import pytest

import resilient_requests as rr
from resilient_requests.testing import FaultServer, Trickle, no_waits, ok, status

with warnings.catch_warnings():
    # google-auth warns at import on Python 3.9 (past its end of life, for Google): not ours to fix.
    warnings.simplefilter("ignore", FutureWarning)
    pytest.importorskip("google.auth", reason="needs google-auth (the test extra)")
    from google.auth.credentials import Credentials
    from google.auth.transport.requests import AuthorizedSession

CONFIG = rr.ClientConfig(retry=rr.RetryConfig(max_attempts=3, min_wait=0.001, max_wait=0.01))


class NumberedTokens(Credentials):  # type: ignore[misc]
    """Token ``t1``, then ``t2`` after a refresh, ...: no network."""

    def __init__(self) -> None:
        super().__init__()
        self.refreshes = 0

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        self.token = f"t{self.refreshes}"


class OursThenGoogle(rr.ResilientMixin, AuthorizedSession):  # type: ignore[misc, valid-type]
    """Ours first: ``config=`` is taken here, the credentials go on to google-auth."""


class GoogleThenOurs(AuthorizedSession, rr.ResilientMixin):  # type: ignore[misc, valid-type]
    """google-auth first: its ``__init__`` takes no other keyword, so the config is the class's."""

    default_config = CONFIG


def _session(cls: Any, credentials: NumberedTokens) -> Any:
    return cls(credentials, config=CONFIG) if cls is OursThenGoogle else cls(credentials)


@pytest.fixture(autouse=True)
def _no_waits() -> Any:
    with no_waits():
        yield


@pytest.mark.parametrize("cls", [OursThenGoogle, GoogleThenOurs], ids=lambda cls: cls.__name__)
def test_a_401_refreshes_the_token_and_a_503_is_retried(fault_server: FaultServer, cls: Any) -> None:
    """401 with ``t1``: google-auth refreshes and asks again with ``t2``; that meets a 503,
    which our layers retry: three requests, the last answered."""
    fault_server.route("/v1/buckets", status(401), status(503), ok("buckets"))
    credentials = NumberedTokens()
    with _session(cls, credentials) as session:
        assert session.config is CONFIG
        assert session.get(fault_server.url("/v1/buckets")).text == "buckets"
    assert credentials.refreshes == 2
    sent = [{name.lower(): value for name, value in seen.headers.items()} for seen in fault_server.requests]
    assert [headers["authorization"] for headers in sent] == ["Bearer t1", "Bearer t2", "Bearer t2"]


@pytest.mark.parametrize("cls", [OursThenGoogle, GoogleThenOurs], ids=lambda cls: cls.__name__)
def test_the_breaker_applies(fault_server: FaultServer, cls: Any) -> None:
    """Five failed requests to the origin (two calls of three attempts, capped): refused after."""
    fault_server.route("/v1/down", status(503))
    with _session(cls, NumberedTokens()) as session:
        for _ in range(2):
            assert session.get(fault_server.url("/v1/down")).status_code == 503
        with pytest.raises(rr.CircuitOpenError):
            session.get(fault_server.url("/v1/down"))
    assert fault_server.hits("/v1/down") == 5


@pytest.mark.parametrize("cls", [OursThenGoogle, GoogleThenOurs], ids=lambda cls: cls.__name__)
def test_deadline_bounds_the_call(fault_server: FaultServer, cls: Any) -> None:
    """google-auth passes ``timeout=120`` to every request unless told; ``deadline=`` still
    bounds the call: a 1 s trickle is cut off."""
    fault_server.route("/v1/slow", Trickle(b"x", every=0.05, count=20))
    with _session(cls, NumberedTokens()) as session:
        with pytest.raises(rr.DeadlineExceededError):
            session.get(fault_server.url("/v1/slow"), deadline=0.3)


def test_google_auths_timeout_replaces_the_configs(fault_server: FaultServer) -> None:
    """The documented difference: AuthorizedSession passes ``timeout=120``, so a config read
    timeout of 0.2 s does not fire on a reply 0.6 s late; a ResilientSession's does."""
    from resilient_requests.testing import Reply

    config = rr.ClientConfig(retry=rr.RetryConfig(max_attempts=1), timeout=rr.TimeoutConfig(read=0.2))
    fault_server.route("/v1/late", Reply(200, b"late", {}, 0.6))
    with OursThenGoogle(NumberedTokens(), config=config) as session:
        assert session.get(fault_server.url("/v1/late")).text == "late"
    with rr.ResilientSession(config) as ours:
        with pytest.raises(rr.ReadTimeout):
            ours.get(fault_server.url("/v1/late"))


def test_a_401_is_not_a_failure_of_the_origin(fault_server: FaultServer) -> None:
    """With a breaker threshold of 1, a 401 (refreshed, then answered) leaves it closed."""
    config = rr.ClientConfig(retry=rr.RetryConfig(max_attempts=1),
                             circuit_breaker=rr.CircuitBreakerConfig(failure_threshold=1))
    fault_server.route("/v1/buckets", status(401), ok("buckets"))
    with OursThenGoogle(NumberedTokens(), config=config) as session:
        assert session.get(fault_server.url("/v1/buckets")).text == "buckets"
        assert session.circuit_state(fault_server.url("/")) is rr.CircuitState.CLOSED


class FetchedTokens(Credentials):  # type: ignore[misc]
    """Fetches its token from ``url`` with the request google-auth hands it."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def refresh(self, request: Any) -> None:
        self.token = request(url=self.url, method="GET").data.decode()


def test_the_credentials_requests_go_through_a_resilient_auth_request(fault_server: FaultServer) -> None:
    """``auth_request=Request(ResilientSession(...))``: the token fetch meets a 503 and is retried."""
    from google.auth.transport.requests import Request

    fault_server.route("/token", status(503), ok("t9"))
    credentials = FetchedTokens(fault_server.url("/token"))
    with OursThenGoogle(credentials, config=CONFIG, auth_request=Request(rr.ResilientSession(CONFIG))) as session:
        session.get(fault_server.url("/v1/buckets"))
    assert fault_server.hits("/token") == 2
    assert fault_server.requests[-1].headers.get("authorization") == "Bearer t9"
