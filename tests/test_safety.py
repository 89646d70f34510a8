"""Safety: TLS verification, credentials across redirects, secrets in logs, and bad input."""
from __future__ import annotations

import logging

import pytest
import requests

import resilient_requests as rr
from resilient_requests.testing import Echo, FaultServer, redirect, status

from .conftest import fast_config


def test_verification_is_on_by_default_and_off_only_with_a_warning(caplog):
    """verify_ssl=False logs one warning per session, at construction; the default verifies."""
    caplog.set_level(logging.WARNING, logger="resilient_requests")
    with rr.ResilientSession(fast_config()) as session:
        assert session.verify is True
    assert not caplog.records
    with rr.ResilientSession(fast_config(verify_ssl=False)) as session:
        assert session.verify is False
    warnings = [r for r in caplog.records if "verification is off" in r.getMessage()]
    assert len(warnings) == 1


def test_authorization_is_dropped_on_a_redirect_to_another_host(fault_server, make_session):
    """A redirect to another host does not carry the Authorization header; same host does."""
    with FaultServer() as other:
        other.route("/landing", Echo())
        foreign = f"http://localhost:{other.port}/landing"
        fault_server.route("/away", redirect(foreign))
        fault_server.route("/home", redirect("/echo"))
        fault_server.route("/echo", Echo())
        session = make_session()
        away = session.get(fault_server.url("/away"), headers={"Authorization": "Bearer t0ken"})
        home = session.get(fault_server.url("/home"), headers={"Authorization": "Bearer t0ken"})
    assert "Authorization" not in away.json()["headers"]
    assert home.json()["headers"]["Authorization"] == "Bearer t0ken"


def test_query_secrets_never_reach_the_logs(fault_server, make_session, caplog):
    """token/key/signature/password values in the query appear in no log line, retries or not."""
    caplog.set_level(logging.DEBUG, logger="resilient_requests")
    fault_server.route("/x", status(503))
    secrets = {"token": "tk-1", "api_key": "ak-2", "signature": "sg-3", "password": "pw-4", "secret": "sc-5"}
    make_session(attempts=3, threshold=2).get(fault_server.url("/x"), params=secrets)
    text = " ".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert "retrying" in text
    for value in secrets.values():
        assert value not in text


def test_auth_that_raises_is_not_retried(fault_server, make_session):
    """An auth object that raises propagates its error; nothing is sent."""

    class BrokenAuth(requests.auth.AuthBase):
        def __call__(self, request):
            raise RuntimeError("no credentials")

    with pytest.raises(RuntimeError, match="no credentials"):
        make_session().get(fault_server.url("/x"), auth=BrokenAuth())
    assert fault_server.hits() == 0


@pytest.mark.parametrize(
    ("url", "headers", "error"),
    [
        ("http://", {}, requests.exceptions.InvalidURL),
        ("ftp://127.0.0.1/file", {}, requests.exceptions.InvalidSchema),
        ("127.0.0.1/no-scheme", {}, requests.exceptions.MissingSchema),
        (None, {"X-Evil": "a\r\nInjected: yes"}, requests.exceptions.InvalidHeader),
    ],
    ids=["invalid URL", "unsupported scheme", "missing scheme", "header injection"],
)
def test_bad_input_gets_requests_own_error_without_retry(fault_server, make_session, caplog, url, headers, error):
    """Invalid URLs, unsupported schemes and header injection raise requests' errors, never retried."""
    caplog.set_level(logging.WARNING, logger="resilient_requests")
    with pytest.raises(error):
        make_session().get(url or fault_server.url("/x"), headers=headers)
    assert fault_server.hits() == 0
    assert not [r for r in caplog.records if r.getMessage().startswith("retrying")]
