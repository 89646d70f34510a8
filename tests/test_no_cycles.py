"""Failed calls leave no reference cycles behind: with the garbage collector off, close()
closes every socket at once, and a failed call leaves no more cyclic garbage than the same
call through plain requests (measured in the same test, against the same server).

A cycle here is what a stored exception makes: its traceback holds the frames it passed
through, every frame holds its caller (``f_back``) and its locals; an outcome or a frame
above that holds the exception closes the loop. Only ``gc.collect()`` frees such a loop, and
with it the connection pool its frames refer to, idle sockets included."""
from __future__ import annotations

import gc
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import requests

import resilient_requests as rr
from resilient_requests.testing import FaultServer, Hang, Reset, Truncate, no_waits, ok, status

from .conftest import fast_config, sockets_to

CALLS = 6  # failed calls of each kind per batch
READ = 0.01  # the read timeout: a Hang costs this per attempt
DEADLINE = 0.02
HANG = 10.0  # the server holds a hung request until the client closes its socket
ALLOWANCE = 2.0  # cyclic objects per failed call ours may leave beyond plain requests'
SETTLE = 2.0  # bound on the server noticing that the client closed its sockets
LOGGER = "resilient_requests.test_no_cycles"

#: name: (our config's fields, method, path, our kwargs, plain requests' kwargs, or None:
#: a call that fails fast sends nothing, so it is compared with nothing, not with requests).
KINDS: Dict[str, Tuple[Dict[str, Any], str, str, Dict[str, Any], Optional[Dict[str, Any]]]] = {
    "connection reset, retried": ({}, "GET", "/reset", {}, {}),
    "503, retried, raise_for_status": ({"raise_for_status": True}, "GET", "/503", {},
                                       {"raise": True}),
    "read timeout, retried": ({}, "GET", "/hang", {}, {"timeout": (2.0, READ)}),
    "body cut short, retried": ({}, "GET", "/cut", {}, {}),
    "deadline exceeded": ({"read": 2.0}, "GET", "/hang", {"deadline": DEADLINE},
                          {"timeout": (2.0, DEADLINE)}),
    "POST reset, not retried": ({}, "POST", "/reset", {"data": b"x"}, {"data": b"x"}),
    "hedged read timeout": ({"hedge": rr.HedgeConfig(enabled=True, delay=0.005)}, "GET", "/hang", {},
                            {"timeout": (2.0, READ)}),
    "open breaker": ({"threshold": 1}, "GET", "/reset", {}, None),
}


@pytest.fixture
def server(fault_server: FaultServer) -> Iterator[FaultServer]:
    """The fault server with one route per fault, and waits between attempts off."""
    fault_server.route("/reset", Reset())
    fault_server.route("/503", status(503))
    fault_server.route("/hang", Hang(limit=HANG))
    fault_server.route("/cut", Truncate())
    fault_server.route("/ok", ok())
    with no_waits():
        yield fault_server


def _session(**fields: Any) -> rr.ResilientSession:
    fields = {"threshold": 10**6, "read": READ, **fields}  # the breaker stays closed unless opened
    config = fast_config(attempts=3, logging=rr.LoggingConfig(level="ERROR", logger_name=LOGGER),
                         **fields)
    config.retry.budget_ratio = None  # every retryable failure is retried: three attempts a call
    return rr.ResilientSession(config)


def _fail(send: Callable[[], requests.Response], raise_for_status: bool = False) -> None:
    """One call that must fail; its exception is dropped, as a caller's ``except`` does."""
    try:
        response = send()
        try:
            if raise_for_status:
                response.raise_for_status()
        finally:
            response.close()
    except requests.RequestException:
        return
    raise AssertionError(f"the call did not fail: {response.status_code}")


def _ours(session: rr.ResilientSession, server: FaultServer, kind: str) -> Callable[[], None]:
    _, method, path, kwargs, _ = KINDS[kind]
    url = server.url(path)
    return lambda: _fail(lambda: session.request(method, url, **kwargs))


def _plain(session: requests.Session, server: FaultServer, kind: str) -> Callable[[], None]:
    _, method, path, _, kwargs = KINDS[kind]
    assert kwargs is not None
    kwargs = dict(kwargs)
    raise_for_status = kwargs.pop("raise", False)
    kwargs.setdefault("timeout", 2.0)
    url = server.url(path)
    return lambda: _fail(lambda: session.request(method, url, **kwargs), raise_for_status)


def _cyclic_garbage_per_call(session: requests.Session, call: Callable[[], None]) -> float:
    """Objects the garbage collector frees after CALLS failed calls and close(), per call:
    what the calls left in reference cycles. The collector is off meanwhile, so all they
    allocated is still in generation 0: collecting that one finds every cycle they made
    (measured: within 3 objects of a full collection), at a fraction of the cost."""
    call()  # first-use work (imports, caches, an opened breaker) is not counted
    gc.disable()
    try:
        gc.collect(0)  # nor is anything from before
        for _ in range(CALLS):
            call()
        session.close()
        return gc.collect(0) / CALLS
    finally:
        gc.enable()


def test_failed_calls_leave_no_more_cyclic_garbage_than_plain_requests(server: FaultServer) -> None:
    """Per failed call of each kind, gc.collect() frees no more than after plain requests' call."""
    rows: List[str] = []
    over: List[str] = []
    for kind, (fields, *_, plain_kwargs) in KINDS.items():
        session = _session(**fields)
        ours = _cyclic_garbage_per_call(session, _ours(session, server, kind))
        plain = 0.0
        if plain_kwargs is not None:
            plain_session = requests.Session()
            plain = _cyclic_garbage_per_call(plain_session, _plain(plain_session, server, kind))
        rows.append(f"{kind:32} ours {ours:7.1f}   plain requests {plain:7.1f}")
        if ours > plain + ALLOWANCE:
            over.append(kind)
    table = "\n".join(["cyclic objects freed by gc.collect() per failed call:", *rows])
    assert not over, f"more cyclic garbage than plain requests for {over}\n{table}"


def test_close_closes_every_socket_with_the_collector_off(server: FaultServer) -> None:
    """gc off: failed calls of each kind between good ones, then close(): no socket left open."""
    gc.collect()
    gc.disable()
    try:
        sessions = []
        kept = []  # callers' last responses (read, closed): their pools must not keep sockets open
        for kind, (fields, *_) in KINDS.items():
            session = _session(**fields)
            sessions.append(session)
            session.get(server.url("/ok"), timeout=2.0).close()  # not READ: a loaded host may take longer
            call = _ours(session, server, kind)
            for _ in range(CALLS):
                call()
            if kind != "open breaker":  # (its origin refuses every call now)
                response = session.get(server.url("/ok"), timeout=2.0)  # leaves an idle connection in the pool
                response.close()
                kept.append(response)
        for session in sessions:
            session.close()
        left = sockets_to(server.port)
        # The server's side: connections it accepted and has not shut down yet (its handlers
        # end once they read the client's FIN).
        deadline = time.monotonic() + SETTLE
        while server._sockets and time.monotonic() < deadline:
            time.sleep(0.01)
        at_server = len(server._sockets)
    finally:
        gc.enable()
    assert (left, at_server) == (0, 0), (
        f"right after close(): {left} client sockets still connected to the server, "
        f"{at_server} connections still open at the server after {SETTLE}s"
    )
