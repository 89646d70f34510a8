"""How many request threads the worker process we run in has, where it can be known.

A bulkhead protects a web worker only if it is smaller than the worker's
thread pool: 50 slots in front of an 8-thread gunicorn worker never limit
anything, and one hung dependency holds all 8 threads. The integrations size
each dependency's bulkhead from this number (half of it, at least 1), and warn
once when a configured bulkhead is not below it.

Where it comes from, first found wins:

1. an explicit setting (``RESILIENT_REQUESTS_WORKER_THREADS`` in ``app.config``,
   ``settings`` or the environment);
2. uWSGI: ``uwsgi.opt["threads"]``;
3. gunicorn: the ``threads`` setting of the worker (or of the arbiter, with
   ``--preload``) that is importing the app — found on the importing thread's
   stack, as gunicorn keeps no global for it;
4. waitress' command line runner: its ``--threads`` (default 4), likewise.

Otherwise (a development server that makes a thread per request, a server
started from code) it is unknown, and the preset's own bulkhead applies.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any, Iterator, Optional

if TYPE_CHECKING:
    from ..config import ClientConfig

__all__ = ["worker_threads", "bulkhead_for", "fit_to_worker", "VARIABLE"]

#: The setting (and environment variable) that states the worker's threads.
VARIABLE = "RESILIENT_REQUESTS_WORKER_THREADS"


def _count(value: Any, where: str) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = 0
    if isinstance(value, bool) or count < 1:
        raise ValueError(f"{where} must be a number of threads >= 1, got {value!r}")
    return count


def _frames() -> Iterator[FrameType]:
    frame: Optional[FrameType] = sys._getframe(1)
    while frame is not None:
        yield frame
        frame = frame.f_back


def _uwsgi() -> Optional[int]:
    module = sys.modules.get("uwsgi")
    options = getattr(module, "opt", None)
    if not isinstance(options, dict):
        return None
    threads: Any = options.get("threads", options.get(b"threads", 1))
    return int(threads.decode() if isinstance(threads, bytes) else threads)


def _gunicorn() -> Optional[int]:
    if "gunicorn" not in sys.modules:
        return None
    for frame in _frames():
        owner = frame.f_locals.get("self")
        if owner is not None and type(owner).__module__.startswith("gunicorn."):
            threads = getattr(getattr(owner, "cfg", None), "threads", None)
            if isinstance(threads, int) and threads >= 1:
                return threads
    return None


def _waitress() -> Optional[int]:
    if "waitress.runner" not in sys.modules:
        return None
    for frame in _frames():
        if frame.f_code.co_filename.endswith(os.path.join("waitress", "runner.py")):
            options = frame.f_locals.get("kw")
            if isinstance(options, dict):
                return int(options.get("threads") or 4)  # waitress' default
    return None


def worker_threads(setting: Any = None) -> Optional[int]:
    """The request threads of this worker process: ``setting`` if given, else
    the environment variable, else what the server says; ``None`` if unknown."""
    if setting is not None:
        return _count(setting, VARIABLE)
    if os.environ.get(VARIABLE):
        return _count(os.environ[VARIABLE], VARIABLE)
    for probe in (_uwsgi, _gunicorn, _waitress):
        try:
            found = probe()
        except Exception:  # a server's internals changed: unknown, not fatal
            found = None
        if found is not None:
            return found
    return None


def bulkhead_for(threads: int) -> int:
    """The bulkhead of one dependency in a worker of ``threads`` threads: half
    of them (at least 1), so a hung dependency leaves the other half free."""
    return max(1, threads // 2)


def fit_to_worker(config: "ClientConfig", threads: Optional[int], *, size: bool,
                  log: "logging.Logger") -> "ClientConfig":
    """``config`` for a worker of ``threads`` threads: with ``size`` (nobody
    chose a bulkhead), its bulkhead is :func:`bulkhead_for` of them; either
    way, one warning names each dependency whose bulkhead is not below them."""
    if threads is None:
        return config
    if size:
        config = config.replace(bulkhead=dataclasses.replace(config.bulkhead, max_concurrency=bulkhead_for(threads)))
    bulkheads = [("every dependency", config.bulkhead)] + [
        (name, dependency.config.bulkhead) for name, dependency in config.dependencies.items()]
    for name, bulkhead in bulkheads:
        if bulkhead.max_concurrency >= threads:
            log.warning(
                "the bulkhead of %s has %d slots for a worker of %d threads: one hung dependency can "
                "hold every thread; set BulkheadConfig.max_concurrency below %d (half is a good start)",
                name, bulkhead.max_concurrency, threads, threads,
                extra={"outcome": "bulkhead_too_wide"},
            )
    return config
