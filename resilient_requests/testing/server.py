"""A fault-injecting HTTP/1.1 server on 127.0.0.1 for tests (threads, no asyncio).

::

    with FaultServer() as server:
        server.route("/flaky", status(503), status(503), ok("fine"))  # a script
        server.route("/slow", ok(delay=0.2))                           # always
        requests.get(server.url("/flaky"))
        assert server.hits("/flaky") == 1
        assert server.peak_in_flight <= 3

A route plays its faults in order, one per request, and repeats the last one.
Unrouted paths answer ``200 ok``. The server counts requests per (method, path),
keeps every request it saw (``server.requests``), and records the peak number
of requests in flight at once.
"""
from __future__ import annotations

import socket
import ssl
import struct
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Set, Tuple

from .faults import FAULT_TYPES, Echo, Fault, Hang, Hold, Limit, Reply, Reset, Trickle, Truncate

__all__ = ["FaultServer", "SeenRequest", "refused_url"]


@dataclass(frozen=True)
class SeenRequest:
    """One request as the server received it."""

    method: str
    path: str  # without the query string
    query: str
    headers: Dict[str, str]
    body: bytes
    peer: str = ""  # the client's "host:port": requests with the same peer came over one connection
    at: float = 0.0  # when it arrived (time.monotonic())


class _Route:
    def __init__(self, faults: Tuple[Fault, ...], cycle: bool) -> None:
        self.faults = faults
        self.cycle = cycle
        self.next = 0

    def take(self) -> Fault:
        count = len(self.faults)
        fault = self.faults[self.next % count if self.cycle else min(self.next, count - 1)]
        self.next += 1
        return fault


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops SYNs when 32 threads connect at once
    allow_reuse_address = True

    def __init__(self, owner: "FaultServer") -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> Tuple[socket.socket, object]:
        sock, addr = super().get_request()
        # Headers and body go out in separate sends; without this, Nagle and
        # delayed ACK add ~40 ms to every keep-alive request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.owner._track(sock)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-reply (a cancelled hedge, a deadline) is
        # part of what this server is for: say nothing. Anything else is a bug.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        self.owner._untrack(request)
        linger = request.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)
        if struct.unpack("ii", linger)[0]:
            # A Reset fault: shutdown(SHUT_WR) would send a clean FIN first;
            # a bare close() with a zero linger sends the RST.
            request.close()
            return
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: List[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return b""

    def _handle(self) -> None:
        owner = self.server.owner
        path, _, query = self.path.partition("?")
        fault = owner._begin(self.command, path)
        try:
            unread = isinstance(fault, Hang) and not fault.read_body
            body = b"" if unread else self._read_body()
            peer = f"{self.client_address[0]}:{self.client_address[1]}"
            seen = SeenRequest(self.command, path, query, dict(self.headers.items()), body, peer, time.monotonic())
            owner._record(seen)
            self._play(fault, seen)
        finally:
            owner._end()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_TRACE = _handle

    def _send(self, status: int, headers: Dict[str, str], body: bytes, length: Optional[int] = None) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.wfile.flush()

    def _play(self, fault: Fault, seen: SeenRequest) -> None:
        owner = self.server.owner
        if isinstance(fault, Limit):
            fault = fault.decide()
        if isinstance(fault, Reply):
            if fault.delay:
                owner._stopped.wait(fault.delay)
            self._send(fault.status, fault.headers, fault.body)
        elif isinstance(fault, Echo):
            if fault.delay:
                owner._stopped.wait(fault.delay)
            body = Echo.render(seen.method, seen.path, seen.headers, seen.body)
            self._send(200, {"Content-Type": "application/json"}, body)
        elif isinstance(fault, Reset):
            # SO_LINGER with a zero timeout turns close() into a TCP RST.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        elif isinstance(fault, Truncate):
            self._send(200, {}, fault.body, length=fault.declared)
            self.close_connection = True
        elif isinstance(fault, Trickle):
            if fault.in_headers:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            else:
                self.send_response(fault.status)
                for name, value in fault.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(fault.chunk) * fault.count))
                self.end_headers()
            self.wfile.flush()
            for _ in range(fault.count):
                if owner._stopped.wait(fault.every):
                    break
                try:
                    self.wfile.write(fault.chunk)
                    self.wfile.flush()
                except OSError:
                    break
            if fault.in_headers and not owner._stopped.is_set():
                try:
                    self.wfile.write(b"\r\nContent-Length: 2\r\n\r\nok")
                except OSError:
                    pass
            self.close_connection = True
        elif isinstance(fault, Hold):
            deadline = time.monotonic() + fault.limit
            while not fault.release.wait(0.02):
                if owner._stopped.is_set() or time.monotonic() > deadline:
                    break
            self._play(fault.then, seen)
        elif isinstance(fault, Hang):
            deadline = time.monotonic() + fault.limit
            self.connection.settimeout(0.05)
            while not owner._stopped.is_set() and time.monotonic() < deadline:
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        break  # the client gave up
                except socket.timeout:
                    continue
                except OSError:
                    break
            self.close_connection = True
        else:  # pragma: no cover - guarded by route()
            raise TypeError(f"unknown fault {fault!r}")


class FaultServer:
    """A threaded HTTP server on 127.0.0.1 with scripted faults; a context manager."""

    def __init__(self, ssl_context: Optional["ssl.SSLContext"] = None) -> None:
        """``ssl_context``: a server-side context to serve HTTPS instead of HTTP."""
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._routes: Dict[str, _Route] = {}
        self._counts: Dict[Tuple[str, str], int] = {}
        self._seen: List[SeenRequest] = []
        self._sockets: Set[socket.socket] = set()
        self._in_flight = 0
        self._peak = 0
        self._stopped = threading.Event()
        self._server: Optional[_HTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- life cycle --
    def start(self) -> "FaultServer":
        """Start serving in a background thread."""
        self._server = _HTTPServer(self)
        if self._ssl_context is not None:
            self._server.socket = self._ssl_context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            # shutdown() waits up to one poll interval: 5 ms keeps a test's teardown short.
            target=self._server.serve_forever, kwargs={"poll_interval": 0.005},
            name=f"FaultServer:{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection and join the server thread."""
        if self._server is None:
            return
        self._stopped.set()
        self._server.shutdown()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=10)
        self._server = None

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses --
    @property
    def port(self) -> int:
        """The port the server listens on."""
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with an SSL context)."""
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` on this server."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    # -- script --
    def route(self, path: str, *faults: Fault, cycle: bool = False) -> "FaultServer":
        """Answer requests to ``path`` with ``faults`` in order, repeating the last
        (with ``cycle=True``: starting over from the first)."""
        if not faults:
            raise ValueError("route() needs at least one fault")
        for fault in faults:
            if not isinstance(fault, FAULT_TYPES):
                raise TypeError(f"route() takes faults from resilient_requests.testing, got {fault!r}")
        with self._lock:
            self._routes[path] = _Route(tuple(faults), cycle)
        return self

    # -- what the server saw --
    def hits(self, path: Optional[str] = None, method: Optional[str] = None) -> int:
        """Requests received, optionally only for ``path`` and/or ``method``."""
        with self._lock:
            return sum(
                n for (m, p), n in self._counts.items()
                if (path is None or p == path) and (method is None or m == method.upper())
            )

    @property
    def requests(self) -> List[SeenRequest]:
        """Every request received, in order."""
        with self._lock:
            return list(self._seen)

    @property
    def peak_in_flight(self) -> int:
        """The most requests the server was handling at one time."""
        return self._peak

    @property
    def in_flight(self) -> int:
        """Requests being handled now."""
        return self._in_flight

    def reset_counts(self) -> None:
        """Forget what was seen (routes stay)."""
        with self._lock:
            self._counts.clear()
            self._seen.clear()
            self._peak = self._in_flight

    # -- called by the handler --
    def _begin(self, method: str, path: str) -> Fault:
        with self._lock:
            key = (method, path)
            self._counts[key] = self._counts.get(key, 0) + 1
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            route = self._routes.get(path)
            return route.take() if route is not None else Reply()

    def _record(self, seen: SeenRequest) -> None:
        with self._lock:
            self._seen.append(seen)

    def _end(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)


def refused_url(path: str = "/") -> str:
    """A URL on 127.0.0.1 whose port has nothing listening: connecting is refused."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}{path if path.startswith('/') else '/' + path}"
