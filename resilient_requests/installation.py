"""``install()`` / ``uninstall()``: every ``requests`` call in the process made resilient.

For code that keeps ``import requests`` — a third-party SDK, a module you do
not own, a test suite that patches ``requests.get`` — :func:`install` swaps, in
``requests`` itself:

* ``requests.Session`` (and ``requests.sessions.Session``, ``requests.session``)
  for a class with the resilience layers, so ``requests.Session()`` anywhere,
  and every session class *defined after* the call, gets them;
* ``requests.request`` (and the ``requests.api.request`` that ``requests.get``,
  ``requests.post``, … call) for :func:`resilient_requests.request`, which shares
  pools and compartments across calls. ``requests.get`` itself is left as it
  is, so ``mock.patch("requests.get")`` in a test still replaces what the code calls.

What it cannot reach: session classes defined before the call (an SDK that
subclassed ``requests.Session`` at its import) and names bound before it
(``from requests import Session`` ran earlier) keep the plain class; code that
talks to urllib3 directly. Import those modules after ``install()``, or use
:class:`~resilient_requests.ResilientMixin` on their classes.

requests-cache's ``install_cache()`` does the same kind of swap: called before
``install()``, the installed class keeps the cache in front of the layers (a
cached answer is served while a breaker is open); ``uninstall()`` puts back
whatever was there before.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, Optional, Tuple

import requests
import requests.api
import requests.sessions

from . import api
from .config import ClientConfig
from .session import REQUESTS_SESSION, ResilientMixin, ResilientSession

__all__ = ["install", "uninstall", "installed"]

_lock = threading.Lock()
_saved: Optional[Dict[str, Any]] = None


#: What install() replaces: attributes of ``requests`` and of its modules.
_PLACES = ("Session", "sessions.Session", "session", "sessions.session", "request", "api.request")


def _where(place: str) -> Tuple[Any, str]:
    """The module and attribute name of ``place`` ("sessions.Session": requests.sessions, "Session")."""
    module, _, name = place.rpartition(".")
    return (getattr(requests, module) if module else requests), name


def _put(values: Dict[str, Any]) -> None:
    for place, value in values.items():
        setattr(*_where(place), value)


def _session_class(current: type, config: Optional[ClientConfig]) -> type:
    """The class to put in place of ``requests.Session``: ours, or the class
    another tool installed (a cache) with the layers behind it."""
    if current is REQUESTS_SESSION:
        bases: Tuple[type, ...] = (ResilientSession,)
    else:
        bases = (current, ResilientMixin)  # the other tool's layer first, then ours
    return type("Session", bases, {
        "__module__": __name__,
        "__doc__": "``requests.Session`` with the resilience layers (installed by resilient_requests.install()).",
        "default_config": config,
    })


def install(config: Optional[ClientConfig] = None) -> None:
    """Make every ``requests`` call in this process resilient, without changing
    imports: ``requests.get(...)``, ``requests.Session()``, and sessions made
    inside other libraries. ``config`` (default: the module-level API's, see
    :func:`resilient_requests.configure`) applies to both. Calling it again
    replaces the config; :func:`uninstall` puts requests back."""
    global _saved
    if config is not None and not isinstance(config, ClientConfig):
        raise TypeError(f"install() takes a ClientConfig, got {config!r}")
    with _lock:
        if _saved is None:
            _saved = {place: getattr(*_where(place)) for place in _PLACES}
        if config is not None:
            api.configure(config)
        else:
            config = api._current().config
        cls = _session_class(_saved["Session"], config)
        cached = _saved["Session"] is not REQUESTS_SESSION  # another tool's class (a cache) is in front

        def session() -> requests.Session:
            """A new (resilient) session, as ``requests.session()``."""
            return cls()  # type: ignore[no-any-return]

        def request(method: str, url: Any, **kwargs: Any) -> requests.Response:
            """``requests.request``: one call in a session of the installed class (what a
            requests-mock ``Mocker()`` made now patches, and a cache answers in), sharing
            the module-level API's pools and layers unless another tool's class is in front."""
            if cached:
                with cls() as own:  # the cache's class makes its own pools: closed after the call
                    return own.request(method=method, url=url, **kwargs)  # type: ignore[no-any-return]
            return cls(_shared=api._current()).request(method=method, url=url, **kwargs)  # type: ignore[no-any-return]

        _put({"Session": cls, "sessions.Session": cls, "session": session, "sessions.session": session,
              "request": request, "api.request": request})


def uninstall() -> None:
    """Put back what :func:`install` replaced in ``requests``. Sessions made
    meanwhile keep their layers. Does nothing if not installed."""
    global _saved
    with _lock:
        saved, _saved = _saved, None
        if saved is None:
            return
        _put(saved)


def installed() -> bool:
    """Whether :func:`install` is in effect."""
    return _saved is not None
