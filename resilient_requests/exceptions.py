"""Exceptions, all still caught by the ``except`` clauses legacy code has.

::

    requests.RequestException
     └── APIError
          ├── ConnectionError      (also requests.ConnectionError)
          │    └── CircuitOpenError   the origin's breaker is open: no I/O was done
          │         ├── ThrottledError   adaptive throttling rejected it locally
          │         └── RateLimitedError no permit of the dependency's rate limit in time
          ├── TimeoutError         (also requests.Timeout)
          │    └── DeadlineExceededError   the call's total deadline passed
          ├── PoolTimeoutError     no bulkhead slot or pooled connection in time: no I/O was done
          ├── ClientError          (also requests.HTTPError) a 4xx, with raise_for_status
          │    ├── AuthenticationError   401, 403
          │    └── NotFoundError         404
          └── ServerError          (also requests.HTTPError) a 5xx, with raise_for_status

A transport error from requests is re-raised as an instance of *both* our class
and the requests class it stands for (see :func:`mapped`): a read timeout is a
``TimeoutError`` and still a ``requests.ReadTimeout``; an ``SSLError`` is a
``ConnectionError`` and still a ``requests.exceptions.SSLError``. The original
is its ``__cause__``.

Every name of ``requests.exceptions`` is importable from here as well.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Optional, Tuple, Type

import requests
import requests.exceptions as _rex

if TYPE_CHECKING:
    # The names the star import below brings, spelled out for type checkers:
    # all but ConnectionError, which this module redefines as a subclass of
    # requests', and requests' aliases of urllib3's and json's classes.
    from requests.exceptions import ChunkedEncodingError as ChunkedEncodingError
    from requests.exceptions import ConnectTimeout as ConnectTimeout
    from requests.exceptions import ContentDecodingError as ContentDecodingError
    from requests.exceptions import FileModeWarning as FileModeWarning
    from requests.exceptions import HTTPError as HTTPError
    from requests.exceptions import InvalidHeader as InvalidHeader
    from requests.exceptions import InvalidJSONError as InvalidJSONError
    from requests.exceptions import InvalidProxyURL as InvalidProxyURL
    from requests.exceptions import InvalidSchema as InvalidSchema
    from requests.exceptions import InvalidURL as InvalidURL
    from requests.exceptions import JSONDecodeError as JSONDecodeError
    from requests.exceptions import MissingSchema as MissingSchema
    from requests.exceptions import ProxyError as ProxyError
    from requests.exceptions import ReadTimeout as ReadTimeout
    from requests.exceptions import RequestException as RequestException
    from requests.exceptions import RequestsDependencyWarning as RequestsDependencyWarning
    from requests.exceptions import RequestsWarning as RequestsWarning
    from requests.exceptions import RetryError as RetryError
    from requests.exceptions import SSLError as SSLError
    from requests.exceptions import StreamConsumedError as StreamConsumedError
    from requests.exceptions import Timeout as Timeout
    from requests.exceptions import TooManyRedirects as TooManyRedirects
    from requests.exceptions import UnrewindableBodyError as UnrewindableBodyError
    from requests.exceptions import URLRequired as URLRequired
else:
    from requests.exceptions import *  # noqa: F401,F403  (the drop-in promise)

__all__ = [
    name for name, value in vars(_rex).items()
    if isinstance(value, type) and issubclass(value, BaseException) and not name.startswith("_")
]
__all__ += [
    "APIError",
    "ConnectionError",
    "TimeoutError",
    "CircuitOpenError",
    "DeadlineExceededError",
    "PoolTimeoutError",
    "ThrottledError",
    "RateLimitedError",
    "ClientError",
    "AuthenticationError",
    "NotFoundError",
    "ServerError",
    "error_for_status",
    "mapped",
]
__all__ = sorted(set(__all__))


class APIError(requests.RequestException):
    """Base class of every error this library raises itself. ``.response``
    is the last response, or ``None``."""


class ConnectionError(APIError, requests.ConnectionError):  # noqa: A001
    """The request could not be completed over the network."""


class TimeoutError(APIError, requests.Timeout):  # noqa: A001
    """A connect, read or send timed out; every timeout the caller sees is one."""


class DeadlineExceededError(TimeoutError):
    """The call's total deadline (``TimeoutConfig.total`` or ``deadline=``) passed."""


class CircuitOpenError(ConnectionError):
    """The origin's circuit breaker is open (or half-open with every trial
    place taken): the call failed fast without touching the network.

    ``origin`` is ``scheme://host:port``; ``retry_after`` the seconds until the
    breaker admits a trial call (0 while half-open: trials are in flight).
    """

    def __init__(self, *args: Any, origin: str = "", retry_after: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.origin = origin
        self.retry_after = retry_after

    def __str__(self) -> str:
        if self.args:
            return super().__str__()
        # The breaker's refusals carry no message: it is written here, when someone
        # reads it (a refusal is on the fast path; most are caught, not printed).
        if self.retry_after > 0:
            return f"circuit open for {self.origin}; next trial in {self.retry_after:.3f}s"
        return f"circuit half-open for {self.origin}; its trial calls are in flight"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ThrottledError(CircuitOpenError):
    """The client rejected the call itself: the origin accepted too few recent
    calls (adaptive throttling, ``ThrottleConfig``). Nothing was sent.
    ``probability`` is the rejection probability at that moment."""

    def __init__(self, *args: Any, probability: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.probability = probability

    def __str__(self) -> str:
        if self.args:
            return super().__str__()
        return f"call to {self.origin} rejected locally (adaptive throttling, p={self.probability:.2f})"


class RateLimitedError(CircuitOpenError):
    """No permit of the dependency's rate limit (``RateLimitConfig``) was free
    within ``max_wait``, or the dependency is paused after a ``429``: nothing
    was sent. ``retry_after`` is when a permit will be free."""


class PoolTimeoutError(APIError):
    """No bulkhead slot, or no pooled connection, was free within its timeout:
    nothing was sent."""


class ClientError(APIError, requests.HTTPError):
    """The final response was a 4xx and the caller asked for errors to be raised."""


class AuthenticationError(ClientError):
    """401 Unauthorized or 403 Forbidden."""


class NotFoundError(ClientError):
    """404 Not Found."""


class ServerError(APIError, requests.HTTPError):
    """The final response was a 5xx and the caller asked for errors to be raised."""


def error_for_status(response: requests.Response) -> Optional[APIError]:
    """The error that stands for ``response``'s status, or ``None`` below 400."""
    status = response.status_code
    if status < 400:
        return None
    if status in (401, 403):
        cls: Type[APIError] = AuthenticationError
    elif status == 404:
        cls = NotFoundError
    elif status < 500:
        cls = ClientError
    else:
        cls = ServerError
    reason = response.reason
    if isinstance(reason, bytes):
        reason = reason.decode("latin-1", "replace")
    url = response.url.split("?", 1)[0] if response.url else ""
    return cls(f"{status} {reason} for url: {url}", response=response, request=response.request)


@functools.lru_cache(maxsize=None)
def _mapped_class(ours: Tuple[Type[APIError], ...], original: Type[BaseException]) -> type:
    bases: Tuple[type, ...] = ours
    if not any(issubclass(c, original) for c in ours):
        bases += (original,)
    if len(bases) == 1:
        return bases[0]
    namespace = {"__module__": __name__, "_ours": ours, "_original": original, "__reduce__": _reduce}
    return type(original.__name__, bases, namespace)


def _reduce(self: Any) -> Any:
    return (_rebuild, (self._ours, self._original, self.args))


def _rebuild(ours: Tuple[Type[APIError], ...], original: type, args: Tuple[Any, ...]) -> BaseException:
    return _mapped_class(ours, original)(*args)  # type: ignore[no-any-return]


def mapped(ours: Tuple[Type[APIError], ...], original: BaseException) -> APIError:
    """An instance of a class that is each of ``ours`` and ``type(original)``,
    carrying the original's message, request and response (pickles by name)."""
    # Only requests' own classes are kept as a second base: urllib3's raw
    # EmptyPoolError, say, becomes a plain PoolTimeoutError.
    kind: type = (  # not Type[BaseException]: mypy deems those unhashable for lru_cache
        type(original) if isinstance(original, requests.RequestException) else ours[0]
    )
    cls = _mapped_class(ours, kind)
    error: APIError = cls(
        *original.args,
        request=getattr(original, "request", None),
        response=getattr(original, "response", None),
    )
    return error
