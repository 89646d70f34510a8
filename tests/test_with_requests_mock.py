"""requests-mock cannot strip resilience from a session: after a ``Mocker`` (on the
session or on the class) the session is exactly as resilient as before, and retries
and the breaker apply to mocked answers, as they do with ``requests_mock.Adapter``.

``Mocker`` sets ``session.get_adapter`` on the instance around every send and puts
back what it found; ``get_adapter`` is a data descriptor on our class, so that
assignment is kept as an override our lookup asks, and the class's method put back
removes it. Real requests-mock; real traffic goes to a FaultServer, whose hits
are the evidence.
"""
from __future__ import annotations

from typing import Callable

import pytest

import resilient_requests as rr
from resilient_requests.testing import FaultServer, no_waits, ok, status
from resilient_requests.transport import ResilientAdapter

requests_mock = pytest.importorskip("requests_mock", reason="needs requests-mock (the test extra)")

Made = Callable[..., rr.ResilientSession]
MOCKED = "http://mocked.example.test"


@pytest.fixture(autouse=True)
def _no_waits():
    with no_waits():
        yield


def _real_traffic_is_resilient(session: rr.ResilientSession, server: FaultServer) -> None:
    """A 503 route: 3 attempts per call (retries), then after 5 failures the breaker refuses."""
    server.route("/flaky", status(503), ok("fine"))
    assert session.get(server.url("/flaky")).text == "fine"
    assert server.hits("/flaky") == 2
    server.route("/down", status(503))
    session.get(server.url("/down"))
    assert server.hits("/down") == 3
    session.get(server.url("/down"))  # failures 4 and 5 (of threshold 5): the breaker opens
    assert server.hits("/down") == 5
    with pytest.raises(rr.CircuitOpenError):
        session.get(server.url("/down"))
    assert server.hits("/down") == 5


@pytest.mark.parametrize("target", ["session", "class"])
def test_a_mocker_that_ended_leaves_the_session_as_resilient_as_before(
        make_session: Made, fault_server: FaultServer, target: str) -> None:
    """``Mocker(session=s)`` or ``Mocker()``, used and ended; then real traffic: retries
    and the breaker still apply, and the mounted adapter is ours again."""
    session = make_session(attempts=3, threshold=5)
    with requests_mock.Mocker(session=session if target == "session" else None) as mocker:
        mocker.get(f"{MOCKED}/users/7", json={"id": 7})
        assert session.get(f"{MOCKED}/users/7").json() == {"id": 7}
        assert mocker.call_count == 1
    assert "_adapter_override" not in vars(session)
    assert isinstance(session.get_adapter(fault_server.url()), ResilientAdapter)
    _real_traffic_is_resilient(session, fault_server)


def test_retries_and_the_breaker_apply_to_mocked_answers(make_session: Made) -> None:
    """Under a Mocker, a mocked 503 is asked 3 times per call; 5 failures open the breaker."""
    session = make_session(attempts=3, threshold=5)
    with requests_mock.Mocker(session=session) as mocker:
        mocker.get(f"{MOCKED}/users/7", status_code=503)
        assert session.get(f"{MOCKED}/users/7").status_code == 503
        assert mocker.call_count == 3
        session.get(f"{MOCKED}/users/7")
        with pytest.raises(rr.CircuitOpenError):
            session.get(f"{MOCKED}/users/7")
        assert mocker.call_count == 5


def test_a_mocked_flaky_answer_is_absorbed(make_session: Made) -> None:
    """A response list (503, then 200): one call, two mocked answers, the 200 returned."""
    session = make_session(attempts=3)
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{MOCKED}/users/7", [{"status_code": 503}, {"json": {"id": 7}}])
        assert session.get(f"{MOCKED}/users/7").json() == {"id": 7}
        assert mocker.call_count == 2


def test_nested_mockers_and_real_http_pass_through_our_layers(
        make_session: Made, fault_server: FaultServer) -> None:
    """``Mocker(real_http=True)``: an unmocked URL goes to the real server, retried."""
    session = make_session(attempts=3)
    fault_server.route("/real", status(503), ok("real"))
    with requests_mock.Mocker(session=session, real_http=True) as mocker:
        mocker.get(f"{MOCKED}/users/7", json={"id": 7})
        assert session.get(f"{MOCKED}/users/7").json() == {"id": 7}
        assert session.get(fault_server.url("/real")).text == "real"
    assert fault_server.hits("/real") == 2


def test_a_mounted_adapter_gets_retries_and_the_breaker(make_session: Made) -> None:
    """``requests_mock.Adapter`` mounted on the session: our layers are around it."""
    session = make_session(attempts=3, threshold=5)
    adapter = requests_mock.Adapter()
    session.mount("mock://", adapter)
    adapter.register_uri("GET", "mock://billing/invoices/1", status_code=503)
    assert session.get("mock://billing/invoices/1").status_code == 503
    assert adapter.call_count == 3
    session.get("mock://billing/invoices/1")
    with pytest.raises(rr.CircuitOpenError):
        session.get("mock://billing/invoices/1")
    assert adapter.call_count == 5
    assert session.get_adapter("mock://billing/") is adapter  # outside a call: the adapter itself


def test_a_class_mocker_catches_the_module_level_api() -> None:
    """A ``Mocker()`` on the class (what the ``requests_mock`` fixture uses) also catches
    ``resilient_requests.get``, the swap's ``requests.get``, with its retries."""
    with requests_mock.Mocker() as mocker:
        mocker.get(f"{MOCKED}/health", status_code=500)
        assert rr.get(f"{MOCKED}/health").status_code == 500
        assert mocker.call_count == 3


def test_a_class_mocker_still_reaches_a_session_mocked_before(make_session: Made) -> None:
    """After ``Mocker(session=s)`` ended, a ``Mocker()`` on the class still mocks ``s`` (with
    plain requests the first Mocker leaves requests' own ``send`` on the instance, hiding it)."""
    session = make_session(attempts=1)
    with requests_mock.Mocker(session=session) as first:
        first.get(f"{MOCKED}/a", text="first")
        assert session.get(f"{MOCKED}/a").text == "first"
    with requests_mock.Mocker() as second:
        second.get(f"{MOCKED}/a", text="second")
        assert session.get(f"{MOCKED}/a").text == "second"
