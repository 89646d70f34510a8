"""A Flask app that calls an upstream through one ResilientSession per app.

The :class:`~resilient_requests.contrib.flask.ResilientRequests` extension builds the
session from ``app.config`` (``RESILIENT_REQUESTS_*`` keys, the layout of
``ClientConfig.from_env``), shares it between every request and thread, and turns an
open breaker or a full bulkhead into ``503`` with ``Retry-After``. The app adds its own
answers for the rest: ``504`` when the upstream timed out, ``502`` when it kept failing.

``python examples/flask_app.py`` does not start a web server: it starts a local
fault-injecting upstream on 127.0.0.1, drives the app with Flask's test client and
prints each answer. To serve it for real (see ``examples/gunicorn.conf.py``)::

    ORDERS_URL=http://orders:8080 gunicorn -c examples/gunicorn.conf.py --chdir examples 'flask_app:create_app()'
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

from flask import Flask, jsonify

import resilient_requests
from resilient_requests.contrib.flask import ResilientRequests, current_session, get_session

Answer = Tuple[Any, int]


def create_app(orders_url: Optional[str] = None, settings: Optional[Dict[str, Any]] = None) -> Flask:
    """The app, calling the orders service at ``orders_url`` (default: ``$ORDERS_URL``).
    Its client config: the ``fast_microservice`` preset, then any ``RESILIENT_REQUESTS_*``
    environment variables, then ``settings`` (extra ``app.config`` keys)."""
    app = Flask(__name__)
    app.config["RESILIENT_REQUESTS_PRESET"] = "fast_microservice"
    app.config["RESILIENT_REQUESTS_BASE_URL"] = orders_url or os.environ.get("ORDERS_URL", "http://127.0.0.1:8080")
    # The deployment's RESILIENT_REQUESTS_* variables (e.g. gunicorn.conf.py's raw_env) win.
    app.config.update({k: v for k, v in os.environ.items() if k.startswith("RESILIENT_REQUESTS_")})
    app.config.update(settings or {})
    ResilientRequests(app)  # one session for the app: breakers and bulkhead are shared

    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> Answer:
        upstream = current_session.get(f"/orders/{order_id}")  # relative to the base URL
        if upstream.status_code == 404:
            return jsonify(error="no such order", order_id=order_id), 404
        if upstream.status_code >= 500:  # still failing after the retries
            return jsonify(error="orders service failing", upstream_status=upstream.status_code), 502
        return jsonify(order=upstream.json(), order_id=order_id), 200

    @app.errorhandler(resilient_requests.TimeoutError)
    def upstream_timeout(error: resilient_requests.TimeoutError) -> Answer:
        # CircuitOpenError and PoolTimeoutError are the extension's (503 + Retry-After).
        return jsonify(error="orders service timed out"), 504

    return app


def main() -> int:
    """Drive the app with Flask's test client against a local flaky upstream."""
    from resilient_requests.testing import FaultServer, Hang, ok, status

    with FaultServer() as orders:
        orders.route("/orders/1", ok('{"id": 1, "state": "shipped"}'))
        orders.route("/orders/2", status(503), ok('{"id": 2, "state": "paid"}'))  # flaky once
        orders.route("/orders/3", status(404))
        orders.route("/orders/4", Hang(limit=5))  # never answers
        orders.route("/orders/5", status(503))  # keeps failing
        app = create_app(orders.base_url, {
            # Short timeouts and waits, so the example ends in a moment.
            "RESILIENT_REQUESTS_TIMEOUT__READ": 0.3,
            "RESILIENT_REQUESTS_RETRY__MIN_WAIT": 0.01,
            "RESILIENT_REQUESTS_RETRY__MAX_WAIT": 0.05,
            "RESILIENT_REQUESTS_CIRCUIT_BREAKER__FAILURE_THRESHOLD": 4,
        })
        client = app.test_client()
        for path in ("/orders/1", "/orders/2", "/orders/3", "/orders/4", "/orders/5", "/orders/1"):
            before = orders.hits()
            answer = client.get(path)
            retry_after = answer.headers.get("Retry-After")
            print(f"GET {path} -> {answer.status_code} {answer.get_json()}"
                  + (f" Retry-After: {retry_after}" if retry_after else "")
                  + f" [upstream requests: {orders.hits() - before}]")
        state = get_session(app).circuit_state(orders.url())
        print(f"breaker for the orders service: {state.value} (4 failures in a row: three timeouts "
              f"for order 4, a 503 for order 5; so order 1 failed fast, without an upstream request)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
