"""Hedged requests: when an attempt has no answer after a delay, race it.

A hedged attempt is one attempt of the retry loop made by up to ``1 +
max_hedges`` racers. The caller's thread sends the first racer itself, as any
attempt; the process-wide watchdog (:mod:`.deadline`), which already keeps
timers for deadlines, starts each hedge when its delay passes, on a worker
thread of the session's small pool. The first *good* answer (a response that
is neither a failure status nor one to retry) wins. The others are cancelled
by shutting down their sockets, exactly as a deadline does; their results are
recorded by the breaker as "no verdict", their responses closed, their
connections and bulkhead slots given back. If every racer fails, the first
racer's outcome goes back to the retry loop, which may try again.

A hedge is a real extra request, so it pays like one: it takes a bulkhead slot
without waiting and a retry from the origin's budget, and is skipped when
either is short, when the breaker would refuse it, or while the breaker is
half-open (its trials decide alone).
"""
from __future__ import annotations

import threading
import time
import weakref
from typing import TYPE_CHECKING, FrozenSet, List, Optional

from . import deadline as deadlines
from . import forking
from .config import ClientConfig, HedgeConfig
from .exceptions import CircuitOpenError
from .retry import Outcome

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from .compartments import Compartment
    from .pipeline import _Hop

__all__ = ["Hedging", "Race"]

#: A deadline far beyond any call: a racer's cancel handle when the call has no deadline.
_NEVER = 1e9


class Hedging:
    """A session's hedging: its settings, delays and worker threads."""

    def __init__(self, config: ClientConfig) -> None:
        # Imported here, not with this module: only a session that hedges needs worker threads.
        from concurrent.futures import ThreadPoolExecutor

        self._executor = ThreadPoolExecutor
        self._workers = config.bulkhead.max_concurrency  # a hedge needs a bulkhead slot anyway
        self._after_fork()
        forking.track(self)

    def _after_fork(self) -> None:
        """Start without workers (also in a forked child, where the parent's are not)."""
        self._pool: Optional[ThreadPoolExecutor] = None
        self._lock = threading.Lock()
        self._races: "weakref.WeakSet[Race]" = weakref.WeakSet()  # races whose hedges may be running

    def delay(self, origin: "Compartment", config: HedgeConfig) -> Optional[float]:
        """Seconds before the first hedge to ``origin`` under ``config``; ``None``:
        do not hedge (too few latencies seen yet to know a percentile)."""
        if config.delay is not None:
            return config.delay
        latency = origin.latency
        return None if latency is None else latency.value

    def submit(self, work: "Race", racer: int) -> bool:
        """Run hedge number ``racer`` of ``work`` on a worker thread; False if
        the race was cancelled by :meth:`close` meanwhile."""
        with self._lock:
            if work.closed:
                return False
            self._races.add(work)
            if self._pool is None:
                self._pool = self._executor(self._workers, thread_name_prefix="resilient_requests-hedge")
            future = self._pool.submit(work.hedge, racer)
        # A hedge still queued when close() shuts the workers down never runs:
        # the race must still hear that it ended, or its caller would wait for it.
        future.add_done_callback(lambda done: work.dropped() if done.cancelled() else None)
        return True

    @staticmethod
    def good(outcome: Outcome, failure_statuses: FrozenSet[int]) -> bool:
        """Whether ``outcome`` may win a race: an answer to keep."""
        response = outcome.response
        return response is not None and not outcome.retry and response.status_code not in failure_statuses

    def close(self) -> None:
        """Cancel the hedges in flight (their sockets are shut down, as at a
        deadline) and let the worker threads end, without waiting for them: a
        hedge blocked on a slow server held ``close()`` until its read timeout.
        The callers' own racers go on. Like a closed ``requests.Session``, the
        session keeps working: the next hedge starts new workers."""
        with self._lock:
            pool, self._pool = self._pool, None
            races, self._races = list(self._races), weakref.WeakSet()
        for race in races:
            race.cancel_hedges()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class _Start(deadlines.Deadline):
    """A watchdog timer that starts a hedge instead of shutting a socket."""

    __slots__ = ("_race", "_racer")

    def __init__(self, delay: float, race: "Race", racer: int) -> None:
        super().__init__(delay)
        self._race = race
        self._racer = racer

    def fire(self) -> None:
        self._race.start(self._racer)


class Race:
    """One hedged attempt: the caller's racer and the hedges started after it."""

    def __init__(self, hop: "_Hop", hedging: Hedging, delay: float, config: HedgeConfig) -> None:
        self.hop = hop
        self.hedging = hedging
        self.delay = delay
        self.config = config
        self.winner: Optional[Outcome] = None
        self.closed = False  # the caller's racer has ended: no new hedge may start
        self.abandoned = False  # the caller has gone (it raised): hedges' answers are dropped
        self.pending = 0  # hedges started and not yet ended
        self.handles: List[deadlines.Deadline] = []  # cancel handles of racers in flight
        self.primary: Optional[deadlines.Deadline] = None  # the caller's racer's handle
        self.lock = threading.Lock()
        self.ended = threading.Condition(self.lock)

    def _handle(self) -> deadlines.Deadline:
        """A racer's cancel handle: fired to cancel it, and by the watchdog at the call's deadline."""
        call_deadline = self.hop.deadline
        handle = deadlines.Deadline(call_deadline.remaining() if call_deadline is not None else _NEVER)
        if call_deadline is not None:
            deadlines.WATCHDOG.watch(handle)
        return handle

    def run(self) -> Outcome:
        """Race; the winning outcome, or the caller's own if no racer won."""
        timers = [_Start(self.delay * racer, self, racer) for racer in range(1, self.config.max_hedges + 1)]
        for timer in timers:
            deadlines.WATCHDOG.watch(timer)
        handle = self.primary = self._handle()
        with self.lock:
            self.handles.append(handle)
        started = time.monotonic()
        try:
            outcome = self.hop.send_racer(handle)
        except BaseException:
            with self.lock:  # e.g. KeyboardInterrupt: nobody will collect a winner
                self.closed = self.abandoned = True
                for other in self.handles:
                    other.fire()
            raise
        finally:
            for timer in timers:
                deadlines.WATCHDOG.cancel(timer)
            deadlines.WATCHDOG.cancel(handle)
        with self.lock:
            self.closed = True
            self.handles.remove(handle)
            if self.winner is None and self.hedging.good(outcome, self.hop.route.failure_statuses):
                self._win(outcome)
            while self.winner is None and self.pending:
                self.ended.wait()  # a hedge is still out: it may yet answer well
            winner = self.winner
        if winner is None:
            return outcome
        if winner is not outcome:
            latency = self.hop.origin.latency
            if latency is not None and handle.expired:
                # Cancelled: it would have taken at least this long. Counting that
                # keeps the slow answers that hedging hides in the percentile.
                latency.add(time.monotonic() - started)
            outcome.discard()  # lost the race: give the connection back
        return winner

    def cancel_hedges(self) -> None:
        """Cancel every hedge of this race and start no new one; the caller's racer goes on."""
        with self.lock:
            self.closed = True
            for other in self.handles:
                if other is not self.primary:
                    other.fire()

    def _win(self, outcome: Outcome) -> None:
        """Called holding the lock: ``outcome`` wins; cancel every other racer."""
        self.winner = outcome
        for other in self.handles:
            other.fire()

    def start(self, racer: int) -> None:
        """On the watchdog thread: hand hedge ``racer`` to a worker, unless the race is over."""
        with self.lock:
            if self.closed or self.winner is not None:
                return
            self.pending += 1
        if not self.hedging.submit(self, racer):
            self._ended(None)

    def hedge(self, racer: int) -> None:
        """On a worker thread: one hedge, if the bulkhead, the budget and the breaker allow it."""
        outcome: Optional[Outcome] = None
        try:
            outcome = self._hedge()
        finally:
            self._ended(outcome)

    def _hedge(self) -> Optional[Outcome]:
        hop = self.hop
        origin = hop.origin
        bulkhead = origin.bulkhead
        if not bulkhead.try_acquire():
            return None
        try:
            if origin.budget is not None and not origin.budget.try_spend():
                return None
            if origin.limiter is not None and not origin.limiter.try_acquire():
                return None  # a hedge is an extra request: it needs a permit now
            try:
                trial = origin.breaker.admit()
            except CircuitOpenError:
                return None
            if trial is not None:  # half-open: the trials decide alone
                origin.breaker.record(trial, None)
                return None
            handle = self._handle()
            with self.lock:
                if self.winner is not None:
                    deadlines.WATCHDOG.cancel(handle)
                    return None
                self.handles.append(handle)
            origin.count("hedges")
            try:
                return hop.clone().send_racer(handle)
            finally:
                deadlines.WATCHDOG.cancel(handle)
                with self.lock:
                    self.handles.remove(handle)
        finally:
            bulkhead.release()

    def dropped(self) -> None:
        """A hedge handed to a worker never ran (the workers were shut down)."""
        self._ended(None)

    def _ended(self, outcome: Optional[Outcome]) -> None:
        with self.lock:
            self.pending -= 1
            if outcome is not None and self.winner is None and not self.abandoned and self.hedging.good(outcome, self.hop.route.failure_statuses):
                self._win(outcome)
                outcome = None
            self.ended.notify_all()
        if outcome is not None:
            outcome.discard()  # a hedge that lost, or failed: give its connection back
