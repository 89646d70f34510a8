"""A single-file Django project whose view calls an upstream through a ResilientSession.

``resilient_requests.contrib.django`` builds one session per name in
``settings.RESILIENT_REQUESTS`` (once per process, shared by every thread), its
middleware turns an open breaker or a full bulkhead into ``503`` with ``Retry-After``,
and its ``health`` view reports each session's counters and breakers. The view below
adds its own answers for the rest: ``504`` when the upstream timed out, ``502`` when it
kept failing.

``python examples/django_app.py`` does not start a web server: it starts a local
fault-injecting upstream on 127.0.0.1, drives the project with Django's test client
and prints each answer. To serve it for real (see ``examples/gunicorn.conf.py``)::

    INVENTORY_URL=http://inventory:8080 gunicorn -c examples/gunicorn.conf.py --chdir examples 'django_app:application()'
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

import django
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

import resilient_requests
from resilient_requests.contrib.django import close_sessions, get_session, health


def configure(inventory_url: Optional[str] = None, client: Optional[Dict[str, Any]] = None) -> None:
    """Django's settings, in code: this module is the URLconf; the ``inventory`` client
    calls ``inventory_url`` (default: ``$INVENTORY_URL``), with ``client`` merged into its
    configuration (``ClientConfig.from_dict`` layout)."""
    settings.configure(
        DEBUG=False,
        SECRET_KEY="example-only-not-secret",
        ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        DATABASES={},
        MIDDLEWARE=["resilient_requests.contrib.django.ResilientRequestsMiddleware"],
        RESILIENT_REQUESTS={
            "inventory": {
                "preset": "fast_microservice",
                "base_url": inventory_url or os.environ.get("INVENTORY_URL", "http://127.0.0.1:8080"),
                **(client or {}),
            },
        },
    )
    django.setup()


def stock(request: HttpRequest, sku: str) -> HttpResponse:
    """``GET /stock/<sku>/``: the inventory service's answer for ``sku``."""
    try:
        upstream = get_session("inventory").get(f"/stock/{sku}")
    except resilient_requests.TimeoutError:
        # CircuitOpenError and PoolTimeoutError are the middleware's (503 + Retry-After).
        return JsonResponse({"error": "inventory timed out"}, status=504)
    if upstream.status_code == 404:
        return JsonResponse({"error": "unknown sku", "sku": sku}, status=404)
    if upstream.status_code >= 500:  # still failing after the retries
        return JsonResponse({"error": "inventory failing", "upstream_status": upstream.status_code}, status=502)
    return JsonResponse({"sku": sku, "stock": upstream.json()})


urlpatterns = [
    path("stock/<str:sku>/", stock),
    path("health/upstreams/", health),  # every client's stats(): counters and breaker states
]


def application() -> Any:
    """A WSGI application (for gunicorn: ``'django_app:application()'``)."""
    from django.core.wsgi import get_wsgi_application

    configure()
    return get_wsgi_application()


def main() -> int:
    """Drive the project with Django's test client against a local flaky upstream."""
    from django.test import Client

    from resilient_requests.testing import FaultServer, Hang, ok, status

    with FaultServer() as inventory:
        inventory.route("/stock/apple", ok('{"count": 12}'))
        inventory.route("/stock/pear", status(503), ok('{"count": 3}'))  # flaky once
        inventory.route("/stock/plum", status(404))
        inventory.route("/stock/fig", Hang(limit=5))  # never answers
        inventory.route("/stock/kiwi", status(503))  # keeps failing
        # Short timeouts and waits, so the example ends in a moment.
        configure(inventory.base_url, {
            "timeout": {"read": 0.3},
            "retry": {"min_wait": 0.01, "max_wait": 0.05},
            "circuit_breaker": {"failure_threshold": 4},
        })
        client = Client()
        for sku in ("apple", "pear", "plum", "fig", "kiwi", "apple"):
            before = inventory.hits()
            answer = client.get(f"/stock/{sku}/")
            retry_after = answer.headers.get("Retry-After")
            print(f"GET /stock/{sku}/ -> {answer.status_code} {json.loads(answer.content)}"
                  + (f" Retry-After: {retry_after}" if retry_after else "")
                  + f" [upstream requests: {inventory.hits() - before}]")
        health = json.loads(client.get("/health/upstreams/").content)["inventory"]
        origin = health["origins"][inventory.base_url]
        print(f"health: inventory breaker {origin['breaker_state']}, calls {origin['calls']}, "
              f"retries {origin['retries']}, short-circuited {origin['short_circuited']}")
        close_sessions()  # as a worker would at exit
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
