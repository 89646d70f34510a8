"""Faults the test server can answer with, one small frozen value each."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Dict, Optional, Union

__all__ = ["Fault", "Reply", "ok", "status", "redirect", "Echo", "Reset", "Truncate", "Trickle", "Hang", "Hold", "FAULT_TYPES"]


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


Fault = Union[Reply, Echo, Reset, Truncate, Trickle, Hang, Hold]
FAULT_TYPES = (Reply, Echo, Reset, Truncate, Trickle, Hang, Hold)
