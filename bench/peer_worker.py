"""The measurements of the ``peers`` scenario, and a worker process that runs
them for a contender that cannot share the benchmark's interpreter.

The same functions time every contender, in the benchmark's process or here:
:func:`happy_batch`, :func:`throughput` and :func:`refused`, each given a
``get(url)`` callable. This module imports nothing but the standard library at
the top, so that another environment's interpreter can run it as a script::

    bench/.venv-niquests/bin/python bench/peer_worker.py niquests

It then reads one JSON command per line on stdin and answers one JSON line on
stdout (see :func:`serve`). niquests runs this way: installing it replaces
urllib3 with urllib3-future, so it lives in a virtualenv of its own
(``bench/.venv-niquests``, made on demand by :mod:`bench.peers`).
"""

from __future__ import annotations

import gc
import json
import socket
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

__all__ = [
    "Get",
    "happy_batch",
    "throughput",
    "refused",
    "counting_connects",
    "TIMEOUT",
    "serve",
]

#: ``get(url)``: one call through a contender, as a user would make it.
Get = Callable[[str], Any]
#: connect/read timeouts every contender passes (``TimeoutConfig()``'s defaults).
TIMEOUT: Tuple[float, float] = (10.0, 30.0)


def happy_batch(get: Get, url: str, calls: int) -> Tuple[float, float]:
    """``calls`` sequential GETs: (wall µs per call, this thread's CPU µs per call)."""
    wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
    for _ in range(calls):
        get(url)
    return (
        (time.perf_counter_ns() - wall) / calls / 1000,
        (time.thread_time_ns() - cpu) / calls / 1000,
    )


def _caller(get: Get, url: str, begin: float, end: float, rates: List[float], slot: int) -> None:
    """Call until ``end``; the rate of this thread's successful calls between
    its first and its last completion inside [begin, end)."""
    cap = int((end - time.monotonic()) / 0.02 * 2) + 100  # a bound, whatever happens
    first: Optional[float] = None
    last = 0.0
    succeeded = 0
    for _ in range(cap):
        if time.monotonic() >= end:
            break
        try:
            ok = get(url).status_code == 200
        except Exception:
            ok = False
        now = time.monotonic()
        if not begin <= now < end:
            continue
        if first is None:
            first = now  # the start of the measured span: not itself counted
        else:
            succeeded += ok
        last = now
    rates[slot] = succeeded / (last - first) if first is not None and last > first else 0.0


def throughput(get: Get, url: str, threads: int, warm: float, window: float) -> float:
    """Successful calls per second from ``threads`` threads calling as fast as
    they can, measured over ``window`` seconds after ``warm`` seconds.

    Each thread's rate is its successful calls over the time between its first
    and last completion in the window (completions 2..n over t_n - t_1): not a
    count of completions in the window, which moves in steps of one call (4% at
    one thread of 20 ms calls over 0.5 s). The total is the sum of the threads'."""
    begin = time.monotonic() + warm
    end = begin + window
    rates = [0.0] * threads
    callers = [
        threading.Thread(
            target=_caller, args=(get, url, begin, end, rates, i), name=f"peer-{i}", daemon=True
        )
        for i in range(threads)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=warm + window + 60)
    return sum(rates)


@contextmanager
def counting_connects() -> Iterator[List[int]]:
    """Count ``connect()`` calls on ``socket.socket`` objects while inside:
    yields a one-item list holding the count. Every client measured here
    (requests/urllib3, httpx/httpcore, niquests/urllib3-future) connects through
    ``socket.socket.connect``; the real method is called, and restored on exit."""
    count = [0]
    own = socket.socket.__dict__.get("connect")
    real = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        count[0] += 1
        real(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    try:
        yield count
    finally:
        if own is None:
            del socket.socket.connect
        else:
            socket.socket.connect = own  # type: ignore[method-assign]


def refused(get: Get, url: str, calls: int) -> Tuple[List[float], int]:
    """``calls`` calls to a port that refuses connections, timed one by one from
    the caller's side (µs, exception caught); and the connects they made."""
    samples = []
    with counting_connects() as connects:
        for _ in range(calls):
            started = time.perf_counter_ns()
            try:
                get(url)
            except Exception:
                pass
            samples.append((time.perf_counter_ns() - started) / 1000)
    return samples, connects[0]


# -- the worker process ------------------------------------------------------


class _Client:
    """A contender built in this process: ``get`` and ``close``."""

    def __init__(self, get: Get, close: Callable[[], None]) -> None:
        self.get = get
        self.close = close


def _niquests(threads: int, min_wait: float) -> _Client:
    """niquests with 3 attempts: ``retries=Retry(total=2)``, 5xx retried, backoff
    factor ``min_wait / 2`` (waits 0, ``min_wait``), ``TIMEOUT``; a pool as large
    as the threads calling it."""
    import niquests
    from niquests.packages.urllib3 import Retry

    retry = Retry(total=2, backoff_factor=min_wait / 2, status_forcelist=[500, 502, 503, 504])
    session = niquests.Session(retries=retry, pool_maxsize=max(10, threads))

    def get(url: str) -> Any:
        return session.get(url, timeout=TIMEOUT)

    return _Client(get, session.close)


BUILDERS: Dict[str, Callable[[int, float], _Client]] = {"niquests": _niquests}


def _versions(name: str) -> Dict[str, str]:
    from importlib import metadata

    found = {}
    for package in (name, "urllib3-future", "urllib3"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def _answer(name: str, command: Dict[str, Any], kept: Dict[Tuple[str, int], _Client]) -> Any:
    """Carry out one command. ``happy`` and ``throughput`` reuse a client per
    (op, threads), as the benchmark's process does with its own contenders;
    ``refused`` builds a fresh one each time (its breaker, if any, starts closed)."""
    op = command["op"]
    if op == "versions":
        return {"versions": _versions(name)}
    threads = int(command.get("threads", 1))
    min_wait = float(command.get("min_wait", 1.0))
    if op == "refused":
        client = BUILDERS[name](threads, min_wait)
        try:
            gc.collect()
            samples, connects = refused(client.get, command["url"], int(command["calls"]))
        finally:
            client.close()
        return {"samples": samples, "connects": connects}
    key = (op, threads)
    if key not in kept:
        kept[key] = BUILDERS[name](threads, min_wait)
    client = kept[key]
    for _ in range(int(command.get("warm_calls", 0))):
        client.get(command["url"])
    gc.collect()
    if op == "happy":
        if not int(command["calls"]):
            return {"wall": 0.0, "cpu": 0.0}  # warm-up only
        wall, cpu = happy_batch(client.get, command["url"], int(command["calls"]))
        return {"wall": wall, "cpu": cpu}
    if op == "throughput":
        rate = throughput(
            client.get,
            command["url"],
            threads,
            float(command["warm"]),
            float(command["window"]),
        )
        return {"per_second": rate}
    raise ValueError(f"unknown op {op!r}")


def serve(name: str) -> None:
    """Answer commands for contender ``name``: one JSON object per line in
    (``op``: ``versions``, ``happy``, ``throughput``, ``refused``, ``stop``), one
    per line out (``{"error": ...}`` when a command fails), until ``stop`` or
    the end of the input."""
    kept: Dict[Tuple[str, int], _Client] = {}
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command.get("op") == "stop":
                break
            try:
                answer = _answer(name, command, kept)
            except Exception as exc:  # report it to the driver rather than die
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        for client in kept.values():
            client.close()


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in BUILDERS:
        raise SystemExit(f"usage: peer_worker.py {{{','.join(BUILDERS)}}}")
    serve(sys.argv[1])
