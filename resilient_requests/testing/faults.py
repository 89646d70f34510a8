"""Faults the test server can answer with, one small frozen value each."""
from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Dict, Optional, Union

__all__ = ["Fault", "Reply", "ok", "status", "redirect", "Echo", "Reset", "Truncate", "Trickle", "Hang", "Hold",
           "Limit", "FAULT_TYPES"]


@dataclass(frozen=True)
class Reply:
    """Answer with ``status``, ``headers`` and ``body`` after ``delay`` seconds."""

    status: int = 200
    body: bytes = b"ok"
    headers: Dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def ok(body: Union[bytes, str] = b"ok", delay: float = 0.0, **headers: str) -> Reply:
    """A 200 with ``body``, after ``delay`` seconds."""
    return Reply(200, body.encode() if isinstance(body, str) else body, dict(headers), delay)


def status(code: int, retry_after: Optional[Union[int, float, str]] = None, body: bytes = b"",
           delay: float = 0.0) -> Reply:
    """A reply with status ``code`` and, if given, a ``Retry-After`` header."""
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return Reply(code, body or str(code).encode(), headers, delay)


def redirect(location: str, code: int = 302) -> Reply:
    """A redirect to ``location``."""
    return Reply(code, b"", {"Location": location})


@dataclass(frozen=True)
class Echo:
    """A 200 whose JSON body is the request: method, path, headers, body."""

    delay: float = 0.0

    @staticmethod
    def render(method: str, path: str, headers: Dict[str, str], body: bytes) -> bytes:
        return json.dumps({
            "method": method, "path": path, "headers": headers,
            "body": body.decode("latin-1"),
        }).encode()


@dataclass(frozen=True)
class Reset:
    """Read the request, then reset the connection without replying."""


@dataclass(frozen=True)
class Truncate:
    """Declare ``declared`` bytes of body, send ``body``, then close."""

    body: bytes = b"partial"
    declared: int = 1000


@dataclass(frozen=True)
class Trickle:
    """Send a ``status`` (200) with ``headers`` and ``count`` pieces of
    ``chunk``, one every ``every`` seconds (e.g. a 302 whose body trickles).
    With ``in_headers=True`` the pieces go into a header instead, so even the
    status line and headers take ``count * every`` seconds to arrive."""

    chunk: bytes = b"."
    every: float = 0.5
    count: int = 20
    in_headers: bool = False
    status: int = 200
    headers: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hang:
    """Never reply: hold the connection until the client closes it, the server
    stops, or ``limit`` seconds pass. With ``read_body=False`` the request body
    is left unread, so a large upload stalls in the client's send."""

    limit: float = 60.0
    read_body: bool = True


@dataclass(frozen=True, eq=False)
class Hold:
    """Hold the request until ``release`` is set (or ``limit`` seconds pass),
    then reply with ``then``: lets a test decide when in-flight requests end."""

    release: threading.Event
    then: Reply = field(default_factory=Reply)
    limit: float = 30.0


class Limit:
    """An API's rate limit: at most ``rate`` requests answered in any ``per``
    seconds (a sliding window); beyond it, ``429`` with ``Retry-After`` (the
    seconds until the window has room, rounded up, or ``retry_after`` if given).
    With ``advertise``, every answer carries ``RateLimit-Remaining`` and
    ``RateLimit-Reset``. ``refused`` and ``answered`` count what it did."""

    def __init__(self, rate: int, per: float = 1.0, *, retry_after: Optional[float] = None,
                 advertise: bool = False, body: bytes = b"ok") -> None:
        self.rate = rate
        self.per = per
        self.retry_after = retry_after
        self.advertise = advertise
        self.body = body
        self.refused = 0
        self.answered = 0
        self._times: "deque[float]" = deque()
        self._lock = threading.Lock()

    def decide(self) -> Reply:
        """The answer to one request arriving now."""
        with self._lock:
            now = time.monotonic()
            while self._times and now - self._times[0] >= self.per:
                self._times.popleft()
            reset = self.per - (now - self._times[0]) if self._times else 0.0
            if len(self._times) >= self.rate:
                self.refused += 1
                wait = self.retry_after if self.retry_after is not None else max(1, math.ceil(reset))
                headers = {"Retry-After": f"{wait:g}"}
                if self.advertise:
                    headers.update({"RateLimit-Remaining": "0", "RateLimit-Reset": f"{max(1, math.ceil(reset))}"})
                return Reply(429, b"rate limited", headers)
            self._times.append(now)
            self.answered += 1
            headers = {}
            if self.advertise:
                headers = {"RateLimit-Remaining": str(self.rate - len(self._times)),
                           "RateLimit-Reset": f"{max(1, math.ceil(self.per - (now - self._times[0])))}"}
            return Reply(200, self.body, headers)


Fault = Union[Reply, Echo, Reset, Truncate, Trickle, Hang, Hold, Limit]
FAULT_TYPES = (Reply, Echo, Reset, Truncate, Trickle, Hang, Hold, Limit)
