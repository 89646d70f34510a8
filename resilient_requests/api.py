"""The module-level API: ``resilient_requests.get(...)`` and friends.

Like requests' own, each call runs in a fresh session, so no cookie or other
session state passes from one call to the next. Unlike requests' own, the
connection pools are shared by every call in the process, and the breakers,
bulkheads and budgets come from the process-wide registry of compartments
(shared with every session calling the same dependency with the same policy),
so an outage is remembered between calls.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

import requests

from . import forking
from .compartments import REGISTRY, Registry
from .config import ClientConfig
from .events import add_process_listener, remove_process_listener
from .session import ResilientSession, _Shared

__all__ = ["configure", "reset", "registry", "add_listener", "remove_listener", "request", "get", "options", "head", "post", "put", "patch",
           "delete", "session"]

_lock = threading.Lock()
_shared: Optional[_Shared] = None


def _after_fork() -> None:
    """In a forked child: the parent's pools, breakers and bulkhead stay the
    parent's; the next call builds fresh ones (from the same config)."""
    global _lock, _shared
    _lock = threading.Lock()
    shared = _shared
    _shared = None if shared is None else _Shared(shared.config)


forking.after_fork(_after_fork)


def configure(config: Optional[ClientConfig] = None) -> None:
    """Use ``config`` (default: ``ClientConfig()``; before the first call or
    ``configure()``, the module reads ``ClientConfig.from_env()``) for module-level calls from now
    on, with fresh pools; ``config.dependencies`` gives dependencies their own
    policies. Breakers and bulkheads come from the registry, by dependency and
    policy: call :func:`reset` as well to forget what they learnt. Calls in
    flight finish on the old config."""
    global _shared
    if config is not None and not isinstance(config, ClientConfig):
        raise TypeError(f"configure() takes a ClientConfig, got {config!r}")
    with _lock:
        _shared = _Shared(config or ClientConfig())


def _current() -> _Shared:
    global _shared
    shared = _shared
    if shared is None:
        with _lock:
            if _shared is None:
                _shared = _Shared(ClientConfig.from_env())  # RESILIENT_REQUESTS_* variables
            shared = _shared
    return shared


def reset(dependency: Optional[str] = None) -> None:
    """Forget the process's resilience state: every compartment (breakers
    closed, bulkheads empty, budgets and throttles full), or only that of
    ``dependency`` (an origin URL such as ``"https://api.example.com"``, or a
    dependency's name). Sessions keep working; their next call starts fresh.
    For tests, and for an operator's admin view."""
    REGISTRY.reset(dependency)


def add_listener(listener: Any) -> None:
    """Register ``listener`` with every session of the process — those that exist,
    those made later (by your code or a library's), and the module-level API —
    as ``session.add_listener`` does for one. See :class:`resilient_requests.Listener`."""
    add_process_listener(listener)


def remove_listener(listener: Any) -> None:
    """Undo :func:`add_listener` (listeners added to a session directly stay)."""
    remove_process_listener(listener)


def registry() -> Registry:
    """The process-wide registry of compartments: ``registry().stats()`` lists
    every dependency's breaker state, bulkhead and counters."""
    return REGISTRY


def session() -> ResilientSession:
    """A new :class:`ResilientSession` with default config (like ``requests.session()``)."""
    return ResilientSession()


def request(method: str, url: Any, **kwargs: Any) -> requests.Response:
    """Send a request, as ``requests.request`` does, through the shared resilience layers."""
    return ResilientSession(_shared=_current()).request(method=method, url=url, **kwargs)


def get(url: Any, params: Any = None, **kwargs: Any) -> requests.Response:
    """Send a GET request."""
    return request("get", url, params=params, **kwargs)


def options(url: Any, **kwargs: Any) -> requests.Response:
    """Send an OPTIONS request."""
    return request("options", url, **kwargs)


def head(url: Any, **kwargs: Any) -> requests.Response:
    """Send a HEAD request (redirects not followed unless asked, as in requests)."""
    kwargs.setdefault("allow_redirects", False)
    return request("head", url, **kwargs)


def post(url: Any, data: Any = None, json: Any = None, **kwargs: Any) -> requests.Response:
    """Send a POST request (retried only when it never reached the server, or
    when it carries an ``Idempotency-Key``)."""
    return request("post", url, data=data, json=json, **kwargs)


def put(url: Any, data: Any = None, **kwargs: Any) -> requests.Response:
    """Send a PUT request."""
    return request("put", url, data=data, **kwargs)


def patch(url: Any, data: Any = None, **kwargs: Any) -> requests.Response:
    """Send a PATCH request (not idempotent: see :func:`post`)."""
    return request("patch", url, data=data, **kwargs)


def delete(url: Any, **kwargs: Any) -> requests.Response:
    """Send a DELETE request."""
    return request("delete", url, **kwargs)
