"""What the record-and-replay tests (vcrpy, betamax) send and serve: the same two calls."""
from __future__ import annotations

from typing import Any, List, Tuple

from resilient_requests.testing import FaultServer, ok


def calls(session: Any, base: str) -> List[Tuple[int, str, str]]:
    """A GET and a POST to ``base``: what a test would look at in their answers."""
    got = session.get(f"{base}/users/1", params={"full": "1"})
    posted = session.post(f"{base}/orders", json={"sku": 7})
    return [(r.status_code, r.headers.get("Content-Type", ""), r.text) for r in (got, posted)]


def routes(server: FaultServer) -> None:
    """The answers of those calls."""
    server.route("/users/1", ok('{"id": 1}', **{"Content-Type": "application/json"}))
    server.route("/orders", ok("created", **{"Content-Type": "text/plain"}))
