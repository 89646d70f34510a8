"""The upstream: a :class:`~resilient_requests.testing.FaultServer` in a process
of its own, driven over a ``multiprocessing`` Pipe.

In one process the server's threads and the client under test would share one
GIL, and every figure would measure both. Here the benchmark driver talks to the
server process through a tiny control channel::

    with Upstream() as upstream:
        upstream.route("/outage", status(503))        # switch a route
        upstream.route("/flaky", *script, cycle=True)
        upstream.hits("/outage")                       # read a hit counter
        upstream.route("/busy", HoldSpec("busy"))      # hold requests ...
        upstream.release("busy")                       # ... until released

Faults travel pickled; :class:`HoldSpec` stands in for ``Hold`` (whose
``threading.Event`` cannot cross processes). The server listens on 127.0.0.1
only. The process exits when told to, when the driver's end of the pipe
closes, or after ``lifetime`` seconds, whichever comes first.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from resilient_requests.testing import FaultServer, Hold, Reply
from resilient_requests.testing.faults import FAULT_TYPES

__all__ = ["Upstream", "HoldSpec"]

#: The longest the driver waits for an answer on the control channel.
REPLY_TIMEOUT = 15.0


@dataclass(frozen=True)
class HoldSpec:
    """``Hold`` by name: held until :meth:`Upstream.release` (or ``limit`` s)."""

    name: str
    then: Reply = field(default_factory=Reply)
    limit: float = 30.0


class _QuietServer(FaultServer):
    """A FaultServer that keeps counters but not every request it saw: a full
    benchmark run sends it about a million requests, and the bench never reads
    ``server.requests``. Keeps the upstream's memory flat."""

    def _record(self, seen: Any) -> None:
        pass


# -- the server process ------------------------------------------------------


def _serve(conn: Any, lifetime: float) -> None:
    """The upstream process: serve, and answer commands until told to stop."""
    holds: Dict[str, threading.Event] = {}
    ends_at = time.monotonic() + lifetime
    with _QuietServer() as server:
        conn.send({"port": server.port})
        while time.monotonic() < ends_at:
            try:
                if not conn.poll(0.5):
                    continue
                command = conn.recv()
            except (EOFError, OSError):
                break  # the driver went away
            if command.get("op") == "stop":
                conn.send({"ok": True})
                break
            conn.send(_answer(server, holds, command))
        for event in holds.values():
            event.set()  # let held handlers finish before the server stops


def _answer(
    server: FaultServer, holds: Dict[str, threading.Event], command: Dict[str, Any]
) -> Dict[str, Any]:
    """Carry out one command and say how it went."""
    op = command.get("op")
    try:
        if op == "route":
            faults = tuple(_real_fault(f, holds) for f in command["faults"])
            server.route(command["path"], *faults, cycle=command.get("cycle", False))
            return {"ok": True}
        if op == "hits":
            return {"hits": server.hits(command.get("path"))}
        if op == "release":
            holds.setdefault(command["name"], threading.Event()).set()
            return {"ok": True}
        if op == "stats":
            return {"in_flight": server.in_flight, "peak_in_flight": server.peak_in_flight}
        if op == "reset":
            server.reset_counts()
            return {"ok": True}
        return {"error": f"unknown op {op!r}"}
    except Exception as exc:  # report it to the driver rather than die
        return {"error": f"{type(exc).__name__}: {exc}"}


def _real_fault(fault: Any, holds: Dict[str, threading.Event]) -> Any:
    if isinstance(fault, HoldSpec):
        event = holds[fault.name] = threading.Event()
        return Hold(event, then=fault.then, limit=fault.limit)
    if not isinstance(fault, FAULT_TYPES):
        raise TypeError(f"not a fault: {fault!r}")
    return fault


# -- the driver's side -------------------------------------------------------


class Upstream:
    """Starts the server process and talks to it; a context manager."""

    def __init__(self, lifetime: float = 7200.0) -> None:
        self._lifetime = lifetime
        self._lock = threading.Lock()  # one command at a time (a sampler thread shares it)
        self._conn: Any = None
        self._process: Optional[multiprocessing.process.BaseProcess] = None
        self.port = 0

    def start(self) -> "Upstream":
        """Start the process and wait until it listens."""
        context = multiprocessing.get_context("spawn")  # no fork of a threaded driver
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(child, self._lifetime),
            name="bench-upstream",
            daemon=True,
        )
        self._process.start()
        child.close()
        self.port = self._receive()["port"]
        return self

    def stop(self) -> None:
        """Tell the process to stop and wait for it (terminate it if it will not)."""
        if self._process is None:
            return
        try:
            self._command({"op": "stop"})
        except Exception:
            pass
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        self._conn.close()
        self._process = None

    def __enter__(self) -> "Upstream":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, path: str) -> str:
        """``http://127.0.0.1:PORT/path``."""
        return f"http://127.0.0.1:{self.port}{path}"

    # -- commands --
    def route(self, path: str, *faults: Any, cycle: bool = False) -> None:
        """``FaultServer.route`` in the server process."""
        self._command({"op": "route", "path": path, "faults": faults, "cycle": cycle})

    def switch(self, path: str, *faults: Any, cycle: bool = False) -> float:
        """:meth:`route`, returning the ``time.monotonic()`` midway through the
        exchange: the moment the new route took effect, as near as we can tell."""
        before = time.monotonic()
        self.route(path, *faults, cycle=cycle)
        return (before + time.monotonic()) / 2

    def hits(self, path: Optional[str] = None) -> int:
        """Requests the server received (for ``path``, or all)."""
        return int(self._command({"op": "hits", "path": path})["hits"])

    def stamped_hits(self, path: str) -> Tuple[float, int]:
        """``hits(path)`` with the ``time.monotonic()`` midway through the exchange."""
        before = time.monotonic()
        count = self.hits(path)
        return (before + time.monotonic()) / 2, count

    def release(self, name: str) -> None:
        """Let the requests held by ``HoldSpec(name)`` go."""
        self._command({"op": "release", "name": name})

    def in_flight(self) -> int:
        """Requests the server is handling right now."""
        return int(self._command({"op": "stats"})["in_flight"])

    def drain(self, limit: float) -> None:
        """Wait (at most ``limit`` s) until the server handles no request."""
        ends = time.monotonic() + limit
        while self.in_flight() and time.monotonic() < ends:
            time.sleep(0.02)

    def reset(self) -> None:
        """Forget the hit counters (routes stay)."""
        self._command({"op": "reset"})

    def _command(self, command: Dict[str, Any]) -> Dict[str, Any]:
        with self._lock:
            self._conn.send(command)
            answer = self._receive()
        if "error" in answer:
            raise RuntimeError(f"upstream: {answer['error']}")
        return answer

    def _receive(self) -> Dict[str, Any]:
        if not self._conn.poll(REPLY_TIMEOUT):
            raise TimeoutError(f"upstream did not answer within {REPLY_TIMEOUT:g}s")
        return self._conn.recv()  # type: ignore[no-any-return]
