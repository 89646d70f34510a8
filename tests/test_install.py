"""``resilient_requests.install()`` / ``uninstall()``: every ``requests`` call in the
process made resilient without changing imports.

Retries are the observable: a route answering 503 then 200 is asked twice by a
resilient call, once by a plain one (which returns the 503). The "third-party SDK"
is tests/legacy_app/billing_sdk.py, loaded fresh (as a first import would) before
or after install().
"""
from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

import pytest
import requests
import requests.api
import requests.sessions

import resilient_requests as rr
import resilient_requests.api
from resilient_requests.installation import installed
from resilient_requests.session import REQUESTS_SESSION
from resilient_requests.testing import FaultServer, no_waits, ok, status

SDK = Path(__file__).resolve().parent / "legacy_app" / "billing_sdk.py"
CONFIG = rr.ClientConfig(retry=rr.RetryConfig(max_attempts=3, min_wait=0.001, max_wait=0.01))
ORIGINALS = (requests.Session, requests.sessions.Session, requests.session, requests.request,
             requests.api.request, requests.get)
_loads = itertools.count()


@pytest.fixture(autouse=True)
def _restore(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No waits; after the test, requests is as it was and the module-level API's config too."""
    monkeypatch.setattr(resilient_requests.api, "_shared", resilient_requests.api._shared)
    with no_waits():
        yield
    rr.uninstall()
    assert (requests.Session, requests.sessions.Session, requests.session, requests.request,
            requests.api.request, requests.get) == ORIGINALS


def _flaky(server: FaultServer, path: str = "/x") -> str:
    server.route(path, status(503), ok("fine"))
    return server.url(path)


def _load_sdk() -> Any:
    """billing_sdk.py, imported afresh (its classes are defined now)."""
    spec = importlib.util.spec_from_file_location(f"billing_sdk_{next(_loads)}", SDK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_requests_get_and_post_are_resilient(fault_server: FaultServer) -> None:
    """``requests.get`` retries; a POST answered 503 is still sent once."""
    rr.install(CONFIG)
    assert installed()
    assert requests.get(_flaky(fault_server)).text == "fine"
    assert fault_server.hits("/x") == 2
    fault_server.route("/orders", status(503))
    assert requests.post(fault_server.url("/orders"), json={"sku": 7}).status_code == 503
    assert fault_server.hits("/orders", "POST") == 1


def test_requests_session_and_classes_defined_after_install_are_resilient(fault_server: FaultServer) -> None:
    """``requests.Session()``, ``requests.session()`` and a subclass defined after install()."""
    rr.install(CONFIG)

    class AppSession(requests.Session):
        pass

    for make, path in ((requests.Session, "/a"), (requests.session, "/b"), (AppSession, "/c")):
        with make() as session:
            assert isinstance(session, rr.ResilientMixin) and session.config is CONFIG
            assert session.get(_flaky(fault_server, path)).text == "fine"
        assert fault_server.hits(path) == 2, path


def test_the_breaker_is_shared_by_module_level_calls(fault_server: FaultServer) -> None:
    """Module-level calls share the compartments: five failures open the breaker for the next."""
    rr.install(rr.ClientConfig(retry=rr.RetryConfig(max_attempts=1)))
    fault_server.route("/down", status(503))
    for _ in range(5):
        assert requests.get(fault_server.url("/down")).status_code == 503
    with pytest.raises(rr.CircuitOpenError):
        requests.get(fault_server.url("/down"))
    assert fault_server.hits("/down") == 5


def test_uninstall_puts_requests_back(fault_server: FaultServer) -> None:
    """After uninstall() a call is plain again (one request, the 503 returned); sessions made
    meanwhile keep their layers."""
    rr.install(CONFIG)
    kept = requests.Session()
    rr.uninstall()
    assert not installed()
    assert requests.Session is REQUESTS_SESSION and requests.request is ORIGINALS[3]
    assert requests.get(_flaky(fault_server)).status_code == 503
    assert fault_server.hits("/x") == 1
    assert kept.get(_flaky(fault_server, "/kept")).text == "fine"
    assert fault_server.hits("/kept") == 2
    kept.close()
    rr.uninstall()  # again: nothing to do


def test_install_twice_then_uninstall_once(fault_server: FaultServer) -> None:
    """A second install() replaces the config; one uninstall() restores requests' own."""
    rr.install(CONFIG)
    rr.install(rr.ClientConfig(retry=rr.RetryConfig(max_attempts=1)))
    assert requests.get(_flaky(fault_server)).status_code == 503
    rr.uninstall()
    assert requests.Session is REQUESTS_SESSION


def test_mock_patch_of_requests_get_still_replaces_what_code_calls(fault_server: FaultServer) -> None:
    """``requests.get`` itself is untouched: ``mock.patch("requests.get")`` works, and
    nothing reaches the server."""
    rr.install(CONFIG)
    with mock.patch("requests.get") as get:
        get.return_value.status_code = 204
        assert requests.get(fault_server.url("/x")).status_code == 204
    get.assert_called_once_with(fault_server.url("/x"))
    assert fault_server.hits() == 0


def test_an_sdk_imported_after_install_is_resilient(fault_server: FaultServer) -> None:
    """The SDK's ``requests.Session()`` and its own subclass, both made after install()."""
    rr.install(CONFIG)
    sdk = _load_sdk()
    for own_session, number in ((False, 1), (True, 2)):
        fault_server.route(f"/invoices/{number}", status(503), ok(f'{{"number": {number}}}'))
        client = sdk.BillingClient(fault_server.base_url, own_session=own_session)
        assert isinstance(client.http, rr.ResilientMixin)
        assert client.invoice(number) == {"number": number}
        assert fault_server.hits(f"/invoices/{number}") == 2
    assert fault_server.requests[-1].headers["User-Agent"] == "billing-sdk/2.1"


def test_an_sdk_imported_before_install(fault_server: FaultServer) -> None:
    """What install() reaches and what it cannot: a ``requests.Session()`` made after it is
    resilient; the SDK's subclass, defined at its import before install(), is not."""
    sdk = _load_sdk()
    rr.install(CONFIG)
    fault_server.route("/invoices/1", status(503), ok('{"number": 1}'))
    assert sdk.BillingClient(fault_server.base_url).invoice(1) == {"number": 1}
    assert fault_server.hits("/invoices/1") == 2
    fault_server.route("/invoices/2", status(503), ok('{"number": 2}'))
    plain = sdk.BillingClient(fault_server.base_url, own_session=True)
    assert not isinstance(plain.http, rr.ResilientMixin)
    with pytest.raises(requests.HTTPError):
        plain.invoice(2)
    assert fault_server.hits("/invoices/2") == 1


def test_install_takes_a_client_config() -> None:
    """A dict or a preset name is refused, with nothing replaced."""
    with pytest.raises(TypeError):
        rr.install({"retry": {"max_attempts": 2}})  # type: ignore[arg-type]
    assert not installed() and requests.Session is REQUESTS_SESSION


def test_a_requests_mock_mocker_made_after_install_catches_requests_get(fault_server: FaultServer) -> None:
    """``requests_mock.Mocker()`` (the ``requests_mock`` fixture) patches the installed
    ``requests.Session``; ``requests.get`` must go through it and not reach the server."""
    requests_mock = pytest.importorskip("requests_mock", reason="needs requests-mock (the test extra)")
    rr.install(CONFIG)
    with requests_mock.Mocker() as mocker:
        mocker.get(fault_server.url("/x"), text="mocked")
        answer = requests.get(fault_server.url("/x"))
    assert fault_server.hits() == 0
    assert answer.text == "mocked"
