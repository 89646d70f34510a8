"""The exception hierarchy, the drop-in names, and the errors a session raises for real failures."""
from __future__ import annotations

import pickle

import pytest
import requests

import resilient_requests
import resilient_requests.exceptions as rex
from resilient_requests import ClientConfig, ResilientSession, RetryConfig
from resilient_requests.testing import Hang, Reset, Trickle, Truncate, refused_url, status


def config(**fields):
    """One attempt, millisecond waits: the failure itself is what these tests look at."""
    return ClientConfig(retry=RetryConfig(max_attempts=1, min_wait=0.001, max_wait=0.01), **fields)


# -- the hierarchy -----------------------------------------------------------

@pytest.mark.parametrize("cls, bases", [
    (rex.APIError, (requests.RequestException,)),
    (rex.ConnectionError, (rex.APIError, requests.ConnectionError)),
    (rex.TimeoutError, (rex.APIError, requests.Timeout)),
    (rex.CircuitOpenError, (rex.ConnectionError,)),
    (rex.PoolTimeoutError, (rex.APIError,)),
    (rex.ClientError, (rex.APIError, requests.HTTPError)),
    (rex.AuthenticationError, (rex.ClientError,)),
    (rex.NotFoundError, (rex.ClientError,)),
    (rex.ServerError, (rex.APIError, requests.HTTPError)),
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_hierarchy(cls, bases):
    """Each of our exceptions has exactly the documented direct bases."""
    assert cls.__bases__ == bases
    assert getattr(resilient_requests, cls.__name__) is cls


@pytest.mark.parametrize("name", sorted(
    name for name, value in vars(requests.exceptions).items()
    if isinstance(value, type) and issubclass(value, BaseException) and not name.startswith("_")
))
def test_every_requests_exception_name_is_importable(name):
    """Every exception name of requests.exceptions is exported by resilient_requests.exceptions."""
    ours, theirs = getattr(rex, name), getattr(requests.exceptions, name)
    assert issubclass(ours, theirs)  # the same class, or ours standing in for it
    assert name in rex.__all__


@pytest.mark.parametrize("name, expected", [
    ("Session", ResilientSession),
    ("codes", requests.codes),
    ("Request", requests.Request),
    ("Response", requests.Response),
    ("PreparedRequest", requests.PreparedRequest),
    ("RequestException", requests.RequestException),
    ("HTTPError", requests.HTTPError),
    ("Timeout", requests.Timeout),
    ("ConnectTimeout", requests.ConnectTimeout),
    ("ReadTimeout", requests.ReadTimeout),
    ("TooManyRedirects", requests.TooManyRedirects),
])
def test_legacy_names_on_the_top_level_module(name, expected):
    """`import resilient_requests as requests` keeps the names old scripts use."""
    assert getattr(resilient_requests, name) is expected


# -- transport failures, provoked for real -----------------------------------

# case: (fault or None for a refused port, timeout, our class, the requests class it stays,
#        the exact class of __cause__)
FAILURES = {
    "read timeout": (Hang(limit=5), (1, 0.2), rex.TimeoutError, requests.ReadTimeout,
                     requests.ReadTimeout),
    "body read timeout": (Trickle(every=0.5, count=4), (1, 0.1), rex.TimeoutError,
                          requests.ConnectionError, requests.ConnectionError),
    "refused": (None, (1, 2), rex.ConnectionError, requests.ConnectionError,
                requests.ConnectionError),
    "reset": (Reset(), (1, 2), rex.ConnectionError, requests.ConnectionError,
              requests.ConnectionError),
    "truncated": (Truncate(), (1, 2), rex.ConnectionError, requests.exceptions.ChunkedEncodingError,
                  requests.exceptions.ChunkedEncodingError),
}


def provoke(fault_server, fault, timeout):
    """The error a one-attempt ResilientSession raises for ``fault``."""
    if fault is None:
        url = refused_url("/x")
    else:
        url = fault_server.route("/x", fault).url("/x")
    with ResilientSession(config()) as session:
        with pytest.raises(requests.RequestException) as info:
            session.get(url, timeout=timeout)
    return info.value


@pytest.mark.parametrize("case", FAILURES)
def test_real_failure_is_mapped_and_still_the_requests_class(fault_server, case):
    """A transport failure raises our class, still requests' class, caused by the original."""
    fault, timeout, ours, theirs, cause = FAILURES[case]
    error = provoke(fault_server, fault, timeout)
    assert isinstance(error, ours) and isinstance(error, rex.APIError)
    assert isinstance(error, theirs)
    assert type(error.__cause__) is cause
    assert error.request is not None  # the request, even where requests left it unset
    assert error.request.url.startswith("http://127.0.0.1:")


def test_read_timeout_is_caught_by_except_requests_timeout(fault_server):
    """A hanging server's read timeout is caught by legacy `except requests.Timeout` code."""
    fault_server.route("/hang", Hang(limit=5))
    with ResilientSession(config()) as session:
        try:
            session.get(fault_server.url("/hang"), timeout=(1, 0.2))
        except requests.Timeout as caught:
            error = caught
        else:  # pragma: no cover - the assertion below fails
            error = None
    assert isinstance(error, resilient_requests.TimeoutError)
    assert isinstance(error, requests.ReadTimeout)
    assert fault_server.hits("/hang") == 1


@pytest.mark.parametrize("case", FAILURES)
def test_mapped_error_pickles_to_the_same_class(fault_server, case):
    """A mapped error survives pickling as the same class, with its message."""
    fault, timeout, *_ = FAILURES[case]
    error = provoke(fault_server, fault, timeout)
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is type(error)
    assert len(restored.args) == len(error.args)


# -- raise_for_status --------------------------------------------------------

@pytest.mark.parametrize("code, expected", [
    (401, rex.AuthenticationError),
    (403, rex.AuthenticationError),
    (404, rex.NotFoundError),
    (400, rex.ClientError),
    (409, rex.ClientError),
    (500, rex.ServerError),
    (503, rex.ServerError),
])
def test_raise_for_status_raises_by_status(fault_server, code, expected):
    """With raise_for_status=True an error status raises its class, carrying the response."""
    fault_server.route("/s", status(code))
    with ResilientSession(config(raise_for_status=True)) as session:
        with pytest.raises(expected) as info:
            session.get(fault_server.url("/s"))
    error = info.value
    assert type(error) is expected
    assert isinstance(error, requests.HTTPError)
    assert error.response is not None and error.response.status_code == code
    assert str(code) in str(error)
    assert fault_server.hits("/s") == 1


@pytest.mark.parametrize("code", [200, 404, 500])
def test_without_raise_for_status_the_response_is_returned(fault_server, code):
    """With raise_for_status=False an error status is returned as a response, not raised."""
    fault_server.route("/s", status(code))
    with ResilientSession(config(raise_for_status=False)) as session:
        with session.get(fault_server.url("/s")) as response:
            assert response.status_code == code
