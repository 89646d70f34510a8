"""Django integration (extra ``django``): named sessions from settings, a middleware that
answers ``503`` when an upstream is unavailable, and a health view.

``settings.py``::

    RESILIENT_REQUESTS = {
        "default": {"preset": "default", "timeout": {"read": 5.0}},
        "payments": {"preset": "fast_microservice", "base_url": "http://payments:8080/api",
                     "retry": {"max_attempts": 2}},
    }
    MIDDLEWARE = [..., "resilient_requests.contrib.django.ResilientRequestsMiddleware"]

``urls.py``::

    from resilient_requests.contrib.django import health
    urlpatterns = [..., path("health/upstreams/", health)]

a view::

    from resilient_requests.contrib.django import get_session

    def checkout(request, order_id):
        upstream = get_session("payments").get(f"/orders/{order_id}/status")
        if not upstream.ok or "json" not in upstream.headers.get("Content-Type", ""):
            return JsonResponse({"error": "payments unavailable"}, status=502)
        return JsonResponse(upstream.json())

Each value of ``RESILIENT_REQUESTS`` has the layout of ``ClientConfig.from_dict``: an
optional ``"preset"`` (``"web"`` if none is named), top-level fields, and one dict
per section. ``get_session()`` works without the setting: the ``"default"`` client
is then the ``web`` preset. Without a bulkhead of its own, a client's bulkhead is
sized to half of the worker's threads where the server says how many it has
(gunicorn, uWSGI, waitress' runner; or ``settings.RESILIENT_REQUESTS_WORKER_THREADS``);
a configured bulkhead that is not below them gets one warning in the log. A bad key
or value, or an unknown name, raises ``ImproperlyConfigured`` naming it, on first use.

:func:`get_session` builds each named session once per process, on first use, and every
thread shares it (that is what makes its breakers and bulkhead work). When a test
changes ``RESILIENT_REQUESTS`` (``override_settings``) the sessions are closed and
rebuilt from the new value; :func:`close_sessions` does the same by hand.

The middleware turns a :class:`~resilient_requests.CircuitOpenError` or
:class:`~resilient_requests.PoolTimeoutError` raised by a view into ``503 Service
Unavailable`` with ``Retry-After`` (whole seconds, at least 1: the breaker's time left
until its trial call, or 1 for a full bulkhead) and a JSON body ``{"error": "upstream
unavailable", "reason": "circuit_open" | "pool_timeout", "retry_after": N}``.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Mapping, Optional

from ..config import ClientConfig
from ..config_sources import from_dict
from ..session import ResilientSession
from ._http import missing_extra, unavailable
from ._server import VARIABLE, fit_to_worker, worker_threads

try:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.signals import setting_changed
    from django.http import HttpRequest, HttpResponse, JsonResponse
    from django.views.decorators.cache import never_cache
    from django.views.decorators.http import require_safe
except ImportError as _error:
    raise missing_extra(__name__, "Django", "django", _error) from _error

__all__ = ["SETTING", "get_session", "close_sessions", "ResilientRequestsMiddleware", "health"]

#: The name of the Django setting read by :func:`get_session`.
SETTING = "RESILIENT_REQUESTS"

_sessions: Dict[str, ResilientSession] = {}
_lock = threading.Lock()


def _clients() -> Mapping[str, Any]:
    """``settings.RESILIENT_REQUESTS``, checked to be a mapping (absent = empty)."""
    clients = getattr(settings, SETTING, None)
    if clients is None:
        return {}
    if not isinstance(clients, Mapping):
        raise ImproperlyConfigured(
            f"settings.{SETTING} must be a dict of client name -> configuration, got {clients!r}"
        )
    return clients


def _config(name: str) -> ClientConfig:
    """The configuration of client ``name`` from settings."""
    clients = _clients()
    if name == "default" and name not in clients:
        clients = {"default": {}}  # no configuration: the web preset
    if name not in clients:
        known = ", ".join(repr(key) for key in clients) or "none"
        raise ImproperlyConfigured(
            f"no client {name!r} in settings.{SETTING} (configured: {known}); add "
            f"{SETTING} = {{{name!r}: {{'preset': 'default', ...}}}} to your settings"
        )
    where = f"settings.{SETTING}[{name!r}]"
    data = clients[name]
    if not isinstance(data, Mapping):
        raise ImproperlyConfigured(f"{where} must be a dict in ClientConfig.from_dict layout, got {data!r}")
    try:
        config = from_dict({"preset": "web", **data}, where=f"{where}.")
        threads = worker_threads(getattr(settings, VARIABLE, None))
    except (TypeError, ValueError) as error:
        raise ImproperlyConfigured(str(error)) from error
    size = "preset" not in data and "max_concurrency" not in data.get("bulkhead", {})
    return fit_to_worker(config, threads, size=size, log=logging.getLogger(config.logging.logger_name))


def get_session(name: str = "default") -> ResilientSession:
    """The session of client ``name`` from ``settings.RESILIENT_REQUESTS``: built on first
    use, then the same object for every caller and thread of this process.

    Raises ``ImproperlyConfigured`` for a name that is not configured or a bad configuration.
    """
    session = _sessions.get(name)
    if session is not None:
        return session
    with _lock:
        session = _sessions.get(name)
        if session is None:
            session = _sessions[name] = ResilientSession(_config(name))
    return session


def close_sessions() -> None:
    """Close every session built so far and forget them; the next :func:`get_session`
    builds afresh from settings. Done automatically when ``RESILIENT_REQUESTS`` changes."""
    with _lock:
        sessions = list(_sessions.values())
        _sessions.clear()
    for session in sessions:
        session.close()


def _on_setting_changed(sender: Any, setting: str = "", **kwargs: Any) -> None:
    """Rebuild the sessions when a test overrides ``RESILIENT_REQUESTS``."""
    if setting == SETTING:
        close_sessions()


setting_changed.connect(_on_setting_changed, dispatch_uid="resilient_requests.contrib.django")


class ResilientRequestsMiddleware:
    """Answers ``503`` + ``Retry-After`` for a ``CircuitOpenError`` or ``PoolTimeoutError``
    raised in a view; every other exception goes on to Django's own handling."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Pass the request on unchanged."""
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> Optional[HttpResponse]:
        """The ``503`` response for an unavailable upstream, else ``None``."""
        answer = unavailable(exception)
        if answer is None:
            return None
        return JsonResponse(answer.body, status=answer.status, headers=answer.headers)


@never_cache
@require_safe
def health(request: HttpRequest) -> HttpResponse:
    """``GET``: ``{name: session.stats()}`` for every client in ``settings.RESILIENT_REQUESTS``
    (building the ones not used yet, which does no I/O). Always ``200``: an open breaker
    is reported, not turned into an unhealthy instance that a load balancer would drop."""
    return JsonResponse({name: get_session(name).stats() for name in _clients()})
