"""Total deadlines, enforced by one watchdog thread for the whole process.

requests' read timeout bounds each socket read, not the call: a server that
sends a byte every half second holds ``requests.get(url, timeout=5)`` for as
long as it likes. A call with a deadline registers a :class:`Deadline` with the
:data:`WATCHDOG`; the connection classes in :mod:`.transport` attach the socket
an attempt is using; at the deadline the watchdog shuts that socket down, which
ends any blocked send or receive at once. The pipeline then checks
:attr:`Deadline.expired` after every attempt, because http.client can turn a
shut-down socket during the header phase into a truncated "200 OK".

One thread with a heap and a condition costs about a microsecond per call; a
``threading.Timer`` per call would start a thread each time (~160 µs). The
thread starts on first use and exits after a second with nothing to watch.
"""
from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from typing import List, Optional, Tuple

from . import forking

__all__ = ["Deadline", "Watchdog", "WATCHDOG", "current", "activate"]


class Deadline:
    """The end of one call, as a ``time.monotonic()`` instant."""

    __slots__ = ("at", "total", "expired", "cancelled", "queued", "_sock", "_lock")

    def __init__(self, total: float) -> None:
        self.total = total
        self.at = time.monotonic() + total
        self.expired = False
        self.cancelled = False
        self.queued = False  # in the watchdog's heap (guarded by the watchdog's lock)
        self._sock: Optional[socket.socket] = None
        self._lock = threading.Lock()

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - time.monotonic()

    def attach(self, sock: Optional[socket.socket]) -> None:
        """The socket the current attempt uses; shut down at once if already expired."""
        with self._lock:
            self._sock = sock
            if self.expired and sock is not None:
                _shut(sock)

    def detach(self, sock: Optional[socket.socket] = None) -> None:
        """The attempt is over (or ``sock``'s connection went back to the pool):
        the watchdog must not touch the socket any more."""
        with self._lock:
            if sock is None or self._sock is sock:
                self._sock = None

    def fire(self) -> None:
        """Mark the deadline passed and shut down the attached socket, if any."""
        with self._lock:
            self.expired = True
            if self._sock is not None:
                _shut(self._sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing left to interrupt


class Watchdog:
    """Fires deadlines on time from a single background thread."""

    def __init__(self, idle_exit: float = 1.0) -> None:
        self._idle_exit = idle_exit
        self._reset()
        forking.track(self)

    def _reset(self) -> None:
        self._heap: List[Tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._condition = threading.Condition(threading.Lock())
        self._thread: Optional[threading.Thread] = None
        self._cancelled = 0  # cancelled entries still in the heap
        self._wake_at = 0.0  # when the thread will look at the heap next (monotonic)

    def _after_fork(self) -> None:
        """In a forked child: the parent's thread is not there, its deadlines
        belong to calls that are not there either; start empty."""
        self._reset()

    def watch(self, deadline: Deadline) -> None:
        """Fire ``deadline`` when it passes, unless cancelled first."""
        with self._condition:
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            deadline.queued = True
            thread = self._thread
            if thread is None or not thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="resilient_requests-watchdog", daemon=True)
                self._thread.start()
            elif deadline.at < self._wake_at:
                # Wake the thread only if it would sleep past this deadline: a
                # wake-up per call costs a thread switch (~75 µs measured).
                self._condition.notify()

    def cancel(self, deadline: Deadline) -> None:
        """Forget ``deadline``. Entries leave the heap lazily (the thread is not
        woken for it); the heap is compacted when most of it is cancelled, so it
        stays small under load."""
        with self._condition:
            deadline.cancelled = True
            if not deadline.queued:
                return  # already fired
            self._cancelled += 1
            heap = self._heap
            if self._cancelled > 64 and self._cancelled * 2 > len(heap):
                for entry in heap:
                    entry[2].queued = not entry[2].cancelled
                heap[:] = [entry for entry in heap if not entry[2].cancelled]
                heapq.heapify(heap)
                self._cancelled = 0

    def _run(self) -> None:
        condition = self._condition
        while True:
            due: List[Deadline] = []
            with condition:
                heap = self._heap
                while heap and heap[0][2].cancelled:
                    heapq.heappop(heap)[2].queued = False
                    self._cancelled -= 1
                if self._cancelled == len(heap):
                    for forgotten in heap:
                        forgotten[2].queued = False
                    heap.clear()  # nothing left to watch, only forgotten entries
                    self._cancelled = 0
                now = time.monotonic()
                if not heap:
                    self._wake_at = now + self._idle_exit
                    condition.wait(self._idle_exit)
                    if not self._heap:
                        self._thread = None
                        self._wake_at = 0.0
                        return
                    continue
                while heap and heap[0][0] <= now:
                    entry = heapq.heappop(heap)[2]
                    entry.queued = False
                    if entry.cancelled:
                        self._cancelled -= 1
                    else:
                        due.append(entry)
                if not due and heap:
                    # At most idle_exit, so entries cancelled meanwhile are
                    # noticed and the thread can exit once idle.
                    self._wake_at = min(heap[0][0], now + self._idle_exit)
                    condition.wait(self._wake_at - now)
            for deadline in due:
                deadline.fire()

    def running(self) -> bool:
        """Whether the watchdog thread is alive (it exits when idle)."""
        thread = self._thread
        return thread is not None and thread.is_alive()


#: The process-wide watchdog.
WATCHDOG = Watchdog()

_local = threading.local()


def current() -> Optional[Deadline]:
    """The deadline of the attempt running on this thread, if any."""
    return getattr(_local, "deadline", None)


def activate(deadline: Optional[Deadline]) -> None:
    """Make ``deadline`` this thread's current one (``None`` to clear)."""
    _local.deadline = deadline
