"""errors.classify: the verdict for each failure, provoked for real through plain requests."""
from __future__ import annotations

import errno

import pytest
import requests
import urllib3

from resilient_requests.errors import RetryWhen, causes, classify, to_raise
from resilient_requests.exceptions import ConnectionError, PoolTimeoutError, TimeoutError
from resilient_requests.testing import Hang, Reset, Trickle, Truncate, refused_url


def plain_failure(fault_server, fault, timeout=(1, 2)):
    """The exception plain requests raises for ``fault`` (None: a refused port)."""
    url = refused_url("/f") if fault is None else fault_server.route("/f", fault).url("/f")
    with requests.Session() as session:
        with pytest.raises(Exception) as info:
            session.get(url, timeout=timeout)
    return info.value


# fault, timeout, (reached, retry, breaker, raise_as)
TRANSPORT = {
    "refused": (None, (1, 2), (False, RetryWhen.ALWAYS, True, (ConnectionError,))),
    "read timeout": (Hang(limit=5), (1, 0.2), (True, RetryWhen.IDEMPOTENT, True, (TimeoutError,))),
    "read timeout in body": (Trickle(every=0.5, count=4), (1, 0.1),
                             (True, RetryWhen.IDEMPOTENT, True, (TimeoutError,))),
    "reset": (Reset(), (1, 2), (True, RetryWhen.IDEMPOTENT, True, (ConnectionError,))),
    "truncated body": (Truncate(), (1, 2), (True, RetryWhen.IDEMPOTENT, True, (ConnectionError,))),
}


@pytest.mark.parametrize("case", TRANSPORT)
def test_transport_failure_verdict(fault_server, case):
    """A real transport failure gets the verdict of the classification table."""
    fault, timeout, (reached, retry, breaker, raise_as) = TRANSPORT[case]
    exc = plain_failure(fault_server, fault, timeout)
    assert isinstance(exc, requests.RequestException)
    verdict = classify(exc)
    assert (verdict.reached, verdict.retry, verdict.breaker, verdict.raise_as) == (
        reached, retry, breaker, raise_as)
    assert verdict.is_timeout is (TimeoutError in raise_as)


def test_plain_read_timeout_is_requests_read_timeout(fault_server):
    """Plain requests raises ReadTimeout for a hanging server, and it is classified as a timeout."""
    exc = plain_failure(fault_server, Hang(limit=5), (1, 0.2))
    assert type(exc) is requests.ReadTimeout
    assert classify(exc).is_timeout


def test_read_timeout_while_body_downloads_is_a_timeout(fault_server):
    """A read timeout during the body (a requests.ConnectionError) is classified as a timeout."""
    exc = plain_failure(fault_server, Trickle(every=0.5, count=4), (1, 0.1))
    assert type(exc) is requests.ConnectionError
    assert any(isinstance(c, urllib3.exceptions.ReadTimeoutError) for c in causes(exc))
    verdict = classify(exc)
    assert verdict.is_timeout and verdict.reached
    assert isinstance(to_raise(exc, verdict), TimeoutError)


def test_truncated_body_is_not_a_timeout(fault_server):
    """A body cut short is ChunkedEncodingError, mapped to ConnectionError and not to a timeout."""
    exc = plain_failure(fault_server, Truncate())
    assert type(exc) is requests.exceptions.ChunkedEncodingError
    assert not classify(exc).is_timeout
    raised = to_raise(exc)
    assert isinstance(raised, ConnectionError) and not isinstance(raised, TimeoutError)


def test_reset_fault_really_resets_the_connection(fault_server):
    """The Reset fault makes the client see a TCP reset (ECONNRESET), not a clean close (EOF)."""
    exc = plain_failure(fault_server, Reset())
    # http.client's RemoteDisconnected (a clean EOF) subclasses ConnectionResetError: check errno.
    assert any(getattr(c, "errno", None) == errno.ECONNRESET for c in causes(exc)), repr(exc)


def test_empty_pool_is_a_pool_timeout():
    """urllib3's bare EmptyPoolError is a plain PoolTimeoutError: never retried, no breaker."""
    exc = urllib3.exceptions.EmptyPoolError(None, "x")
    verdict = classify(exc)
    assert verdict.raise_as == (PoolTimeoutError,)
    assert (verdict.reached, verdict.retry, verdict.breaker) == (False, RetryWhen.NEVER, False)
    assert type(to_raise(exc, verdict)) is PoolTimeoutError


def _invalid_url():
    with requests.Session() as session:
        with pytest.raises(requests.exceptions.InvalidURL) as info:
            session.get("http://")  # no host: requests refuses before any I/O
    return info.value


@pytest.mark.parametrize("make", [lambda: ValueError("unrelated"), _invalid_url],
                         ids=["ValueError", "InvalidURL"])
def test_non_transport_errors_pass_through(make):
    """A non-transport error passes through unchanged: never retried, no breaker."""
    exc = make()
    verdict = classify(exc)
    assert verdict.raise_as == ()
    assert (verdict.retry, verdict.breaker) == (RetryWhen.NEVER, False)
    assert to_raise(exc, verdict) is exc
