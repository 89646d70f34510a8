"""The Flask app ``python -m bench.web`` runs under a real gunicorn (gthread), once per variant.

``gunicorn 'bench.web_app:make_app()'`` with ``BENCH_WEB_VARIANT`` naming how ``/checkout``
calls the dependency, and ``BENCH_WEB_DEPENDENCY`` its URL:

=================  ==============================================================
``plain``          ``requests.get(url)``: no timeout
``plain_timeout``  ``requests.get(url, timeout=5)``
``defaults``       ``ResilientSession()``, one per worker process, shared by its threads
``extension``      ``resilient_requests.contrib.flask.ResilientRequests(app)``, no
                   configuration (the ``web`` preset, its bulkhead sized to half the
                   worker's threads)
``web``            ``ResilientSession(preset("web"))`` built in code: the same preset,
                   but nothing sizes its bulkhead to the worker
=================  ==============================================================

Every variant answers alike: ``200 paid`` when the dependency answered 2xx, ``503``
when the library refused the call locally (open breaker, full bulkhead: nothing was
sent), ``502`` for any other failure (an error status, a timeout, a dropped
connection). ``/health`` does no I/O; ``/bulkhead`` says the bulkhead's slots per
dependency (``-`` without one). The app is made by each worker (no
``--preload``), so each worker process has its own session, as in production;
importing this module builds nothing.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Tuple

import flask
import requests

import resilient_requests as rr

__all__ = ["VARIANTS", "VARIANT_ENV", "DEPENDENCY_ENV", "make_app"]

VARIANTS = ("plain", "plain_timeout", "defaults", "extension", "web")
VARIANT_ENV = "BENCH_WEB_VARIANT"
DEPENDENCY_ENV = "BENCH_WEB_DEPENDENCY"

_REFUSED = (rr.CircuitOpenError, rr.PoolTimeoutError)  # raised before anything is sent


def _client(app: flask.Flask, variant: str, dependency: str) -> Tuple[Callable[[], requests.Response], str]:
    """How ``variant`` calls the dependency, and its bulkhead's slots (or "-")."""
    if variant == "plain":
        return (lambda: requests.get(dependency)), "-"
    if variant == "plain_timeout":
        return (lambda: requests.get(dependency, timeout=5)), "-"
    if variant == "defaults":
        session = rr.ResilientSession()
    elif variant == "web":
        session = rr.ResilientSession(rr.preset("web"))
    elif variant == "extension":
        from resilient_requests.contrib.flask import ResilientRequests

        session = ResilientRequests(app).session
    else:
        raise ValueError(f"{VARIANT_ENV} must be one of {', '.join(VARIANTS)}, got {variant!r}")
    return (lambda: session.get(dependency)), str(session.config.bulkhead.max_concurrency)


def make_app() -> flask.Flask:
    """The app for the variant in ``BENCH_WEB_VARIANT`` (gunicorn calls this in each worker)."""
    web = flask.Flask("bench_web_app")
    call, slots = _client(web, os.environ[VARIANT_ENV], os.environ[DEPENDENCY_ENV])

    @web.get("/checkout")
    def checkout() -> Any:
        try:
            upstream = call()
        except _REFUSED as error:
            return f"refused: {type(error).__name__}", 503
        except requests.RequestException as error:
            return f"upstream failed: {type(error).__name__}", 502
        return ("paid", 200) if upstream.ok else (f"upstream answered {upstream.status_code}", 502)

    @web.get("/health")
    def health() -> Any:
        return "ok"

    @web.get("/bulkhead")
    def bulkhead() -> Any:
        return slots

    return web

