"""Every fault × GET/PUT/POST (with and without Idempotency-Key) × raise_for_status,
and most of them again behind a forwarding proxy."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

import resilient_requests as rr
from resilient_requests.testing import ForwardProxy, refused_url

from . import fault_matrix as matrix
from .conftest import fast_config


def config(fault: str, raise_for_status: bool) -> rr.ClientConfig:
    """Small timeouts and waits; a breaker that stays closed within one cell."""
    cfg = fast_config(attempts=matrix.ATTEMPTS, threshold=100, raise_for_status=raise_for_status)
    cfg.timeout = rr.TimeoutConfig(connect=1.0, read=matrix.read_timeout(fault), write=1.0, pool=1.0,
                                   total=matrix.total(fault))
    return cfg


# Most specific first: the name of the first class the error is an instance of.
_CLASSES = ("DeadlineExceededError", "CircuitOpenError", "PoolTimeoutError", "TimeoutError",
            "ServerError", "ClientError", "ConnectionError")


def outcome_of(call) -> str:
    """A status code, or the name of the library's exception class the call raised."""
    try:
        return str(call().status_code)
    except rr.APIError as error:
        return next(name for name in _CLASSES if isinstance(error, getattr(rr, name)))


def play(fault_server, fault, method, raise_for_status, proxies=None):
    """Play one cell; check the outcome, the requests the server received, and the time bound."""
    fault_obj = matrix.FAULTS[fault][0]
    if fault_obj is None:
        url = refused_url("/cell")
    else:
        fault_server.route("/cell", fault_obj)
        url = fault_server.url("/cell")
    verb, _, keyed = method.partition("+")
    headers = {"Idempotency-Key": "cell-1"} if keyed else {}
    want, want_hits = matrix.expected(fault, method, raise_for_status, proxied=proxies is not None)
    started = time.monotonic()
    with rr.ResilientSession(config(fault, raise_for_status)) as session:
        got = outcome_of(lambda: session.request(verb, url, data=b"payload", headers=headers,
                                                 proxies=proxies))
    elapsed = time.monotonic() - started
    assert got == want
    assert fault_server.hits("/cell") == want_hits
    assert elapsed < matrix.time_bound(fault)


@pytest.mark.parametrize(("fault", "method", "raise_for_status"), matrix.cells())
def test_cell(fault_server, fault, method, raise_for_status):
    """One cell: the outcome, the requests the server received, and the time bound."""
    play(fault_server, fault, method, raise_for_status)


@pytest.mark.parametrize(("fault", "method", "raise_for_status"), matrix.proxy_cells())
def test_cell_through_proxy(fault_server, fault, method, raise_for_status):
    """One cell behind a forwarding proxy: the outcome, the requests the origin received, the time bound."""
    with ForwardProxy() as proxy:
        play(fault_server, fault, method, raise_for_status, proxies={"http": proxy.url})
        assert proxy.requests >= 1  # the calls went through the proxy


def test_post_without_key_reaches_the_server_at_most_once_in_every_cell():
    """The matrix itself never expects a plain POST to be sent twice, with or without the proxy."""
    for fault in matrix.FAULTS:
        for raise_for_status in (False, True):
            assert matrix.expected(fault, "POST", raise_for_status)[1] <= 1
    for fault, method, raise_for_status in matrix.proxy_cells():
        if method == "POST":
            assert matrix.expected(fault, "POST", raise_for_status, proxied=True)[1] <= 1


def test_docs_show_this_matrix():
    """The docs page "What is retried" (docs/concepts/retries.md) holds the table generated
    from this matrix."""
    page = Path(__file__).resolve().parents[1] / "docs" / "concepts" / "retries.md"
    assert matrix.markdown_table() in page.read_text(encoding="utf-8")
