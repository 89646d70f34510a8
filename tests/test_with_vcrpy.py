"""vcrpy records and replays the traffic of our sessions as it does plain requests'.

vcrpy swaps the ``ConnectionCls`` of urllib3's pool classes while a cassette is
in use; our pools pick their connection class per connection from what urllib3's
pool classes hold (resilient_requests/transport.py), so a cassette sees our
calls, ``record_mode="none"`` blocks what is not in it, and after the cassette
the connections are real ones of ours again (the deadline shuts their sockets).
Real vcrpy, loopback FaultServers; what the servers saw is the evidence.
"""
from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

import resilient_requests as rr
from resilient_requests.testing import FaultServer, ForwardProxy, Hang, Trickle, ok, status

from .recording import calls as _calls
from .recording import routes as _routes

vcr = pytest.importorskip("vcr", reason="needs vcrpy (the test extra)")
from vcr.errors import CannotOverwriteExistingCassetteException  # noqa: E402

#: Generous: tells "bounded by the deadline" (~0.3 s) from "held by the trickle" (4 s).
MARGIN = 1.5

Made = Callable[..., rr.ResilientSession]


def test_record_then_replay_a_get_and_a_post_without_the_server(make_session: Made, tmp_path: Path) -> None:
    """Recorded through our pools; replayed with the server silent, then stopped: the same answers."""
    cassette_file = str(tmp_path / "calls.yaml")
    session = make_session()
    with FaultServer() as server:
        _routes(server)
        base = server.base_url
        with vcr.use_cassette(cassette_file) as cassette:
            recorded = _calls(session, base)
        assert len(cassette) == 2 and server.hits() == 2
        assert recorded == [(200, "application/json", '{"id": 1}'), (200, "text/plain", "created")]
        assert Path(cassette_file).exists()

        with vcr.use_cassette(cassette_file, record_mode="none") as cassette:
            assert _calls(session, base) == recorded
        assert cassette.all_played and server.hits() == 2  # nothing reached the server
        server.stop()
        with vcr.use_cassette(cassette_file, record_mode="none") as cassette:
            assert _calls(make_session(), base) == recorded
        assert cassette.all_played


@pytest.mark.parametrize("client", ["requests.Session", "ResilientSession"])
def test_record_mode_none_blocks_a_request_not_in_the_cassette(
        client: str, make_session: Made, fault_server: FaultServer, tmp_path: Path) -> None:
    """As for plain requests: vcrpy's error, nothing sent, and no retry of it."""
    cassette_file = str(tmp_path / "empty.yaml")
    with vcr.use_cassette(cassette_file):
        pass  # an empty cassette on disk
    session = requests.Session() if client == "requests.Session" else make_session()
    with vcr.use_cassette(cassette_file, record_mode="none"):
        with pytest.raises(CannotOverwriteExistingCassetteException):
            session.get(fault_server.url("/missing"))
    assert fault_server.hits() == 0
    session.close()


def test_the_module_level_functions_record_and_replay(fault_server: FaultServer, tmp_path: Path) -> None:
    """resilient_requests.get/post (the module's shared session) go through the cassette too."""
    _routes(fault_server)
    cassette_file = str(tmp_path / "module.yaml")
    with vcr.use_cassette(cassette_file) as cassette:
        recorded = _calls(rr, fault_server.base_url)
    assert len(cassette) == 2 and fault_server.hits() == 2
    with vcr.use_cassette(cassette_file, record_mode="none") as cassette:
        assert _calls(rr, fault_server.base_url) == recorded
    assert cassette.all_played and fault_server.hits() == 2
    with vcr.use_cassette(cassette_file, record_mode="none"):
        with pytest.raises(CannotOverwriteExistingCassetteException):
            rr.get(fault_server.url("/not-recorded"))
    assert fault_server.hits() == 2


def _deadline_cuts_a_trickle(session: rr.ResilientSession, server: FaultServer) -> None:
    """The watchdog shuts the socket of a reply trickling past the deadline: only a
    connection of ours hands its socket over, so this tells ours from a tool's."""
    server.route("/trickle", Trickle(chunk=b"a", every=0.1, count=40))
    started = time.monotonic()
    with pytest.raises(rr.DeadlineExceededError):
        session.get(server.url("/trickle"), deadline=0.3)
    assert time.monotonic() - started < 0.3 + MARGIN


# vcrpy's patched get_conn drops a connection pooled before the cassette without closing it
# (vcr/patch.py, patched_get_conn): the collector then finds an open socket. vcrpy's, not ours.
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_session_used_before_the_cassette_is_recorded_in_it_and_real_after(
        make_session: Made, fault_server: FaultServer, tmp_path: Path) -> None:
    """Its pool, made before the cassette, holds a live connection of ours: inside the
    cassette the call is still recorded and replayed; after it, real traffic again."""
    session = make_session()
    assert session.get(fault_server.url("/a")).text == "ok"  # the pool and a kept-alive connection
    cassette_file = str(tmp_path / "before.yaml")
    with vcr.use_cassette(cassette_file) as cassette:
        session.get(fault_server.url("/a"))
    assert len(cassette) == 1 and fault_server.hits("/a") == 2
    with vcr.use_cassette(cassette_file, record_mode="none") as cassette:
        assert session.get(fault_server.url("/a")).text == "ok"
        with pytest.raises(CannotOverwriteExistingCassetteException):
            session.get(fault_server.url("/b"))
    assert cassette.all_played and fault_server.hits() == 2
    assert session.get(fault_server.url("/a")).text == "ok"
    assert fault_server.hits("/a") == 3  # after the cassette: the network
    _deadline_cuts_a_trickle(session, fault_server)
    gc.collect()  # the socket vcrpy dropped is collected here, under this test's filter


def test_a_pool_made_inside_the_cassette_does_not_keep_its_class_after_it(
        make_session: Made, fault_server: FaultServer, tmp_path: Path) -> None:
    """A session first used under the cassette: after it, its cached pool sends for real,
    through connections of ours (the deadline still cuts a trickling reply)."""
    session = make_session()
    with vcr.use_cassette(str(tmp_path / "inside.yaml")) as cassette:
        session.get(fault_server.url("/a"))
    assert len(cassette) == 1 and fault_server.hits("/a") == 1
    assert session.get(fault_server.url("/a")).text == "ok"
    assert session.get(fault_server.url("/a")).text == "ok"
    assert fault_server.hits("/a") == 3
    assert len(cassette) == 1  # nothing more went into the ended cassette
    _deadline_cuts_a_trickle(session, fault_server)


def test_retries_are_recorded_and_the_replay_plays_them_in_order(
        make_session: Made, fault_server: FaultServer, tmp_path: Path) -> None:
    """A 503 then a 200, recorded: both attempts are in the cassette; the replay plays the
    503, retries, plays the 200, as the recording went, with nothing sent."""
    fault_server.route("/flaky", status(503), ok("fine"))
    cassette_file = str(tmp_path / "flaky.yaml")
    session = make_session()
    with vcr.use_cassette(cassette_file) as cassette:
        assert session.get(fault_server.url("/flaky")).text == "fine"
    assert [r["status"]["code"] for r in cassette.responses] == [503, 200]
    assert fault_server.hits() == 2
    with vcr.use_cassette(cassette_file, record_mode="none") as cassette:
        assert make_session().get(fault_server.url("/flaky")).text == "fine"
    assert cassette.play_count == 2 and cassette.all_played
    assert fault_server.hits() == 2


def test_a_timeout_while_recording_is_retried_and_nothing_is_recorded(
        make_session: Made, fault_server: FaultServer, tmp_path: Path) -> None:
    """While recording, the tool's connections carry our read timeout, and the retry
    loop above the pool retries what times out."""
    fault_server.route("/hang", Hang(limit=5))
    started = time.monotonic()
    with vcr.use_cassette(str(tmp_path / "hang.yaml")) as cassette:
        with pytest.raises(rr.TimeoutError):
            make_session(read=0.2, attempts=2).get(fault_server.url("/hang"))
    assert time.monotonic() - started < 2 * 0.2 + MARGIN  # not the server's 5 s hang, twice
    assert fault_server.hits("/hang") == 2 and len(cassette) == 0


def test_https_is_recorded_and_replayed(make_session: Made, tls_origin: FaultServer, authority: Any,
                                       tmp_path: Path) -> None:
    """Our HTTPS pools follow the cassette as the HTTP ones do."""
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    tls_origin.route("/secure", ok("secret"))
    cassette_file = str(tmp_path / "tls.yaml")
    session = make_session()
    with vcr.use_cassette(cassette_file) as cassette:
        assert session.get(tls_origin.url("/secure"), verify=str(ca_file)).text == "secret"
    assert len(cassette) == 1 and tls_origin.hits() == 1
    with vcr.use_cassette(cassette_file, record_mode="none") as cassette:
        assert session.get(tls_origin.url("/secure"), verify=str(ca_file)).text == "secret"
    assert cassette.all_played and tls_origin.hits() == 1
    assert session.get(tls_origin.url("/secure"), verify=str(ca_file)).text == "secret"
    assert tls_origin.hits() == 2


def test_calls_through_a_proxy_are_recorded_and_replayed(
        make_session: Made, fault_server: FaultServer, tmp_path: Path) -> None:
    """The proxy manager's pools follow the cassette too; the replay reaches neither."""
    cassette_file = str(tmp_path / "proxy.yaml")
    with ForwardProxy() as proxy:
        session = make_session()
        session.proxies = {"http": proxy.url}
        with vcr.use_cassette(cassette_file) as cassette:
            assert session.get(fault_server.url("/via")).text == "ok"
        assert len(cassette) == 1 and proxy.requests == 1 and fault_server.hits() == 1
        with vcr.use_cassette(cassette_file, record_mode="none") as cassette:
            assert session.get(fault_server.url("/via")).text == "ok"
        assert cassette.all_played and proxy.requests == 1 and fault_server.hits() == 1
        assert session.get(fault_server.url("/via")).text == "ok"
        assert proxy.requests == 2 and fault_server.hits() == 2


def test_a_cassette_recorded_with_plain_requests_replays_its_503_after_the_swap(
        make_session: Made, fault_server: FaultServer, tmp_path: Path) -> None:
    """The migration: plain requests recorded one 503 (it does not retry). Replayed after
    the swap, the call ends with that 503, as the suite expects, not with vcrpy's error
    for the retry the cassette cannot answer."""
    fault_server.route("/flaky", status(503), ok("fine"))
    cassette_file = str(tmp_path / "legacy.yaml")
    with vcr.use_cassette(cassette_file) as cassette, requests.Session() as plain:
        assert plain.get(fault_server.url("/flaky")).status_code == 503
    assert len(cassette) == 1
    with vcr.use_cassette(cassette_file) as cassette:  # record_mode "once": the file exists
        assert make_session().get(fault_server.url("/flaky")).status_code == 503
    assert cassette.play_count == 1 and fault_server.hits() == 1
