"""requests-toolbelt with our layers: ``BaseUrlSession`` combined in either base order,
and ``MultipartEncoder`` uploads sent once, never duplicated.

``BaseUrlSession`` joins with ``urllib.parse.urljoin`` (a path starting with ``/``
replaces the base's path); our ``base_url`` keeps the base's path. Both behaviours
are pinned here as the documented difference. Real requests-toolbelt; what the
FaultServer saw is the evidence.
"""
from __future__ import annotations

from typing import Any

import pytest

import resilient_requests as rr
from resilient_requests.testing import FaultServer, no_waits, ok, status

toolbelt = pytest.importorskip("requests_toolbelt", reason="needs requests-toolbelt (the test extra)")
from requests_toolbelt import MultipartEncoder  # noqa: E402
from requests_toolbelt.sessions import BaseUrlSession  # noqa: E402

CONFIG = rr.ClientConfig(retry=rr.RetryConfig(max_attempts=4, min_wait=0.001, max_wait=0.01))


class OursThenBaseUrl(rr.ResilientMixin, BaseUrlSession):  # type: ignore[misc, valid-type]
    """Ours first: ``config=`` is taken here, ``base_url=`` goes on to toolbelt."""


class BaseUrlThenOurs(BaseUrlSession, rr.ResilientMixin):  # type: ignore[misc, valid-type]
    """toolbelt first: its ``__init__`` takes only ``base_url``, so the config is the class's."""

    default_config = CONFIG


@pytest.fixture(autouse=True)
def _no_waits() -> Any:
    with no_waits():
        yield


def _flaky(server: FaultServer) -> None:
    server.route("/api/users/1", status(503), status(503), ok("api user"))


def test_ours_first_takes_config_and_retries_joined_urls(fault_server: FaultServer) -> None:
    """``config=`` passes (4 attempts allowed); the relative URL joined by toolbelt is retried."""
    _flaky(fault_server)
    with OursThenBaseUrl(config=CONFIG, base_url=fault_server.url("/api/")) as session:
        assert session.config is CONFIG
        assert session.get("users/1").text == "api user"
    assert fault_server.hits("/api/users/1") == 3


def test_toolbelt_first_takes_its_config_from_the_class(fault_server: FaultServer) -> None:
    """toolbelt's ``__init__`` takes no other keyword: ``config=`` raises TypeError there, and
    ``default_config`` on the class is the way to configure it."""
    _flaky(fault_server)
    with pytest.raises(TypeError, match="config"):
        BaseUrlThenOurs(base_url=fault_server.url("/api/"), config=CONFIG)
    with BaseUrlThenOurs(base_url=fault_server.url("/api/")) as session:
        assert session.config is CONFIG
        assert session.get("users/1").text == "api user"
    assert fault_server.hits("/api/users/1") == 3


BREAKER = rr.ClientConfig(retry=rr.RetryConfig(max_attempts=1),
                          circuit_breaker=rr.CircuitBreakerConfig(failure_threshold=2))


class BaseUrlThenOursStrict(BaseUrlThenOurs):
    default_config = BREAKER


@pytest.mark.parametrize("order", ["ours first", "toolbelt first"])
def test_the_breaker_applies_in_either_order(fault_server: FaultServer, order: str) -> None:
    """After the threshold (2), calls to the origin are refused without a request."""
    fault_server.route("/api/down", status(503))
    base = fault_server.url("/api/")
    session = OursThenBaseUrl(config=BREAKER, base_url=base) if order == "ours first" \
        else BaseUrlThenOursStrict(base_url=base)
    with session:
        session.get("down")
        session.get("down")
        with pytest.raises(rr.CircuitOpenError):
            session.get("down")
    assert fault_server.hits("/api/down") == 2


def test_base_url_joins_differently_from_ours(fault_server: FaultServer) -> None:
    """The documented difference: ``/api/`` + ``/users/1`` is ``/users/1`` for toolbelt
    (urljoin), ``/api/users/1`` for ``ResilientSession(base_url=...)``; ``users/1`` is
    ``/api/users/1`` for both."""
    fault_server.route("/users/1", ok("root"))
    fault_server.route("/api/users/1", ok("api"))
    with OursThenBaseUrl(base_url=fault_server.url("/api/")) as toolbelt_joined:
        assert toolbelt_joined.get("/users/1").text == "root"
        assert toolbelt_joined.get("users/1").text == "api"
    with rr.ResilientSession(base_url=fault_server.url("/api/")) as ours:
        assert ours.get("/users/1").text == "api"
        assert ours.get("users/1").text == "api"


def _upload() -> MultipartEncoder:
    return MultipartEncoder(fields={"note": "march", "file": ("report.csv", b"x" * 200_000, "text/csv")})


@pytest.mark.parametrize("idempotency_key", [None, "upload-7"])
def test_a_multipart_upload_is_sent_once_on_503(fault_server: FaultServer, idempotency_key: Any) -> None:
    """A streamed ``MultipartEncoder`` body is read once: a 503 is returned after one request,
    with or without an ``Idempotency-Key`` (the body cannot be sent again)."""
    fault_server.route("/upload", status(503))
    encoder = _upload()
    headers = {"Content-Type": encoder.content_type}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    with rr.ResilientSession(CONFIG) as session:
        assert session.post(fault_server.url("/upload"), data=encoder, headers=headers).status_code == 503
    [seen] = fault_server.requests
    assert seen.method == "POST" and seen.headers["Content-Type"].startswith("multipart/form-data")
    assert seen.body.count(b"x" * 200_000) == 1 and b'name="note"' in seen.body


def test_a_bytes_body_with_an_idempotency_key_is_retried(fault_server: FaultServer) -> None:
    """The contrast: the same POST with a bytes body and an ``Idempotency-Key`` is sent again."""
    fault_server.route("/upload", status(503), ok("stored"))
    encoder = _upload()
    body = encoder.to_string()
    with rr.ResilientSession(CONFIG) as session:
        answer = session.post(fault_server.url("/upload"), data=body,
                              headers={"Content-Type": encoder.content_type, "Idempotency-Key": "upload-8"})
    assert answer.text == "stored"
    assert [len(seen.body) for seen in fault_server.requests] == [len(body), len(body)]


def test_a_multipart_upload_through_a_combined_session(fault_server: FaultServer) -> None:
    """The upload through ``BaseUrlSession`` + our mixin: one request, the whole body."""
    fault_server.route("/api/upload", ok("stored"))
    encoder = _upload()
    with OursThenBaseUrl(config=CONFIG, base_url=fault_server.url("/api/")) as session:
        assert session.post("upload", data=encoder, headers={"Content-Type": encoder.content_type}).text == "stored"
    [seen] = fault_server.requests
    assert seen.body.count(b"x" * 200_000) == 1
