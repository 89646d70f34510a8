"""The Django integration: named sessions from settings, the 503 middleware and the health view."""
from __future__ import annotations

import importlib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import django
import pytest
from django.conf import settings

MIDDLEWARE = ["resilient_requests.contrib.django.ResilientRequestsMiddleware"]

# settings.configure() may run once per process; another test module (or pytest-django)
# may have done it already, so each test sets what it needs with override_settings too.
if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=MIDDLEWARE,
        SECRET_KEY="resilient-requests-tests",
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
    )
    django.setup()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402  (needs configured settings)
from django.http import HttpResponse  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402

import resilient_requests as rr  # noqa: E402
from resilient_requests.contrib.django import close_sessions, get_session, health  # noqa: E402
from resilient_requests.testing import Hold, ok, status  # noqa: E402


def upstream(request, name, rest):
    """Proxy /up/<name>/<rest> to the upstream through client ``name``'s session."""
    response = get_session(name).get(f"/{rest}")
    return HttpResponse(response.content, status=response.status_code)


def broken(request):
    """A view failing with an error that is not about upstream availability."""
    raise ValueError("a bug in the view")


urlpatterns = [
    path("up/<str:name>/<path:rest>", upstream),
    path("broken/", broken),
    path("health/", health),
]


def client_settings(base_url, **sections):
    """One RESILIENT_REQUESTS entry: fast_config's waits, the fault server as base_url, plus ``sections``."""
    entry = {
        "base_url": base_url,
        "timeout": {"connect": 2.0, "read": 5.0},
        "retry": {"max_attempts": 3, "min_wait": 0.001, "max_wait": 0.01},
    }
    for key, value in sections.items():
        entry[key] = {**entry.get(key, {}), **value} if isinstance(value, dict) else value
    return entry


@pytest.fixture
def configure(fault_server):
    """Apply RESILIENT_REQUESTS (and our urls and middleware) for one test; sessions closed after."""
    overrides = []

    def apply(clients):
        override = override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=MIDDLEWARE, DEBUG=False,
                                     ALLOWED_HOSTS=["testserver"], RESILIENT_REQUESTS=clients)
        override.enable()
        overrides.append(override)

    yield apply
    close_sessions()
    for override in reversed(overrides):
        override.disable()


@pytest.fixture
def two_clients(fault_server, configure):
    """A "default" client and a "payments" client on the fast_microservice preset, both at the fault server."""
    configure({
        "default": client_settings(fault_server.base_url),
        "payments": client_settings(fault_server.base_url, preset="fast_microservice",
                                    circuit_breaker={"failure_threshold": 1, "recovery_timeout": 30.0},
                                    retry={"max_attempts": 1}),
    })


def test_each_name_is_one_session_built_from_its_settings(fault_server, two_clients):
    """get_session(name) is the same object on every call, one per name, built from that name's dict."""
    default, payments = get_session(), get_session("payments")
    assert get_session("default") is default and get_session("payments") is payments
    assert default is not payments
    assert default.config.base_url == fault_server.base_url and default.config.retry.max_attempts == 3
    assert payments.config.circuit_breaker.failure_threshold == 1
    assert payments.config.bulkhead == rr.preset("fast_microservice").bulkhead


def test_concurrent_first_use_builds_one_session(two_clients):
    """Sixteen threads asking at once for a name not built yet all get the same session."""
    barrier = threading.Barrier(16)

    def fetch(_):
        barrier.wait(timeout=10)
        return get_session("payments")

    with ThreadPoolExecutor(max_workers=16) as pool:
        sessions = list(pool.map(fetch, range(16)))
    assert len({id(session) for session in sessions}) == 1


def test_unknown_name_is_a_clear_error(two_clients):
    """An unknown name raises ImproperlyConfigured naming it and the configured names."""
    with pytest.raises(ImproperlyConfigured, match=r"no client 'billing'.*configured: 'default', 'payments'"):
        get_session("billing")


def test_without_the_setting_the_default_client_is_the_web_preset(configure):
    """With no RESILIENT_REQUESTS at all, get_session() is a web-preset session;
    any other name is still an error that says what to add."""
    configure(None)
    assert get_session().config.timeout == rr.preset("web").timeout
    with pytest.raises(ImproperlyConfigured, match=r"configured: none.*RESILIENT_REQUESTS = "):
        get_session("payments")


def test_bad_configuration_names_the_key(fault_server, configure):
    """A bad value raises ImproperlyConfigured naming the client and the key."""
    configure({"default": client_settings(fault_server.base_url, retry={"max_attempts": 0})})
    with pytest.raises(ImproperlyConfigured, match=r"RESILIENT_REQUESTS\['default'\]\.retry\.max_attempts=0"):
        get_session()


def test_changing_the_setting_rebuilds_the_sessions(fault_server, two_clients, configure):
    """override_settings of RESILIENT_REQUESTS drops the sessions built from the old value."""
    before = get_session()
    configure({"default": client_settings(fault_server.base_url, retry={"max_attempts": 5})})
    after = get_session()
    assert after is not before and after.config.retry.max_attempts == 5


def test_views_call_the_upstream(fault_server, two_clients):
    """A view reaches the fault server through its named session, retries included."""
    fault_server.route("/data", status(503), ok("payload"))
    response = Client().get("/up/default/data")
    assert (response.status_code, response.content) == (200, b"payload")
    assert fault_server.hits("/data") == 2


def test_open_breaker_becomes_503_with_retry_after(fault_server, two_clients):
    """A CircuitOpenError from a view is a 503 with Retry-After (breaker time left, rounded up) and JSON."""
    fault_server.route("/pay", status(500))
    client = Client()
    assert client.get("/up/payments/pay").status_code == 500  # the upstream's 500, passed through
    response = client.get("/up/payments/pay")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response.json() == {"error": "upstream unavailable", "reason": "circuit_open", "retry_after": 30}
    assert fault_server.hits("/pay") == 1
    assert client.get("/up/default/pay").status_code == 500  # the other client's breaker is its own


def test_full_bulkhead_becomes_503_with_retry_after_1(fault_server, configure):
    """A PoolTimeoutError from a view is a 503 with Retry-After: 1."""
    configure({"default": client_settings(fault_server.base_url,
                                          bulkhead={"max_concurrency": 1, "acquisition_timeout": 0.0})})
    release = threading.Event()
    fault_server.route("/slow", Hold(release, ok()))
    with ThreadPoolExecutor(max_workers=1) as pool:
        busy = pool.submit(get_session().get, "/slow")
        deadline = time.monotonic() + 10
        while fault_server.in_flight < 1:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        response = Client().get("/up/default/fast")
        release.set()
        assert busy.result(timeout=10).status_code == 200
    assert (response.status_code, response["Retry-After"]) == (503, "1")
    assert response.json() == {"error": "upstream unavailable", "reason": "pool_timeout", "retry_after": 1}


def test_other_exceptions_are_left_to_django(two_clients):
    """The middleware returns nothing for other errors: Django answers its own 500."""
    response = Client(raise_request_exception=False).get("/broken/")
    assert response.status_code == 500
    assert not response.has_header("Retry-After")


def test_health_reports_stats_of_every_configured_client(fault_server, two_clients):
    """The health view returns {name: session.stats()} for every configured name, used or not."""
    Client().get("/up/default/data")
    response = Client().get("/health/")
    assert response.status_code == 200 and "no-cache" in response["Cache-Control"]
    body = response.json()
    assert set(body) == {"default", "payments"}
    assert body["default"] == get_session().stats()
    assert body["default"]["origins"][fault_server.base_url]["calls"] == 1
    assert body["payments"]["origins"] == {}
    assert Client().post("/health/").status_code == 405


def test_missing_django_names_the_extra(monkeypatch):
    """Without Django the import fails with the pip command for the extra."""
    for name in [name for name in sys.modules if name == "django" or name.startswith("django.")]:
        monkeypatch.setitem(sys.modules, name, None)  # loaded submodules too: they would be found directly
    monkeypatch.delitem(sys.modules, "resilient_requests.contrib.django")
    with pytest.raises(ImportError, match=r"pip install 'resilient_requests\[django\]'"):
        importlib.import_module("resilient_requests.contrib.django")
