"""The retry loop: what is retried, how often, how long it waits, and what the caller gets."""
from __future__ import annotations

import io
import logging
from typing import Iterator, List

import pytest
import requests

import resilient_requests as rr
from resilient_requests.retry import waits
from resilient_requests.testing import Hang, Reset, Truncate, ok, refused_url, status

from .conftest import fast_config


@pytest.fixture
def retry_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog, capturing the library's WARNING records."""
    caplog.set_level(logging.WARNING, logger="resilient_requests")
    return caplog


def _retries(caplog: pytest.LogCaptureFixture) -> List[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("retrying")]


def test_get_503_then_ok_is_retried_until_success(fault_server, make_session):
    """A GET answered 503, 503, 200 returns the 200 after three requests."""
    fault_server.route("/x", status(503), status(503), ok("fine"))
    response = make_session().get(fault_server.url("/x"))
    assert (response.status_code, response.text) == (200, "fine")
    assert fault_server.hits("/x") == 3


def test_max_attempts_bounds_requests_and_last_response_is_returned(fault_server, make_session):
    """With max_attempts=4 an always-503 GET reaches the server 4 times and returns the 503."""
    fault_server.route("/x", status(503))
    response = make_session(attempts=4).get(fault_server.url("/x"))
    assert response.status_code == 503
    assert fault_server.hits("/x") == 4


@pytest.mark.parametrize("code", [400, 401, 404, 409, 501])
def test_other_statuses_are_not_retried(fault_server, make_session, code):
    """Statuses outside retry_on_status are returned after one request."""
    fault_server.route("/x", status(code))
    assert make_session().get(fault_server.url("/x")).status_code == code
    assert fault_server.hits("/x") == 1


def test_retry_on_status_is_configurable(fault_server, make_session):
    """A status added to retry_on_status is retried; a default one removed is not."""
    config = fast_config()
    config.retry = rr.RetryConfig(min_wait=0.001, max_wait=0.01, retry_on_status={418})
    session = make_session(config)
    fault_server.route("/teapot", status(418))
    fault_server.route("/busy", status(503))
    session.get(fault_server.url("/teapot"))
    session.get(fault_server.url("/busy"))
    assert (fault_server.hits("/teapot"), fault_server.hits("/busy")) == (3, 1)


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"])
def test_idempotent_methods_are_retried_on_503(fault_server, make_session, method):
    """Every idempotent method is retried on a retryable status."""
    fault_server.route("/x", status(503))
    make_session().request(method, fault_server.url("/x"))
    assert fault_server.hits("/x", method) == 3


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_non_idempotent_methods_are_not_retried_on_503(fault_server, make_session, method):
    """POST and PATCH reach the server once when answered 503."""
    fault_server.route("/x", status(503))
    assert make_session().request(method, fault_server.url("/x"), data=b"pay").status_code == 503
    assert fault_server.hits("/x", method) == 1


def test_idempotency_key_opts_a_post_into_retries(fault_server, make_session):
    """A POST carrying Idempotency-Key is retried like a GET, with the same body each time."""
    fault_server.route("/x", status(503), status(503), ok())
    response = make_session().post(fault_server.url("/x"), data=b"pay 5", headers={"Idempotency-Key": "k1"})
    assert response.status_code == 200
    assert [r.body for r in fault_server.requests] == [b"pay 5"] * 3


def test_file_body_is_rewound_for_each_attempt(fault_server, make_session):
    """A seekable file body is sent whole on every attempt."""
    fault_server.route("/x", status(503), ok())
    body = io.BytesIO(b"0123456789")
    make_session().put(fault_server.url("/x"), data=body)
    assert [r.body for r in fault_server.requests] == [b"0123456789"] * 2


def test_generator_body_is_not_resent(fault_server, make_session):
    """A body that cannot be replayed is not retried once sent, even with Idempotency-Key."""
    fault_server.route("/x", status(503))

    def chunks() -> Iterator[bytes]:
        yield b"once"

    response = make_session().put(fault_server.url("/x"), data=chunks(), headers={"Idempotency-Key": "k"})
    assert response.status_code == 503
    assert fault_server.hits("/x") == 1


def test_read_timeout_is_retried_for_get_only(fault_server, make_session):
    """A read timeout is retried for GET (3 requests) but not for POST (1), and raises TimeoutError."""
    fault_server.route("/slow", Hang(limit=5))
    session = make_session(read=0.1)
    with pytest.raises(rr.TimeoutError) as got:
        session.get(fault_server.url("/slow"))
    assert isinstance(got.value, requests.ReadTimeout)
    assert fault_server.hits("/slow", "GET") == 3
    with pytest.raises(rr.TimeoutError):
        session.post(fault_server.url("/slow"), data=b"x")
    assert fault_server.hits("/slow", "POST") == 1


def test_connection_dropped_after_send_is_retried_for_get_only(fault_server, make_session):
    """A reset after the request went out is retried for GET, never for POST."""
    fault_server.route("/reset", Reset())
    session = make_session()
    with pytest.raises(rr.ConnectionError) as got:
        session.get(fault_server.url("/reset"))
    assert isinstance(got.value.__cause__, requests.ConnectionError)
    assert fault_server.hits("/reset", "GET") == 3
    with pytest.raises(rr.ConnectionError):
        session.post(fault_server.url("/reset"), data=b"x")
    assert fault_server.hits("/reset", "POST") == 1


def test_body_cut_short_is_retried_and_the_retry_can_succeed(fault_server, make_session):
    """A body shorter than its Content-Length is an attempt's failure; the next attempt may succeed."""
    fault_server.route("/x", Truncate(), ok("whole"))
    assert make_session().get(fault_server.url("/x")).text == "whole"
    assert fault_server.hits("/x") == 2


def test_connection_refused_is_retried_for_any_method(make_session, retry_log):
    """A request that never reached the server is retried even for POST, then raises ConnectionError."""
    url = refused_url("/pay")
    with pytest.raises(rr.ConnectionError) as got:
        make_session().post(url, data=b"x")
    assert not isinstance(got.value, rr.CircuitOpenError)
    assert isinstance(got.value.__cause__, requests.ConnectionError)
    assert len(_retries(retry_log)) == 2


def test_caller_hook_errors_are_not_retried(fault_server, make_session):
    """An exception from the caller's response hook propagates unchanged after one request."""
    fault_server.route("/x", ok())

    class HookError(Exception):
        pass

    def hook(response: requests.Response, **kwargs: object) -> None:
        raise HookError("mine")

    with pytest.raises(HookError):
        make_session().get(fault_server.url("/x"), hooks={"response": hook})
    assert fault_server.hits("/x") == 1


def test_response_hook_sees_only_the_final_response(fault_server, make_session):
    """Hooks run once per call, on the response the caller gets."""
    fault_server.route("/x", status(503), ok("done"))
    seen: List[int] = []
    make_session().get(fault_server.url("/x"), hooks={"response": lambda r, **kw: seen.append(r.status_code)})
    assert seen == [200]


def test_invalid_url_is_not_retried(make_session):
    """An invalid URL raises requests' own error at once."""
    with pytest.raises(requests.exceptions.InvalidURL):
        make_session().get("http://")


def test_retry_after_is_honoured_exactly_without_jitter(fault_server, make_session, retry_log):
    """A 503 with Retry-After: 1 waits exactly 1 s (no jitter), within max_wait."""
    config = fast_config()
    config.retry = rr.RetryConfig(min_wait=0.001, max_wait=5.0, jitter=True)
    fault_server.route("/x", status(503, retry_after=1), ok())
    make_session(config).get(fault_server.url("/x"))
    assert [r.wait for r in _retries(retry_log)] == [1.0]


def test_retry_after_is_capped_by_max_wait(fault_server, make_session, retry_log):
    """A Retry-After longer than max_wait waits max_wait."""
    fault_server.route("/x", status(429, retry_after=3600), ok())
    make_session().get(fault_server.url("/x"))
    assert [r.wait for r in _retries(retry_log)] == [0.01]


def test_retry_after_http_date_in_the_past_means_no_wait(fault_server, make_session, retry_log):
    """Retry-After as an HTTP-date is understood; a past date waits 0 s."""
    fault_server.route("/x", status(503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"), ok())
    make_session().get(fault_server.url("/x"))
    assert [r.wait for r in _retries(retry_log)] == [0.0]


def test_waits_grow_exponentially_and_are_capped_without_jitter():
    """Without jitter the n-th wait is min_wait * multiplier**(n-1), capped at max_wait."""
    generator = waits(min_wait=1.0, max_wait=10.0, multiplier=3.0, full_jitter=False)
    generator.send(None)
    assert [generator.send(None) for _ in range(5)] == [1.0, 3.0, 9.0, 10.0, 10.0]


def test_full_jitter_draws_between_zero_and_the_computed_wait():
    """With jitter each wait lies in [0, computed] and they are not all equal to it."""
    generator = waits(min_wait=1.0, max_wait=4.0, multiplier=2.0, full_jitter=True)
    generator.send(None)
    draws = [generator.send(None) for _ in range(200)]
    caps = [1.0, 2.0] + [4.0] * 198
    assert all(0.0 <= d <= c for d, c in zip(draws, caps))
    assert len({round(d, 6) for d in draws}) > 100


def test_all_attempts_carry_the_same_request_id(fault_server, make_session):
    """Every attempt of one call sends one X-Request-ID; the next call sends another."""
    fault_server.route("/x", status(503), status(503), ok())
    session = make_session()
    session.get(fault_server.url("/x"))
    session.get(fault_server.url("/x"))
    ids = [r.headers.get("X-Request-ID") for r in fault_server.requests]
    assert ids[0] and ids[0] == ids[1] == ids[2]
    assert ids[3] and ids[3] != ids[0]


def test_one_warning_per_retry_without_query_or_secrets(fault_server, make_session, retry_log):
    """Each retry logs one WARNING naming id, method, URL without query, attempt n of N, reason and wait."""
    fault_server.route("/x", status(503), status(502), ok())
    make_session().get(
        fault_server.url("/x") + "?token=s3cret",
        headers={"Authorization": "Bearer hunter2", "Cookie": "sid=abc123"},
    )
    records = _retries(retry_log)
    assert len(records) == 2
    request_id = fault_server.requests[0].headers["X-Request-ID"]
    first, second = (r.getMessage() for r in records)
    assert records[0].levelno == logging.WARNING
    assert request_id in first and "GET" in first and fault_server.url("/x") in first
    assert "attempt 1 of 3" in first and "503" in first
    assert "attempt 2 of 3" in second and "502" in second
    assert records[0].request_id == request_id and records[0].attempt == 1
    everything = " ".join(r.getMessage() + repr(r.__dict__) for r in retry_log.records)
    for secret in ("s3cret", "hunter2", "abc123"):
        assert secret not in everything


def test_adapter_retry_does_not_multiply_attempts(fault_server, make_session):
    """The adapter's urllib3 Retry never retries a 503 with Retry-After behind the loop's back."""
    fault_server.route("/x", status(503, retry_after=0))
    make_session(attempts=2).get(fault_server.url("/x"))
    assert fault_server.hits("/x") == 2
