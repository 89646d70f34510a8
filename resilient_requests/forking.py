"""What a child process keeps after ``os.fork()``, and what starts fresh.

gunicorn ``--preload``, Celery's prefork pool, ``multiprocessing`` and
``ProcessPoolExecutor`` fork a parent that may already have made calls. urllib3
pools are not fork-safe: a keep-alive socket inherited by the child is the
parent's socket too, and both processes read replies off it (parent and child
were handed each other's responses). Locks held by another thread at the fork
stay held forever in the child, and threads (the deadline watchdog, hedging
workers) do not exist there at all, though the objects that started them do.

So in the child, right after the fork (``os.register_at_fork``), every object
registered here drops what belongs to the parent: connection pools, breakers,
bulkheads, budgets, throttles, the watchdog's heap and thread, hedging's
workers, the module-level API's shared layers. Each starts fresh and is made
again on first use; configuration, headers, cookies, auth and mounts survive.
redis-py does the same for its own connections (it checks the pid on use).
"""
from __future__ import annotations

import os
import weakref
from typing import Callable, List

__all__ = ["after_fork", "track"]

_callbacks: List[Callable[[], None]] = []
_objects: "weakref.WeakSet[object]" = weakref.WeakSet()


def after_fork(callback: Callable[[], None]) -> None:
    """Run ``callback`` in every child process right after a fork (module-level state)."""
    _callbacks.append(callback)


def track(obj: object) -> None:
    """Call ``obj._after_fork()`` in every child process right after a fork, while ``obj`` lives."""
    _objects.add(obj)


def _in_child() -> None:
    for callback in _callbacks:
        callback()
    for obj in list(_objects):
        obj._after_fork()  # type: ignore[attr-defined]


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_in_child)
