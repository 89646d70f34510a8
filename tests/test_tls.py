"""HTTPS through the resilient adapter, and certificate errors (never retried, not an outage)."""
from __future__ import annotations

import logging

import pytest
import requests

import resilient_requests as rr
from resilient_requests import CircuitState
from resilient_requests.testing import FaultServer, ok


@pytest.fixture
def tls_server(tls_origin: FaultServer) -> FaultServer:
    """A FaultServer speaking HTTPS (conftest's tls_origin)."""
    return tls_origin


def test_https_works_with_a_trusted_certificate(tls_server, authority, make_session, tmp_path):
    """An HTTPS call through the resilient adapter succeeds when the CA is trusted."""
    tls_server.route("/x", ok("secure"))
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    response = make_session().get(tls_server.url("/x"), verify=str(ca_file))
    assert response.text == "secure"


def test_certificate_errors_are_not_retried_and_do_not_trip_the_breaker(tls_server, make_session, caplog):
    """An untrusted certificate raises at once, as both our ConnectionError and requests' SSLError."""
    caplog.set_level(logging.WARNING, logger="resilient_requests")
    session = make_session(threshold=1)
    with pytest.raises(rr.ConnectionError) as got:
        session.get(tls_server.url("/x"))
    assert isinstance(got.value, requests.exceptions.SSLError)
    assert not [r for r in caplog.records if r.getMessage().startswith("retrying")]
    assert session.circuit_state(tls_server.url("/")) is CircuitState.CLOSED
