"""The fault matrix: each fault × method × raise_for_status → what the caller gets,
how many requests the server received, and the time bound; and the same faults
played behind a forwarding HTTP proxy (``resilient_requests.testing.ForwardProxy``).

``python -m tests.fault_matrix`` prints the table that docs/concepts/retries.md
shows; a test checks that the page holds exactly this table.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from resilient_requests.testing import Fault, Hang, Reset, Trickle, Truncate, ok, status

#: Method kinds: POST is the non-idempotent case; "POST+key" carries an Idempotency-Key.
METHODS = ("GET", "PUT", "POST", "POST+key")

#: The config every cell runs with (see test_fault_matrix.config()).
READ_TIMEOUT, TOTAL, ATTEMPTS = 0.1, 0.8, 3

_RETRIED = {"GET": ATTEMPTS, "PUT": ATTEMPTS, "POST": 1, "POST+key": ATTEMPTS}
_ONCE = {method: 1 for method in METHODS}

#: name → (fault or None for a closed port, expected outcome, requests received per method kind).
#: An outcome is a status code or an exception class name from resilient_requests.
FAULTS: Dict[str, Tuple[Fault | None, str, Dict[str, int]]] = {  # type: ignore[misc]
    "OK after 50 ms": (ok(delay=0.05), "200", _ONCE),
    "503": (status(503), "503", _RETRIED),
    "429 with Retry-After: 0": (status(429, retry_after=0), "429", _RETRIED),
    "reset before replying": (Reset(), "ConnectionError", _RETRIED),
    "body cut short": (Truncate(b"partial", 1000), "ConnectionError", _RETRIED),
    "trickle 1 byte / 50 ms": (Trickle(b"a", 0.05, 200), "DeadlineExceededError", _ONCE),
    "hang until closed": (Hang(limit=10), "TimeoutError", _RETRIED),
    "refused (port closed)": (None, "ConnectionError", {method: 0 for method in METHODS}),
}

#: Method kinds also played through the proxy.
PROXY_METHODS = ("GET", "POST", "POST+key")

#: Through the proxy, where it differs from FAULTS: name → (outcome, requests the
#: origin received per method kind), or None for a fault not played through the proxy.
#: Everything else plays out as without it. Notably a reset reaches the caller as
#: requests' ProxyError ("Unable to connect to proxy"), yet the proxy had delivered
#: the request: a plain POST is still sent once.
THROUGH_PROXY: Dict[str, Optional[Tuple[str, Dict[str, int]]]] = {
    # The proxy cannot reach the closed port and answers 502 itself: a response,
    # retried like any 502 for idempotent requests; the origin sees nothing.
    "refused (port closed)": ("502", {method: 0 for method in METHODS}),
}

_RAISED_FOR_STATUS = {"503": "ServerError", "502": "ServerError", "429": "ClientError"}


def expected(fault: str, method: str, raise_for_status: bool, proxied: bool = False) -> Tuple[str, int]:
    """The outcome and the number of requests the server received for one cell
    (``proxied``: played through the proxy)."""
    _, outcome, hits = FAULTS[fault]
    if proxied and fault in THROUGH_PROXY:
        differs = THROUGH_PROXY[fault]
        assert differs is not None, f"{fault!r} is not played through the proxy"
        outcome, hits = differs
    if raise_for_status:
        outcome = _RAISED_FOR_STATUS.get(outcome, outcome)
    return outcome, hits[method]


def _trickle(fault: str) -> bool:
    return FAULTS[fault][1] == "DeadlineExceededError"


def read_timeout(fault: str) -> float:
    """The per-read timeout of a cell: longer for the trickle, so that only the deadline can end it."""
    return 1.0 if _trickle(fault) else READ_TIMEOUT


def total(fault: str) -> float:
    """The deadline of a cell: TOTAL for the trickle; elsewhere roomy, so that a
    loaded machine cannot turn a read timeout into a deadline."""
    return TOTAL if _trickle(fault) else 5.0


def time_bound(fault: str) -> float:
    """A generous bound on one cell's duration, in seconds."""
    return TOTAL + 1.5 if _trickle(fault) else 3.0


def cells() -> List[Tuple[str, str, bool]]:
    """Every (fault, method kind, raise_for_status) combination."""
    return [(f, m, r) for f in FAULTS for m in METHODS for r in (False, True)]


def proxy_cells() -> List[Tuple[str, str, bool]]:
    """The combinations played through the proxy."""
    return [(f, m, r) for f in FAULTS if THROUGH_PROXY.get(f, ()) is not None
            for m in PROXY_METHODS for r in (False, True)]


def _through_proxy(fault: str) -> str:
    if THROUGH_PROXY.get(fault, ()) is None:
        return "not played (a deadline cannot cut a proxied connection yet)"
    cells = [expected(fault, method, False, proxied=True) for method in PROXY_METHODS]
    if cells == [expected(fault, method, False) for method in PROXY_METHODS]:
        return "same"
    return " / ".join(f"{outcome} ×{hits}" for outcome, hits in cells)


def markdown_table() -> str:
    """The matrix as docs/concepts/retries.md shows it: one row per fault, cells 'outcome ×requests'."""
    head = ("| fault | " + " | ".join(METHODS) + " | with `raise_for_status=True` | through a proxy ("
            + " / ".join(PROXY_METHODS) + ") |")
    lines = [head, "|" + "---|" * (len(METHODS) + 3)]
    for fault in FAULTS:
        row = []
        for method in METHODS:
            outcome, hits = expected(fault, method, False)
            row.append(f"{outcome} ×{hits}")
        raised = expected(fault, "GET", True)[0]
        lines.append(f"| {fault} | " + " | ".join(row) + f" | {raised if raised != FAULTS[fault][1] else 'same'}"
                     + f" | {_through_proxy(fault)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
