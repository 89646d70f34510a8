"""A forwarding HTTP proxy and CONNECT tunnel on 127.0.0.1 for tests (threads, stdlib only).

::

    with FaultServer() as origin, ForwardProxy(mode="reset") as proxy:
        session.post(origin.url("/x"), proxies={"http": proxy.url})  # reset after forwarding
        assert origin.hits("/x") == 1 and proxy.requests == 1

One proxy serves both kinds of client: a request in absolute form
(``GET http://host/path``) is forwarded to the origin, and ``CONNECT host:port``
opens a tunnel. ``mode`` says how the proxy treats its clients:

``"forward"``
    Forward each request and relay the origin's answer as it arrives (with
    ``Connection: close``); tunnel each CONNECT. The proxy mirrors the end of
    the origin's connection: an origin that resets gets the client reset, one
    that closes gets the client's connection closed. An origin that cannot be
    reached is answered ``502 Bad Gateway``.
``"reset"``
    Forward the request, wait until the origin answers (its status line and
    headers) or ends the connection, drop the answer and reset the client's
    connection (a TCP RST: ``SO_LINGER`` 0). Through a tunnel, which the proxy
    cannot read: relay both ways, and when the origin's side ends (closed or
    reset), reset the client's side.
``"close"``
    Like ``"reset"``, but close the client's connection cleanly (a FIN)
    without answering.
``"refuse"``
    Answer every CONNECT, and every request, with ``status`` (``502`` unless
    told, e.g. ``407``) without contacting the origin: no byte is tunnelled.

The proxy counts what it saw (:attr:`ForwardProxy.connects`,
:attr:`ForwardProxy.requests`, :attr:`ForwardProxy.seen`); :meth:`ForwardProxy.stop`
(or leaving the ``with`` block) closes every socket and joins every thread it started.
"""
from __future__ import annotations

import select
import socket
import struct
import threading
from http import HTTPStatus
from typing import Callable, List, Literal, Optional, Set, Tuple
from urllib.parse import urlsplit

__all__ = ["ForwardProxy", "ProxyMode"]

#: How the proxy treats its clients (see the module's docstring).
ProxyMode = Literal["forward", "reset", "close", "refuse"]

_MODES = ("forward", "reset", "close", "refuse")
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate",
    "te", "trailer", "upgrade",
})
_MAX_HEAD = 65536
#: How a client's connection ends: cleanly (:func:`_close`) or with a reset (:func:`_reset`).
_Ending = Callable[[socket.socket], None]
_POLL = 0.05  # how often blocked threads look at the stop flag, in seconds


class _Gone(Exception):
    """The client hung up while the proxy waited for the origin."""


class _Conn:
    """A socket with a read buffer: lines and exact reads for the HTTP parts."""

    def __init__(self, sock: socket.socket, stopped: threading.Event) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.stopped = stopped

    def fill(self, watch: Optional[socket.socket] = None) -> bool:
        """Receive more bytes; False at the end of the stream. Raises
        ``ConnectionResetError`` for a reset, and :class:`_Gone` if the proxy
        stops or ``watch`` (the client, while the origin is awaited) hangs up."""
        while True:
            if self.stopped.is_set():
                raise _Gone("proxy stopped")
            watched = [self.sock] if watch is None else [self.sock, watch]
            readable = _readable(watched, _POLL)
            if self.sock in readable:
                data = self.sock.recv(65536)
                if not data:
                    return False
                self.buffer += data
                return True
            if watch is not None and watch in readable:
                if not _alive(watch):
                    raise _Gone("the client hung up")
                watch = None  # the client sent more (pipelined): stop watching

    def head(self, watch: Optional[socket.socket] = None) -> Optional[bytes]:
        """The bytes up to and including the blank line ending a head, or None
        if the stream ends first."""
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buffer[:end + 4])
                del self.buffer[:end + 4]
                return head
            if len(self.buffer) > _MAX_HEAD or not self.fill(watch):
                return None

    def line(self) -> Optional[bytes]:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buffer[:end + 2])
                del self.buffer[:end + 2]
                return line
            if not self.fill():
                return None

    def exactly(self, count: int) -> Optional[bytes]:
        while len(self.buffer) < count:
            if not self.fill():
                return None
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


def _readable(socks: List[socket.socket], timeout: float) -> List[socket.socket]:
    """Those of ``socks`` ready to read (or closed, or reset) within ``timeout``
    seconds; with poll() where there is one, so descriptors past FD_SETSIZE work."""
    if not hasattr(select, "poll"):  # pragma: no cover - Windows
        return list(select.select(socks, [], [], timeout)[0])
    poller = select.poll()
    for sock in socks:
        poller.register(sock, select.POLLIN)
    ready = {fd for fd, _ in poller.poll(timeout * 1000)}
    return [sock for sock in socks if sock.fileno() in ready]


def _alive(sock: socket.socket) -> bool:
    """Whether the peer of a readable socket is still there (it did not close or reset)."""
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except OSError:
        return False


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP RST: ``SO_LINGER`` on with a zero timeout."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _close(sock: socket.socket) -> None:
    """Close ``sock`` cleanly: a FIN after everything sent so far."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    sock.close()


def _parse_head(head: bytes) -> Tuple[str, List[Tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers: List[Tuple[str, str]] = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _header(headers: List[Tuple[str, str]], name: str) -> Optional[str]:
    return next((value for key, value in headers if key.lower() == name), None)


def _render(start: str, headers: List[Tuple[str, str]]) -> bytes:
    kept = [f"{name}: {value}\r\n" for name, value in headers if name.lower() not in _HOP_BY_HOP]
    return (start + "\r\n" + "".join(kept) + "Connection: close\r\n\r\n").encode("latin-1")


def _answer(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Proxy Error"
    body = f"{status} {phrase} (test proxy)".encode()
    return (f"HTTP/1.1 {status} {phrase}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode("latin-1") + body


class ForwardProxy:
    """A threaded forwarding HTTP proxy and CONNECT tunnel on 127.0.0.1; a context manager."""

    def __init__(self, mode: ProxyMode = "forward", *, status: int = 502) -> None:
        """``mode``: how clients are treated (see the module's docstring);
        ``status``: the answer of ``mode="refuse"``, and to a CONNECT or
        request whose origin cannot be reached."""
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
        self.mode: ProxyMode = mode
        self.status = status
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._sockets: Set[socket.socket] = set()
        self._threads: List[threading.Thread] = []
        self._seen: List[str] = []
        self._connects = 0
        self._requests = 0
        self._listener: Optional[socket.socket] = None

    # -- life cycle --
    def start(self) -> "ForwardProxy":
        """Listen on a free port of 127.0.0.1 and accept clients in a background thread."""
        if self._listener is not None:
            raise RuntimeError("proxy already started")
        self._stopped.clear()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        self._listener = listener
        self._spawn(self._accept_loop, f"ForwardProxy:{self.port}")
        return self

    def stop(self) -> None:
        """Stop accepting, shut down every connection and join every thread."""
        listener = self._listener
        if listener is None:
            return
        self._stopped.set()
        with self._lock:
            acceptor = self._threads[0]
        try:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept loop at once (Linux)
        except OSError:
            pass  # elsewhere it notices within _POLL
        acceptor.join(timeout=10)
        # No thread or socket is started from here on: _track refuses once stopped.
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(timeout=10)
        listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()
            self._threads.clear()
        self._listener = None

    def __enter__(self) -> "ForwardProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses --
    @property
    def port(self) -> int:
        """The port the proxy listens on."""
        assert self._listener is not None, "proxy not started"
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the value for ``proxies={"http": ..., "https": ...}``."""
        return f"http://127.0.0.1:{self.port}"

    # -- what the proxy saw --
    @property
    def connects(self) -> int:
        """CONNECT requests received."""
        with self._lock:
            return self._connects

    @property
    def requests(self) -> int:
        """Requests to forward received (CONNECTs not included)."""
        with self._lock:
            return self._requests

    @property
    def seen(self) -> List[str]:
        """The request line of everything received, in order (``"CONNECT 127.0.0.1:8443"``,
        ``"POST http://127.0.0.1:8080/x"``)."""
        with self._lock:
            return list(self._seen)

    # -- threads and sockets --
    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            # The acceptor stays first; finished client threads are dropped.
            self._threads = self._threads[:1] + [t for t in self._threads[1:] if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._stopped.is_set():
                sock.close()
                return False
            self._sockets.add(sock)
            return True

    def _untrack(self, *socks: Optional[socket.socket]) -> None:
        with self._lock:
            for sock in socks:
                if sock is not None:
                    self._sockets.discard(sock)

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopped.is_set():
            if not _readable([listener], _POLL):
                continue
            try:
                client, _ = listener.accept()
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                continue  # woken by stop(), or the client is gone already
            if self._track(client):
                self._spawn(self._serve, f"ForwardProxy:{self.port}:client", client)

    def _dial(self, host: str, port: int) -> Optional[socket.socket]:
        try:
            upstream = socket.create_connection((host, port), timeout=5)
        except OSError:
            return None
        upstream.settimeout(None)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return upstream if self._track(upstream) else None

    # -- one client connection --
    def _serve(self, client: socket.socket) -> None:
        upstream: Optional[socket.socket] = None
        ending: _Ending = _close
        try:
            reader = _Conn(client, self._stopped)
            head = reader.head()
            if head is None:
                return
            start, headers = _parse_head(head)
            method, _, rest = start.partition(" ")
            target = rest.rpartition(" ")[0] or rest
            with self._lock:
                self._seen.append(f"{method} {target}")
                if method == "CONNECT":
                    self._connects += 1
                else:
                    self._requests += 1
            if self.mode == "refuse":
                if method != "CONNECT":
                    self._request_body(reader, headers)  # unread, it would turn close() into a reset
                client.sendall(_answer(self.status))
                return
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = self._dial(host.strip("[]"), int(port))
                if upstream is None:
                    client.sendall(_answer(self.status))
                    return
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                ending = self._tunnel(reader, upstream)
            else:
                ending = self._forward(reader, method, target, headers)
        except _Gone:
            pass
        except ValueError:  # not HTTP the proxy understands (a bad port, a bad length)
            try:
                client.sendall(_answer(400))
            except OSError:
                pass
        except OSError:
            ending = _reset
        finally:
            self._untrack(client, upstream)
            if self._stopped.is_set():
                ending = _close  # stopping: the far side's end says nothing
            ending(client)
            if upstream is not None:
                upstream.close()

    def _forward(self, reader: _Conn, method: str, target: str,
                 headers: List[Tuple[str, str]]) -> _Ending:
        client = reader.sock
        body = self._request_body(reader, headers)
        if body is None:
            return _close
        parts = urlsplit(target)
        upstream = self._dial(parts.hostname or "127.0.0.1", parts.port or 80)
        if upstream is None:
            client.sendall(_answer(self.status))
            return _close
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            upstream.sendall(_render(f"{method} {path} HTTP/1.1", headers) + body)
            answer = _Conn(upstream, self._stopped)
            try:
                head = answer.head(watch=client)
            except ConnectionResetError:
                return _reset if self.mode != "close" else _close
            if self.mode == "reset":
                return _reset
            if self.mode == "close" or head is None:
                return _close
            start, response_headers = _parse_head(head)
            client.sendall(_render(start, response_headers) + answer.take())
            return self._pipe(upstream, client)
        finally:
            self._untrack(upstream)
            upstream.close()

    @staticmethod
    def _request_body(reader: _Conn, headers: List[Tuple[str, str]]) -> Optional[bytes]:
        """The request's body as it came (chunks stay chunked), or None if cut short."""
        length = _header(headers, "content-length")
        if length is not None:
            return reader.exactly(int(length))
        if "chunked" not in (_header(headers, "transfer-encoding") or "").lower():
            return b""
        raw = bytearray()
        while True:
            size_line = reader.line()
            if size_line is None:
                return None
            raw += size_line
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:
                    trailer = reader.line()
                    if trailer is None:
                        return None
                    raw += trailer
                    if trailer == b"\r\n":
                        return bytes(raw)
            data = reader.exactly(size + 2)
            if data is None:
                return None
            raw += data

    def _pipe(self, source: socket.socket, sink: socket.socket) -> _Ending:
        """Relay ``source`` to ``sink`` until ``source`` ends; the ending that mirrors it."""
        while True:
            if self._stopped.is_set():
                return _close
            if not _readable([source], _POLL):
                continue
            try:
                data = source.recv(65536)
            except ConnectionResetError:
                return _reset
            if not data:
                return _close
            sink.sendall(data)

    def _tunnel(self, reader: _Conn, upstream: socket.socket) -> _Ending:
        """Relay both ways until one side ends; how to end the client's side."""
        client = reader.sock
        pending = reader.take()
        if pending:
            upstream.sendall(pending)
        while not self._stopped.is_set():
            readable = _readable([client, upstream], _POLL)
            if upstream in readable:
                try:
                    data = upstream.recv(65536)
                except ConnectionResetError:
                    return _close if self.mode == "close" else _reset
                if not data:
                    return _reset if self.mode == "reset" else _close
                client.sendall(data)
            if client in readable:
                try:
                    data = client.recv(65536)
                except ConnectionResetError:
                    return _reset
                if not data:
                    return _close  # the client is done: end the tunnel
                upstream.sendall(data)
        return _close

