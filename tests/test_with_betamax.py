"""betamax records and replays our sessions' calls, and a legacy suite's cassettes
(recorded with plain requests) replay after the swap.

betamax mounts its own adapter on the session for the cassette's time and puts the
session's adapters back after it; our retry loop sits above the mounted adapter,
so every attempt is one interaction. Real betamax, loopback FaultServers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, List

import pytest
import requests

import resilient_requests as rr
from resilient_requests.testing import FaultServer, ok, status

from .recording import calls as _calls
from .recording import routes as _routes

betamax = pytest.importorskip("betamax", reason="needs betamax (the test extra)")

#: betamax 0.9 stamps interactions with datetime.utcnow(), deprecated since Python 3.12.
pytestmark = pytest.mark.filterwarnings(r"ignore:datetime\.datetime\.utcnow\(\) is deprecated:DeprecationWarning")
from betamax.exceptions import BetamaxError  # noqa: E402

Made = Callable[..., rr.ResilientSession]


def _interactions(library: Path, name: str) -> List[int]:
    """The statuses of the cassette's interactions, as saved."""
    import json

    saved = json.loads((library / f"{name}.json").read_text(encoding="utf-8"))
    return [i["response"]["status"]["code"] for i in saved["http_interactions"]]


@pytest.mark.parametrize("recorder", ["requests.Session", "ResilientSession"])
def test_a_cassette_replays_with_a_resilient_session_without_the_server(
        recorder: str, make_session: Made, tmp_path: Path) -> None:
    """Recorded with plain requests (the legacy suite) or with our session; replayed with
    ours: the same answers, with the server silent, then stopped."""
    with FaultServer() as server:
        _routes(server)
        base = server.base_url
        session = requests.Session() if recorder == "requests.Session" else make_session()
        with betamax.Betamax(session, cassette_library_dir=str(tmp_path)).use_cassette("calls"):
            recorded = _calls(session, base)
        session.close()
        assert server.hits() == 2 and _interactions(tmp_path, "calls") == [200, 200]
        assert recorded == [(200, "application/json", '{"id": 1}'), (200, "text/plain", "created")]

        replayer = make_session()
        with betamax.Betamax(replayer, cassette_library_dir=str(tmp_path)).use_cassette("calls", record="none"):
            assert _calls(replayer, base) == recorded
        assert server.hits() == 2
        server.stop()
        with betamax.Betamax(replayer, cassette_library_dir=str(tmp_path)).use_cassette("calls", record="none"):
            assert _calls(replayer, base) == recorded


@pytest.mark.parametrize("client", ["requests.Session", "ResilientSession"])
def test_record_none_blocks_a_request_not_in_the_cassette(
        client: str, make_session: Made, fault_server: FaultServer, tmp_path: Path) -> None:
    """As for plain requests: betamax's error on the first attempt, nothing sent."""
    session = requests.Session() if client == "requests.Session" else make_session()
    with betamax.Betamax(session, cassette_library_dir=str(tmp_path)).use_cassette("calls"):
        session.get(fault_server.url("/recorded"))
    with betamax.Betamax(session, cassette_library_dir=str(tmp_path)).use_cassette("calls", record="none"):
        with pytest.raises(BetamaxError):
            session.get(fault_server.url("/missing"))
    assert fault_server.hits() == 1 and fault_server.hits("/missing") == 0
    session.close()


def test_retries_are_recorded_and_the_replay_plays_them_in_order(
        make_session: Made, fault_server: FaultServer, tmp_path: Path) -> None:
    """Recorded with our session, a 503 then a 200 are two interactions; the replay plays
    the 503, retries, plays the 200."""
    fault_server.route("/flaky", status(503), ok("fine"))
    session = make_session()
    with betamax.Betamax(session, cassette_library_dir=str(tmp_path)).use_cassette("flaky"):
        assert session.get(fault_server.url("/flaky")).text == "fine"
    assert _interactions(tmp_path, "flaky") == [503, 200] and fault_server.hits() == 2
    with betamax.Betamax(session, cassette_library_dir=str(tmp_path)).use_cassette("flaky", record="none"):
        assert session.get(fault_server.url("/flaky")).text == "fine"
    assert fault_server.hits() == 2


def test_after_the_cassette_the_session_is_resilient_again(
        make_session: Made, fault_server: FaultServer, tmp_path: Path) -> None:
    """betamax puts our adapter back: real traffic, retried."""
    session = make_session()
    with betamax.Betamax(session, cassette_library_dir=str(tmp_path)).use_cassette("calls"):
        session.get(fault_server.url("/a"))
    fault_server.route("/flaky", status(503), ok("fine"))
    assert session.get(fault_server.url("/flaky")).text == "fine"
    assert fault_server.hits("/flaky") == 2 and fault_server.hits("/a") == 1


def test_a_cassette_recorded_with_plain_requests_replays_its_503_after_the_swap(
        make_session: Made, fault_server: FaultServer, tmp_path: Path) -> None:
    """The migration: plain requests recorded one 503 (it does not retry). Replayed after
    the swap, the call ends with that 503, as the legacy test expects, not with
    betamax's error for the retry the cassette cannot answer."""
    fault_server.route("/flaky", status(503), ok("fine"))
    with requests.Session() as plain:
        with betamax.Betamax(plain, cassette_library_dir=str(tmp_path)).use_cassette("legacy"):
            assert plain.get(fault_server.url("/flaky")).status_code == 503
    assert _interactions(tmp_path, "legacy") == [503]
    session = make_session()
    with betamax.Betamax(session, cassette_library_dir=str(tmp_path)).use_cassette("legacy"):
        response = session.get(fault_server.url("/flaky"))
    assert response.status_code == 503 and fault_server.hits() == 1
    with pytest.raises(rr.HTTPError):
        response.raise_for_status()  # what the legacy test went on to check
