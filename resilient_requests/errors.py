"""What went wrong, decided in one place.

requests' exception types do not say what happened. After urllib3 gives up, a
read timeout arrives as ``requests.ConnectionError`` wrapping
``MaxRetryError(ReadTimeoutError)``, and so does a read timeout while the body
downloads; a timeout while *sending* arrives as
``ConnectionError(ProtocolError(..., TimeoutError))``; ``ChunkedEncodingError``
is neither a connection error nor a timeout; ``ConnectTimeout`` is both;
urllib3's ``EmptyPoolError`` is not a requests exception at all; and through a
proxy, a connection reset after the request went out arrives as
``ProxyError("Unable to connect to proxy")``, like a proxy that refused to connect.

:data:`RULES` answers, for each, the questions every other layer asks:

* ``reached``: may the server have received the request? (decides whether a
  non-idempotent request may be sent again);
* ``retry``: is it retried — ``NEVER``, ``IDEMPOTENT`` (only idempotent methods
  or requests with an ``Idempotency-Key``), or ``ALWAYS``;
* ``breaker``: does it count as a failure of the origin?
* ``raise_as``: the classes of ours the caller sees (each mapped error is
  also an instance of the original requests class; see ``exceptions.mapped``).

The retry loop, the circuit breaker and the command line all read this table;
none of them inspects an exception on its own.
"""
from __future__ import annotations

import enum
import socket
import ssl
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Tuple, Type, Union

import requests
from urllib3 import exceptions as u3

from . import exceptions as ours

__all__ = ["RetryWhen", "Verdict", "RULES", "classify", "causes", "cassette_miss"]


class RetryWhen(enum.Enum):
    """Which requests a failure may be retried for."""

    NEVER = "never"
    IDEMPOTENT = "idempotent"  # idempotent method, or an Idempotency-Key header
    ALWAYS = "always"  # the request never reached the server


@dataclass(frozen=True)
class Verdict:
    """The classification of one failure."""

    name: str
    reached: bool  # may the server have received the request?
    retry: RetryWhen
    breaker: bool  # counts as a failure of the origin
    raise_as: Tuple[Type[ours.APIError], ...]  # () = re-raise the original unchanged

    @property
    def is_timeout(self) -> bool:
        """Whether the caller sees a :class:`~resilient_requests.TimeoutError`."""
        return ours.TimeoutError in self.raise_as


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: requests' first argument, ``MaxRetryError.reason``,
    ``ProtocolError``'s second argument, ``__cause__`` and ``__context__``."""
    seen = set()
    stack: List[object] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue  # None, or a non-exception ``reason`` such as ssl's strings
        seen.add(id(current))
        yield current
        stack.extend(a for a in reversed(current.args) if isinstance(a, BaseException))
        stack.append(getattr(current, "reason", None))
        stack.append(current.__cause__)
        stack.append(current.__context__)


def _any(*types: type) -> Callable[[BaseException], bool]:
    def match(exc: BaseException) -> bool:
        return any(isinstance(c, types) for c in causes(exc))

    match.__qualname__ = f"any cause is {'/'.join(t.__name__ for t in types)}"
    return match


def _top(*types: type) -> Callable[[BaseException], bool]:
    def match(exc: BaseException) -> bool:
        return isinstance(exc, types)

    match.__qualname__ = f"is {'/'.join(t.__name__ for t in types)}"
    return match


def _both(first: Callable[[BaseException], bool], second: Callable[[BaseException], bool]) -> Callable[[BaseException], bool]:
    def match(exc: BaseException) -> bool:
        return first(exc) and second(exc)

    return match


def _tunnel_refused(exc: BaseException) -> bool:
    """http.client's ``_tunnel`` raises a bare ``OSError`` when the proxy answers
    the CONNECT with anything but 200; no errno, only this message."""
    return type(exc) is OSError and str(exc).startswith("Tunnel connection failed:")


def _proxy_failed(why: Union[type, Callable[[BaseException], bool]]) -> Callable[[BaseException], bool]:
    """requests' ``ProxyError`` whose urllib3 ``ProxyError`` wraps an error that
    is a ``why`` (a class), or for which ``why`` (a function) holds. Only the
    error urllib3 wrapped is looked at, not everything in the chain."""
    test: Callable[[BaseException], bool] = (
        (lambda error: isinstance(error, why)) if isinstance(why, type) else why)

    def match(exc: BaseException) -> bool:
        return isinstance(exc, requests.exceptions.ProxyError) and any(
            isinstance(c, u3.ProxyError) and test(c.original_error) for c in causes(exc))

    match.__qualname__ = f"is ProxyError from {getattr(why, '__name__', why)}"
    return match


_NEVER, _IDEM, _ALWAYS = RetryWhen.NEVER, RetryWhen.IDEMPOTENT, RetryWhen.ALWAYS
_CONN, _TIME, _POOL = ours.ConnectionError, ours.TimeoutError, ours.PoolTimeoutError
_SOCKET_TIMEOUT = (socket.timeout, TimeoutError, u3.TimeoutError)

#: First match wins. Order matters: ``NewConnectionError`` subclasses
#: ``ConnectTimeoutError`` in urllib3, and ``ConnectTimeout`` is a ``ConnectionError``.
RULES: Tuple[Tuple[Callable[[BaseException], bool], Verdict], ...] = (
    # A pooled connection was not free in time (urllib3 raises it bare).
    (_any(u3.EmptyPoolError), Verdict("pool timeout", False, _NEVER, False, (_POOL,))),
    # A urllib3 Retry the caller mounted gave up on statuses: theirs, unchanged.
    (_top(requests.exceptions.RetryError), Verdict("adapter retries exhausted", True, _NEVER, True, ())),
    # A certificate problem will not fix itself and says nothing of the origin's health.
    (_any(ssl.SSLCertVerificationError),
     Verdict("certificate error", False, _NEVER, False, (_CONN,))),
    # Other TLS failures may strike mid-response, after the request went out.
    (_top(requests.exceptions.SSLError), Verdict("TLS error", True, _IDEM, True, (_CONN,))),
    # Through a proxy, urllib3 says "Unable to connect to proxy" (requests' ProxyError)
    # for any failure on a connection that is closed by then, and http.client closes
    # it when the reply fails: a reset or close *after* the request went out through
    # the proxy looks the same. Only these causes prove nothing was sent:
    # the proxy could not be reached (connection refused, its name did not resolve),
    (_proxy_failed(u3.NewConnectionError),
     Verdict("proxy unreachable", False, _ALWAYS, True, (_CONN,))),
    # the proxy did not accept the connection in time,
    (_proxy_failed(u3.ConnectTimeoutError),
     Verdict("proxy connect timeout", False, _ALWAYS, True, (_TIME, _CONN))),
    # or the proxy answered the CONNECT with an error status (407, 502, ...): http.client's
    # _tunnel raises before the tunnel carries a byte of the request.
    (_proxy_failed(_tunnel_refused),
     Verdict("tunnel refused", False, _ALWAYS, True, (_CONN,))),
    # Anything else through the proxy (reset, closed or disconnected after sending, a TLS
    # failure to the proxy, ...) may have struck after the request went out.
    (_top(requests.exceptions.ProxyError), Verdict("proxy error", True, _IDEM, True, (_CONN,))),
    (_top(requests.ConnectTimeout), Verdict("connect timeout", False, _ALWAYS, True, (_TIME, _CONN))),
    (_any(u3.NameResolutionError), Verdict("name resolution failed", False, _ALWAYS, True, (_CONN,))),
    (_any(u3.NewConnectionError), Verdict("connection refused", False, _ALWAYS, True, (_CONN,))),
    (_any(u3.ConnectTimeoutError), Verdict("connect timeout", False, _ALWAYS, True, (_TIME, _CONN))),
    # Read timeouts: waiting for the status line, or while the body downloads.
    (_both(_top(requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError),
           _any(u3.ReadTimeoutError)),
     Verdict("read timeout", True, _IDEM, True, (_TIME,))),
    # A socket timeout while sending: ProtocolError(..., TimeoutError).
    (_both(_top(requests.ConnectionError), _any(*_SOCKET_TIMEOUT)),
     Verdict("send timeout", True, _IDEM, True, (_TIME,))),
    (_top(requests.exceptions.ChunkedEncodingError), Verdict("body cut short", True, _IDEM, True, (_CONN,))),
    # Reset or closed after (part of) the request went out.
    (_top(requests.ConnectionError), Verdict("connection dropped", True, _IDEM, True, (_CONN,))),
    (_top(requests.Timeout), Verdict("timeout", True, _IDEM, True, (_TIME,))),
)

#: Anything not in the table (invalid URL, a caller's hook raising, ...): re-raised as is.
PASS_THROUGH = Verdict("not a transport failure", False, _NEVER, False, ())


#: What record-and-replay tools raise for a request their cassette has no answer
#: for, by module and class name (neither tool is a dependency). The retry loop ends
#: a retry that meets one with the answer replayed before (see pipeline._Hop.attempt).
CASSETTE_MISSES = frozenset({
    ("vcr.errors", "CannotOverwriteExistingCassetteException"),
    ("betamax.exceptions", "BetamaxError"),
})


def cassette_miss(exc: BaseException) -> bool:
    """Whether ``exc`` says a cassette (vcrpy, betamax) has no answer for the request."""
    return any((cls.__module__, cls.__qualname__) in CASSETTE_MISSES for cls in type(exc).__mro__)


def classify(exc: BaseException) -> Verdict:
    """The verdict of the first rule in :data:`RULES` that matches ``exc``."""
    for match, verdict in RULES:
        if match(exc):
            return verdict
    return PASS_THROUGH


def to_raise(exc: BaseException, verdict: Optional[Verdict] = None) -> BaseException:
    """What the caller sees for ``exc``: a mapped error, or ``exc`` itself."""
    verdict = verdict or classify(exc)
    if not verdict.raise_as:
        return exc
    return ours.mapped(verdict.raise_as, exc)
