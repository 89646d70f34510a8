"""Flask integration (extra ``flask``): one :class:`~resilient_requests.ResilientSession`
per app, built from ``app.config``, and ``503`` answers when an upstream is unavailable.

::

    from flask import Flask, jsonify
    from resilient_requests.contrib.flask import ResilientRequests, current_session

    app = Flask(__name__)
    app.config["RESILIENT_REQUESTS_PRESET"] = "fast_microservice"
    app.config["RESILIENT_REQUESTS_BASE_URL"] = "http://payments:8080/api"
    app.config["RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS"] = 2
    resilient = ResilientRequests(app)          # or ResilientRequests() + init_app(app)

    @app.get("/checkout/<int:order_id>")
    def checkout(order_id):
        upstream = current_session.get(f"/orders/{order_id}/status")
        if not upstream.ok or "json" not in upstream.headers.get("Content-Type", ""):
            return jsonify(error="payments unavailable"), 502   # a final 5xx, an HTML error page
        return jsonify(upstream.json())

With no configuration at all the session uses the ``web`` preset (a few seconds'
deadline, a short recovery, a bulkhead per dependency that waits 50 ms), its
bulkhead sized to half of the worker's threads where the server says how many it
has (gunicorn, uWSGI, waitress' runner; or ``RESILIENT_REQUESTS_WORKER_THREADS``);
a bulkhead you configure that is not below them gets one warning in the log.

The keys are those of ``ClientConfig.from_env`` (``RESILIENT_REQUESTS_PRESET``,
``RESILIENT_REQUESTS_<FIELD>``, ``RESILIENT_REQUESTS_<SECTION>__<FIELD>``), typed
values or strings; ``app.config.from_prefixed_env()`` brings them in from the
environment. A bad key or value fails in ``init_app``, naming it.

The session lives as long as the app: it is stored in
``app.extensions["resilient_requests"]``, shared by every request and thread, and
closed when the app is garbage-collected or the interpreter exits — never at the end
of a request or app context, which would throw its pooled connections and breaker
state away each time.

A :class:`~resilient_requests.CircuitOpenError` or
:class:`~resilient_requests.PoolTimeoutError` that escapes a view becomes
``503 Service Unavailable`` with ``Retry-After`` (whole seconds, at least 1: the
breaker's time left until its trial call, or 1 for a full bulkhead) and a JSON body
``{"error": "upstream unavailable", "reason": "circuit_open" | "pool_timeout",
"retry_after": N}``. Pass ``error_handlers=False`` to handle them yourself.
"""
from __future__ import annotations

import logging
import weakref
from typing import Any, Optional

from ..config import ClientConfig
from ..config_sources import from_env
from ..session import ResilientSession
from ._http import UNAVAILABLE, missing_extra, unavailable
from ._server import VARIABLE, fit_to_worker, worker_threads

try:
    import flask
    from werkzeug.local import LocalProxy
except ImportError as _error:
    raise missing_extra(__name__, "Flask", "flask", _error) from _error

__all__ = ["ResilientRequests", "get_session", "current_session", "EXTENSION_KEY", "CONFIG_PREFIX"]

#: Where ``init_app`` stores the app's session: ``app.extensions[EXTENSION_KEY]``.
EXTENSION_KEY = "resilient_requests"

#: The prefix of the ``app.config`` keys read by default.
CONFIG_PREFIX = "RESILIENT_REQUESTS_"


class ResilientRequests:
    """The Flask extension: ``ResilientRequests(app)``, or ``ResilientRequests()`` and
    later ``init_app(app)`` for each app an app factory makes.

    ``prefix`` is the ``app.config`` key prefix; ``config``, if given, is used for
    every app instead of reading ``app.config``; ``error_handlers=False`` leaves
    ``CircuitOpenError``/``PoolTimeoutError`` to the app's own handlers.
    """

    def __init__(self, app: Optional[flask.Flask] = None, *, prefix: str = CONFIG_PREFIX,
                 config: Optional[ClientConfig] = None, error_handlers: bool = True) -> None:
        if config is not None and not isinstance(config, ClientConfig):
            raise TypeError(f"config must be a ClientConfig or None, got {config!r}")
        self.prefix = prefix
        self.config = config
        self.error_handlers = error_handlers
        self.app = app
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> ResilientSession:
        """Build ``app``'s session, store it in ``app.extensions`` and register the
        ``503`` error handlers; return the session (e.g. to add listeners)."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                f"ResilientRequests is already initialised on app {app.name!r}; "
                f"use get_session(app) to reach its session"
            )
        if self.config is not None:
            config = self.config
            size = False
        else:
            config = from_env(self.prefix, app.config, default_preset="web")
            size = not any(key.startswith((self.prefix + "PRESET", self.prefix + "BULKHEAD__MAX_CONCURRENCY"))
                           for key in app.config)
        threads = worker_threads(app.config.get(VARIABLE))
        config = fit_to_worker(config, threads, size=size, log=logging.getLogger(config.logging.logger_name))
        session = ResilientSession(config)
        app.extensions[EXTENSION_KEY] = session
        # Close the session with the app (or at interpreter exit), not per request.
        weakref.finalize(app, session.close)
        if self.error_handlers:
            for error_class in UNAVAILABLE:
                app.register_error_handler(error_class, unavailable_response)
        return session

    @property
    def session(self) -> ResilientSession:
        """The session of the current app (inside an app context), else of the app
        given to the constructor."""
        if flask.has_app_context():
            app = flask.current_app._get_current_object()  # type: ignore[attr-defined]
            if EXTENSION_KEY in app.extensions or self.app is None:
                return get_session(app)
        if self.app is not None:
            return get_session(self.app)
        raise RuntimeError(
            "ResilientRequests.session needs an application context (or an app given to "
            "ResilientRequests(app)); inside a view, or use `with app.app_context():`"
        )


def get_session(app: Optional[flask.Flask] = None) -> ResilientSession:
    """The session of ``app``, or of the current app inside an app context (a view)."""
    if app is None:
        if not flask.has_app_context():
            raise RuntimeError(
                "get_session() was called outside an application context: call it in a view, "
                "inside `with app.app_context():`, or pass the app: get_session(app)"
            )
        app = flask.current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        session: ResilientSession = app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            f"ResilientRequests is not initialised on app {app.name!r}: "
            f"call ResilientRequests(app) or ResilientRequests().init_app(app) first"
        ) from None
    return session


#: The current app's session, for views: ``current_session.get("/users/1")``.
current_session: ResilientSession = LocalProxy(get_session)  # type: ignore[assignment]


def unavailable_response(error: Exception) -> Any:
    """The Flask error handler: ``503`` + ``Retry-After`` + a small JSON body for an open
    breaker or a full bulkhead (registered by :meth:`ResilientRequests.init_app`)."""
    answer = unavailable(error)
    if answer is None:  # only registered for UNAVAILABLE; let anything else through unchanged
        raise error
    response = flask.jsonify(answer.body)
    response.status_code = answer.status
    response.headers.update(answer.headers)
    return response
