"""The Flask extension: a session per app from app.config, 503 + Retry-After for unavailable upstreams."""
from __future__ import annotations

import gc
import importlib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import flask
import pytest

import resilient_requests as rr
from resilient_requests.contrib.flask import (
    EXTENSION_KEY,
    ResilientRequests,
    current_session,
    get_session,
)
from resilient_requests.testing import Hold, ok, refused_url, status


def fast_settings(base_url, **extra):
    """app.config keys for a session with millisecond retry waits (fast_config's values)."""
    values = {
        "RESILIENT_REQUESTS_BASE_URL": base_url,
        "RESILIENT_REQUESTS_TIMEOUT__CONNECT": 2.0,
        "RESILIENT_REQUESTS_TIMEOUT__READ": 5.0,
        "RESILIENT_REQUESTS_RETRY__MIN_WAIT": 0.001,
        "RESILIENT_REQUESTS_RETRY__MAX_WAIT": 0.01,
    }
    values.update(extra)
    return values


def make_app(fault_server, **extra):
    """A Flask app whose views call the fault server through current_session."""
    app = flask.Flask(__name__)
    app.config.update(fast_settings(fault_server.base_url, **extra))

    @app.get("/proxy/<path:path>")
    def proxy(path):
        upstream = current_session.get(f"/{path}")
        return upstream.text, upstream.status_code

    @app.get("/refused")
    def refused():
        current_session.get(refused_url("/x"))
        return "unreachable"

    return app


@pytest.fixture
def apps():
    """Apps made by a test; each app's session is closed afterwards."""
    made = []
    yield made
    for app in made:
        if EXTENSION_KEY in app.extensions:
            app.extensions[EXTENSION_KEY].close()


def test_session_is_built_from_app_config(fault_server, apps):
    """Typed and string RESILIENT_REQUESTS_* values, and a preset, end up in the session's config."""
    app = make_app(fault_server, RESILIENT_REQUESTS_PRESET="fast_microservice",
                   RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS="4", RESILIENT_REQUESTS_CIRCUIT_BREAKER__FAILURE_THRESHOLD=7)
    apps.append(app)
    ext = ResilientRequests(app)
    session = app.extensions[EXTENSION_KEY]
    assert isinstance(session, rr.ResilientSession) and ext.session is session and get_session(app) is session
    assert session.config.base_url == fault_server.base_url
    assert session.config.retry.max_attempts == 4
    assert session.config.circuit_breaker.failure_threshold == 7
    assert session.config.retry.max_wait == 0.01
    assert session.config == rr.ClientConfig.from_env("RESILIENT_REQUESTS_", app.config)


def test_a_bad_config_value_fails_in_init_app_naming_the_key(fault_server, apps):
    """init_app raises ValueError naming the app.config key and its value."""
    app = make_app(fault_server, RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS="many")
    apps.append(app)
    with pytest.raises(ValueError, match="RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS='many'"):
        ResilientRequests(app)
    assert EXTENSION_KEY not in app.extensions


def test_views_call_the_upstream_through_the_shared_session(fault_server, apps):
    """Two requests reach the upstream through one session that outlives each request and app context."""
    fault_server.route("/data", ok("payload"))
    app = make_app(fault_server)
    apps.append(app)
    ext = ResilientRequests(app)
    client = app.test_client()
    for _ in range(2):
        response = client.get("/proxy/data")
        assert (response.status_code, response.get_data(as_text=True)) == (200, "payload")
    assert fault_server.hits("/data") == 2
    assert ext.session is app.extensions[EXTENSION_KEY]
    stats = ext.session.stats()["origins"][fault_server.base_url]
    assert (stats["calls"], stats["successes"]) == (2, 2)


def test_retries_happen_inside_the_view(fault_server, apps):
    """A 503 then 200 upstream gives the view a 200: the session retried."""
    fault_server.route("/flaky", status(503), ok("fine"))
    app = make_app(fault_server)
    apps.append(app)
    ResilientRequests(app)
    response = app.test_client().get("/proxy/flaky")
    assert (response.status_code, response.get_data(as_text=True)) == (200, "fine")
    assert fault_server.hits("/flaky") == 2


def test_open_breaker_becomes_503_with_retry_after(fault_server, apps):
    """Once the breaker is open, the view's CircuitOpenError is a 503, Retry-After = breaker time left rounded up."""
    fault_server.route("/down", status(500))
    app = make_app(fault_server, RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS=1,
                   RESILIENT_REQUESTS_CIRCUIT_BREAKER__FAILURE_THRESHOLD=1,
                   RESILIENT_REQUESTS_CIRCUIT_BREAKER__RECOVERY_TIMEOUT=30.0)
    apps.append(app)
    ResilientRequests(app)
    client = app.test_client()
    assert client.get("/proxy/down").status_code == 500  # the upstream's own 500, passed through
    response = client.get("/proxy/down")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.get_json() == {"error": "upstream unavailable", "reason": "circuit_open", "retry_after": 30}
    assert fault_server.hits("/down") == 1


def test_retry_after_is_at_least_one_second(fault_server, apps):
    """A breaker that reopens in under a second still answers Retry-After: 1, never 0."""
    fault_server.route("/down", status(500))
    app = make_app(fault_server, RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS=1,
                   RESILIENT_REQUESTS_CIRCUIT_BREAKER__FAILURE_THRESHOLD=1,
                   RESILIENT_REQUESTS_CIRCUIT_BREAKER__RECOVERY_TIMEOUT=0.9)
    apps.append(app)
    ResilientRequests(app)
    client = app.test_client()
    client.get("/proxy/down")
    response = client.get("/proxy/down")
    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
    assert response.get_json()["retry_after"] == 1


def test_full_bulkhead_becomes_503_with_retry_after_1(fault_server, apps):
    """A view that finds no bulkhead slot answers 503, Retry-After: 1, reason pool_timeout."""
    release = threading.Event()
    fault_server.route("/slow", Hold(release, ok()))
    app = make_app(fault_server, RESILIENT_REQUESTS_BULKHEAD__MAX_CONCURRENCY=1,
                   RESILIENT_REQUESTS_BULKHEAD__ACQUISITION_TIMEOUT=0)
    apps.append(app)
    ext = ResilientRequests(app)
    with ThreadPoolExecutor(max_workers=1) as pool:
        busy = pool.submit(ext.session.get, "/slow")
        deadline = time.monotonic() + 10
        while fault_server.in_flight < 1:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        response = app.test_client().get("/proxy/fast")
        release.set()
        assert busy.result(timeout=10).status_code == 200
    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
    assert response.get_json() == {"error": "upstream unavailable", "reason": "pool_timeout", "retry_after": 1}


def test_other_errors_are_left_to_flask(fault_server, apps):
    """A refused connection is not an 'unavailable' answer: Flask's own 500 handling applies."""
    app = make_app(fault_server, RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS=1)
    apps.append(app)
    ResilientRequests(app)
    response = app.test_client().get("/refused")
    assert response.status_code == 500
    assert "Retry-After" not in response.headers


def test_error_handlers_can_be_left_out(fault_server, apps):
    """error_handlers=False registers nothing: the app's own handler for CircuitOpenError runs."""
    fault_server.route("/down", status(500))
    app = make_app(fault_server, RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS=1,
                   RESILIENT_REQUESTS_CIRCUIT_BREAKER__FAILURE_THRESHOLD=1)
    apps.append(app)
    app.register_error_handler(rr.CircuitOpenError, lambda error: ("mine", 502))
    ResilientRequests(app, error_handlers=False)
    client = app.test_client()
    client.get("/proxy/down")
    response = client.get("/proxy/down")
    assert (response.status_code, response.get_data(as_text=True)) == (502, "mine")


def test_app_factory_gives_each_app_its_own_session(fault_server, apps):
    """One extension, init_app on two apps: two sessions, and ext.session follows the app context."""
    ext = ResilientRequests()
    first, second = make_app(fault_server), make_app(fault_server)
    apps.extend([first, second])
    assert ext.init_app(first) is first.extensions[EXTENSION_KEY]
    ext.init_app(second)
    assert first.extensions[EXTENSION_KEY] is not second.extensions[EXTENSION_KEY]
    with second.app_context():
        assert ext.session is second.extensions[EXTENSION_KEY]
        assert get_session() is second.extensions[EXTENSION_KEY]
    with pytest.raises(RuntimeError, match="application context"):
        ext.session  # noqa: B018
    with pytest.raises(RuntimeError, match="already initialised"):
        ext.init_app(first)


def test_lookups_without_an_initialised_app_are_clear_errors(fault_server):
    """get_session() outside an app context, or on an app without the extension, says what to do."""
    with pytest.raises(RuntimeError, match="outside an application context"):
        get_session()
    bare = flask.Flask(__name__)
    with bare.app_context():
        with pytest.raises(RuntimeError, match="not initialised on app"):
            current_session.get(fault_server.url("/"))


def test_session_is_closed_when_the_app_is_collected(fault_server):
    """Dropping the app closes its session: the pooled connection is released."""
    app = make_app(fault_server)
    session = ResilientRequests(app).session
    assert app.test_client().get("/proxy/x").status_code == 200
    pools = session.get_adapter(fault_server.base_url).poolmanager.pools
    assert len(pools) == 1
    del app
    gc.collect()
    assert len(pools) == 0


def test_missing_flask_names_the_extra(monkeypatch):
    """Without Flask the import fails with the pip command for the extra."""
    monkeypatch.setitem(sys.modules, "flask", None)
    monkeypatch.delitem(sys.modules, "resilient_requests.contrib.flask")
    with pytest.raises(ImportError, match=r"pip install 'resilient_requests\[flask\]'"):
        importlib.import_module("resilient_requests.contrib.flask")
