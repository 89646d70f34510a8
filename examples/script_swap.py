"""An old requests script, moved to resilient_requests by changing one line.

The functions below were written for requests. The only change is the import::

    -import requests
    +import resilient_requests as requests

``requests.get``/``requests.post``, ``raise_for_status()`` and the
``except requests.exceptions.ConnectionError`` clause work as before; every call
now has timeouts, retries with backoff, a breaker per origin and a bulkhead,
configured from ``RESILIENT_REQUESTS_*`` environment variables if set.

Run it (it starts its own fault-injecting server on 127.0.0.1 and stops it)::

    python examples/script_swap.py
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Union

import resilient_requests as requests  # was: import requests

# ---------------------------------------------------------------- the old script


def fetch_report(base_url: str, day: str) -> Dict[str, Any]:
    """The day's report; raises for an error status, as it always did."""
    response = requests.get(f"{base_url}/report", params={"day": day})
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def send_event(base_url: str, event: Dict[str, Any]) -> int:
    """Post an event. A POST is retried only when it never reached the server,
    or, as here, when it carries an ``Idempotency-Key``."""
    response = requests.post(f"{base_url}/events", json=event, headers={"Idempotency-Key": event["id"]})
    response.raise_for_status()
    return response.status_code


def ping(url: str) -> Union[int, str]:
    """A health check that must not raise."""
    try:
        return requests.get(url, timeout=1).status_code
    except requests.exceptions.ConnectionError as exc:
        return f"unreachable ({type(exc).__name__})"


# ---------------------------------------------------------------- the demonstration


def main() -> int:
    """Run the old functions against a local flaky upstream and print what happened."""
    from resilient_requests.testing import FaultServer, Reply, ok, refused_url, status

    # Short waits between attempts, so the example ends in a moment; a deployment
    # sets these (or RESILIENT_REQUESTS_PRESET) in its environment instead. The
    # module-level functions read the environment on their first call.
    os.environ.setdefault("RESILIENT_REQUESTS_RETRY__MIN_WAIT", "0.05")
    os.environ.setdefault("RESILIENT_REQUESTS_RETRY__MAX_WAIT", "0.2")

    report = json.dumps({"day": "2024-05-01", "orders": 42})
    with FaultServer() as server:
        server.route("/report", status(503), status(503), ok(report, **{"Content-Type": "application/json"}))
        server.route("/events", status(503), Reply(202, b"accepted"))
        base = server.base_url

        data = fetch_report(base, "2024-05-01")
        print(f"report: {data} (server saw {server.hits('/report')} requests: 503, 503, 200)")

        code = send_event(base, {"id": "evt-1", "kind": "signup"})
        print(f"event: {code} (server saw {server.hits('/events')} requests: 503, then 202)")

        print(f"ping dead host: {ping(refused_url('/health'))}")
        print(f"ping live host: {ping(server.url('/health'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
