"""The apps the end-to-end web tests run under a real gunicorn (not imported by pytest).

``gunicorn tests.web_app:flask_app`` or ``tests.web_app:django_app``, with the
dependency's base URL in ``WEB_APP_DEPENDENCY``. Both use the library's
integrations with no configuration of theirs: ``/checkout`` calls the
dependency, ``/health`` does no I/O, ``/bulkhead`` says what the integration
sized the bulkhead to.
"""
from __future__ import annotations

import os

DEPENDENCY = os.environ.get("WEB_APP_DEPENDENCY", "http://127.0.0.1:9")


def _flask():  # type: ignore[no-untyped-def]
    import flask

    from resilient_requests.contrib.flask import ResilientRequests, current_session

    app = flask.Flask("web_app")
    ResilientRequests(app)

    @app.get("/checkout")
    def checkout():  # type: ignore[no-untyped-def]
        upstream = current_session.get(DEPENDENCY + "/pay")
        return ("paid", 200) if upstream.ok else ("upstream failed", 502)

    @app.get("/health")
    def health():  # type: ignore[no-untyped-def]
        return "ok"

    @app.get("/bulkhead")
    def bulkhead():  # type: ignore[no-untyped-def]
        return str(current_session.config.bulkhead.max_concurrency)

    return app


def _django():  # type: ignore[no-untyped-def]
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["127.0.0.1"], ROOT_URLCONF=__name__, SECRET_KEY="web-app-test",
        MIDDLEWARE=["resilient_requests.contrib.django.ResilientRequestsMiddleware"],
    )
    django.setup()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _views():  # type: ignore[no-untyped-def]
    from django.http import HttpResponse
    from django.urls import path

    from resilient_requests.contrib.django import get_session

    def checkout(request):  # type: ignore[no-untyped-def]
        upstream = get_session().get(DEPENDENCY + "/pay")
        return HttpResponse("paid" if upstream.ok else "upstream failed", status=200 if upstream.ok else 502)

    def health(request):  # type: ignore[no-untyped-def]
        return HttpResponse("ok")

    def bulkhead(request):  # type: ignore[no-untyped-def]
        return HttpResponse(str(get_session().config.bulkhead.max_concurrency))

    return [path("checkout", checkout), path("health", health), path("bulkhead", bulkhead)]


if os.environ.get("WEB_APP_KIND") == "django":
    django_app = _django()
    urlpatterns = _views()
else:
    flask_app = _flask()
