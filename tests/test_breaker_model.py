"""OriginBreaker against a reference model (hypothesis stateful testing), and
under 16 hammering threads. No HTTP: the breaker is driven through admit/record.

Time: the breaker measures ``recovery_timeout`` on the wall clock against its
storage's ``opened_at`` (pybreaker's storage API). OriginBreaker takes that
storage as a public argument (``storage=LocalState()``), so the model test makes
time pass by moving ``opened_at`` back, with a recovery timeout (300 s) far
longer than a test run: no sleeping, and no step can recover by accident. The
threaded test uses the real clock instead, with a tiny recovery timeout.
"""
from __future__ import annotations

import random
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Dict, List, Optional, Tuple

import pybreaker
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from resilient_requests import CircuitBreakerConfig, CircuitOpenError, CircuitState
from resilient_requests.breaker import LocalState, OriginBreaker

ORIGIN = "http://127.0.0.1:1"
RECOVERY = 300.0  # seconds; time passes only when a rule moves opened_at back
STEP = 0.4 * RECOVERY  # one "time passes" step: the third one always recovers a first opening
CAP = 4  # re-openings last at most CAP x RECOVERY
REAL_TIME_SLACK = 30.0  # seconds of real time an example may take

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN

# An attempt's verdict; failures weighted up so the breaker often opens.
OUTCOMES = st.sampled_from([True, True, False, None])

_PYBREAKER_STATES: Dict[str, CircuitState] = {
    pybreaker.STATE_CLOSED: CLOSED,
    pybreaker.STATE_OPEN: OPEN,
    pybreaker.STATE_HALF_OPEN: HALF_OPEN,
}

# The only transitions the model allows.
ALLOWED_TRANSITIONS = {(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (HALF_OPEN, CLOSED)}


class TransitionRecorder(pybreaker.CircuitBreakerListener):
    """Records every state change the breaker announces (pybreaker's listener API)."""

    def __init__(self) -> None:
        self.changes: List[Tuple[CircuitState, CircuitState]] = []

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state, new_state) -> None:  # type: ignore[no-untyped-def]
        self.changes.append((_PYBREAKER_STATES[old_state.name], _PYBREAKER_STATES[new_state.name]))


@dataclass(eq=False)
class Token:
    """One admitted, not yet recorded attempt: ``trial`` is what admit() returned."""

    trial: Optional[str]


class Model:
    """The reference breaker: closed -> open -> half-open -> closed/open.

    Half-open admits ``permitted`` trials; a failed one re-opens it at once,
    ``permitted`` successful ones close it. Each re-opening lasts ``multiplier``
    times longer than the last, up to ``CAP`` x the recovery timeout."""

    def __init__(self, threshold: int, permitted: int = 1, multiplier: float = 1.0) -> None:
        self.threshold = threshold
        self.permitted = permitted
        self.multiplier = multiplier
        self.state = CLOSED
        self.failures = 0  # consecutive failures while closed
        self.trials: List[str] = []  # tokens of trials in flight this half-open period
        self.successes = 0  # successful trials this half-open period
        self.reopens = 0  # failed trials since the breaker last closed
        self.waited = 0.0  # seconds passed since the breaker (last) opened
        self.transitions: List[Tuple[CircuitState, CircuitState]] = []

    @property
    def open_for(self) -> float:
        return min(RECOVERY * self.multiplier ** self.reopens, CAP * RECOVERY)

    def _go(self, new: CircuitState) -> None:
        self.transitions.append((self.state, new))
        self.state = new
        if new is OPEN:
            self.waited = 0.0  # the recovery timer (re)starts
        if new is CLOSED:
            self.failures = self.reopens = 0
        self.trials, self.successes = [], 0

    @property
    def recovered(self) -> bool:
        """While open: has the open period passed?"""
        return self.waited >= self.open_for

    def refusal(self) -> Optional[Tuple[float, float]]:
        """None if an attempt is admitted now, else the range retry_after must be in."""
        if self.state is CLOSED:
            return None
        if self.state is HALF_OPEN:
            return (0.0, 0.0) if len(self.trials) + self.successes >= self.permitted else None
        if self.recovered:
            return None
        left = self.open_for - self.waited
        return (left - REAL_TIME_SLACK, left)

    def admit(self, got: object) -> None:
        """Check an admit() result (None, a trial token or the CircuitOpenError) and follow it."""
        refusal = self.refusal()
        if refusal is not None:
            assert isinstance(got, CircuitOpenError), f"{self.state}: expected a refusal, got {got!r}"
            low, high = refusal
            assert low <= got.retry_after <= high, (got.retry_after, refusal)
            assert (got.retry_after > 0) is (self.state is OPEN)
            assert got.origin == ORIGIN
            return
        if self.state is CLOSED:
            assert got is None, f"closed: admit() must return None, got {got!r}"
            return
        assert isinstance(got, str), f"{self.state}, a place free: admit() must admit a trial, got {got!r}"
        if self.state is OPEN:
            self._go(HALF_OPEN)
        assert got not in self.trials
        self.trials.append(got)

    def record(self, trial: Optional[str], failed: Optional[bool]) -> None:
        """Apply record(trial, failed)."""
        if trial is not None:
            if trial not in self.trials:
                return  # a trial of an earlier half-open period: ignored
            self.trials.remove(trial)
            if failed is None:
                return  # no verdict: the place is free again
            assert self.state is HALF_OPEN
            if failed:
                self.reopens += 1
                self._go(OPEN)
            else:
                self.successes += 1
                if self.successes >= self.permitted:
                    self._go(CLOSED)
            return
        if failed is None:
            return  # no verdict
        if self.state is CLOSED:
            if failed:
                self.failures += 1
                if self.failures >= self.threshold:
                    self._go(OPEN)
            else:
                self.failures = 0
        # While OPEN, and late non-trial results while HALF_OPEN: ignored.


class BreakerMachine(RuleBasedStateMachine):
    """Random admit/record/check/time-passes sequences; the breaker must follow the model."""

    def __init__(self) -> None:
        super().__init__()
        self.storage = LocalState()
        self.recorder = TransitionRecorder()
        self.breaker: Optional[OriginBreaker] = None
        self.model: Optional[Model] = None
        self.inflight: List[Token] = []  # admitted, not yet recorded

    @initialize(threshold=st.integers(min_value=1, max_value=4), permitted=st.integers(min_value=1, max_value=3),
                multiplier=st.sampled_from([1.0, 2.0]))
    def make_breaker(self, threshold: int, permitted: int, multiplier: float) -> None:
        """A fresh breaker on a storage the test can move in time."""
        config = CircuitBreakerConfig(
            failure_threshold=threshold, recovery_timeout=RECOVERY, permitted_calls_in_half_open=permitted,
            recovery_multiplier=multiplier, max_recovery_timeout=CAP * RECOVERY,
        )
        # Trial leases far longer than a test run: they end only when recorded.
        self.breaker = OriginBreaker(ORIGIN, config, listeners=[self.recorder], storage=self.storage,
                                     trial_timeout=1e6)
        self.model = Model(threshold, permitted, multiplier)

    def _admit(self) -> Optional[Token]:
        """admit(), checked against the model; the token, or None if refused."""
        assert self.breaker is not None and self.model is not None
        try:
            got: object = self.breaker.admit()
        except CircuitOpenError as refusal:
            got = refusal
        self.model.admit(got)
        if isinstance(got, CircuitOpenError):
            return None
        assert got is None or isinstance(got, str)
        return Token(trial=got)

    def _record(self, token: Token, failed: Optional[bool]) -> None:
        """record(), checked against the model."""
        assert self.breaker is not None and self.model is not None
        self.breaker.record(token.trial, failed)
        self.model.record(token.trial, failed)

    def _time_passes(self) -> None:
        assert self.model is not None
        opened_at = self.storage.opened_at
        assert opened_at is not None
        self.storage.opened_at = opened_at - timedelta(seconds=STEP)
        self.model.waited += STEP

    @precondition(lambda self: self.model is not None and self.model.state is OPEN)
    @rule()
    def time_passes(self) -> None:
        """Part of the recovery timeout passes (opened_at moves back by 0.4 of it)."""
        self._time_passes()

    @rule()
    def admit(self) -> None:
        """Start an attempt; an admitted one joins the in-flight bag."""
        token = self._admit()
        if token is not None:
            self.inflight.append(token)

    @precondition(lambda self: self.model is not None and self.model.state is OPEN)
    @rule()
    def admit_after_recovery(self) -> None:
        """The recovery timeout passes, then an attempt starts: the trial."""
        assert self.model is not None
        while not self.model.recovered:
            self._time_passes()
        self.admit()

    @rule(failed=OUTCOMES)
    def attempt(self, failed: Optional[bool]) -> None:
        """Admit an attempt and finish it at once (the common, sequential case)."""
        token = self._admit()
        if token is not None:
            self._record(token, failed)

    @precondition(lambda self: bool(self.inflight))
    @rule(pick=st.integers(min_value=0, max_value=50), failed=OUTCOMES)
    def complete(self, pick: int, failed: Optional[bool]) -> None:
        """Finish one in-flight attempt with a failure, a success or no verdict."""
        self._record(self.inflight.pop(pick % len(self.inflight)), failed)

    @precondition(lambda self: any(token.trial for token in self.inflight))
    @rule(pick=st.integers(min_value=0, max_value=5), failed=st.sampled_from([False, True, None]))
    def complete_trial(self, pick: int, failed: Optional[bool]) -> None:
        """A half-open trial ends: failure re-opens, enough successes close, no verdict frees its place."""
        trials = [token for token in self.inflight if token.trial]
        trial = trials[pick % len(trials)]
        self.inflight.remove(trial)
        self._record(trial, failed)

    @precondition(lambda self: any(token.trial is None for token in self.inflight))
    @rule(failed=OUTCOMES)
    def complete_late(self, failed: Optional[bool]) -> None:
        """Every in-flight non-trial attempt ends with the same verdict (a burst of late results)."""
        late = [token for token in self.inflight if token.trial is None]
        self.inflight = [token for token in self.inflight if token.trial]
        for token in late:
            self._record(token, failed)

    @rule()
    def check(self) -> None:
        """check() and is_open() refuse exactly when admit() would, and change nothing."""
        assert self.breaker is not None and self.model is not None
        try:
            self.breaker.check()
            refused: Optional[CircuitOpenError] = None
        except CircuitOpenError as refusal:
            refused = refusal
        expected = self.model.refusal()
        assert (refused is not None) is (expected is not None)
        if refused is not None and expected is not None:
            assert expected[0] <= refused.retry_after <= expected[1]
        assert self.breaker.is_open() is (expected is not None)

    @invariant()
    def matches_model(self) -> None:
        """State, failure count, trials, open period and announced transitions agree with the model."""
        if self.breaker is None or self.model is None:
            return
        assert self.breaker.state is self.model.state
        if self.model.state is CLOSED:
            assert self.breaker.failure_count == self.model.failures
        live = [token.trial for token in self.inflight if token.trial in self.model.trials]
        assert sorted(live) == sorted(self.model.trials)
        assert len(live) <= self.model.permitted, "more half-open trials in flight than permitted"
        assert self.breaker.open_for == self.model.open_for
        assert self.recorder.changes == self.model.transitions
        assert set(self.recorder.changes) <= ALLOWED_TRANSITIONS


def test_breaker_follows_the_reference_model():
    """OriginBreaker follows the reference model for random admit/record/check/time-passes steps."""
    run_state_machine_as_test(
        BreakerMachine, settings=settings(max_examples=300, stateful_step_count=30, deadline=None),
    )


@pytest.mark.parametrize("permitted", [1, 3])
def test_concurrent_hammering_keeps_the_trials_permitted_and_a_valid_state(permitted):
    """16 threads admit/record at random; never more trials than permitted at once, and the breaker still recovers."""
    recovery = 0.02
    recorder = TransitionRecorder()
    breaker = OriginBreaker(
        ORIGIN, CircuitBreakerConfig(failure_threshold=3, recovery_timeout=recovery,
                                     permitted_calls_in_half_open=permitted), listeners=[recorder],
    )
    lock = threading.Lock()
    stats = {"trials_now": 0, "trials_peak": 0, "trials": 0}
    errors: List[BaseException] = []
    start = threading.Barrier(17)
    stop = threading.Event()

    def attempt(rng: random.Random) -> bool:
        """One admit, then a record with a random verdict; False if refused."""
        try:
            trial = breaker.admit()
        except CircuitOpenError:
            return False
        if trial is not None:
            # Counted only while the slot is surely held: after admit() took it,
            # before record() frees it. So the count never exceeds the real number.
            with lock:
                stats["trials_now"] += 1
                stats["trials"] += 1
                stats["trials_peak"] = max(stats["trials_peak"], stats["trials_now"])
        time.sleep(0)  # let other threads in while the attempt is "in flight"
        failed = rng.choice([True, True, False, False, None])
        if trial is not None:
            with lock:
                stats["trials_now"] -= 1
        breaker.record(trial, failed)
        assert breaker.state in CircuitState
        return True

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait()
            for _ in range(250):
                if not attempt(rng):
                    time.sleep(rng.uniform(0.0005, 0.003))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def prober() -> None:
        """Now and then waits past the recovery timeout, then tries."""
        rng = random.Random(99)
        try:
            start.wait()
            while not stop.is_set():
                time.sleep(recovery * 1.2)
                attempt(rng)
        except BaseException as exc:
            errors.append(exc)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # more interleavings
    try:
        threads = [threading.Thread(target=worker, args=(1000 + i,)) for i in range(16)]
        probe = threading.Thread(target=prober)
        for thread in threads + [probe]:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        stop.set()
        probe.join(timeout=10)
    finally:
        sys.setswitchinterval(old_interval)
    assert not any(thread.is_alive() for thread in threads + [probe])
    assert not errors, errors

    assert stats["trials_peak"] <= permitted, "more half-open trials in flight than permitted"
    assert stats["trials_now"] == 0
    assert stats["trials"] > 0, "the test never reached half-open"
    assert breaker.state in CircuitState

    # Listeners run under the breaker's lock: the announced changes form one chain.
    changes = list(recorder.changes)
    assert changes, "the breaker never changed state"
    assert set(changes) <= ALLOWED_TRANSITIONS, changes
    assert all(a[1] == b[0] for a, b in zip(changes, changes[1:])), "transitions are not a chain"
    assert changes[-1][1] is breaker.state

    # Everything is recorded, so no trial place may be stuck: after recovery the breaker admits again...
    deadline = time.monotonic() + 5
    while True:
        try:
            breaker.check()
            break
        except CircuitOpenError:
            assert time.monotonic() < deadline, "the breaker never admits again: a trial slot is stuck"
            time.sleep(recovery / 2)
    assert not breaker.is_open()
    # ... and `permitted` successes close it.
    for _ in range(permitted):
        trial = breaker.admit()
        assert (trial is not None) is (breaker.state is not CircuitState.CLOSED)
        breaker.record(trial, False)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 0


@pytest.mark.parametrize("failed", [True, False])
def test_late_results_while_open_and_half_open_are_ignored(failed):
    """Results of calls admitted while closed change nothing once the breaker has opened."""
    storage = LocalState()
    breaker = OriginBreaker(
        ORIGIN, CircuitBreakerConfig(failure_threshold=1, recovery_timeout=RECOVERY), storage=storage,
    )
    assert [breaker.admit() for _ in range(3)] == [None, None, None]
    breaker.record(None, True)
    assert breaker.state is CircuitState.OPEN
    breaker.record(None, failed)
    assert breaker.state is CircuitState.OPEN
    assert storage.opened_at is not None
    storage.opened_at -= timedelta(seconds=RECOVERY)
    trial = breaker.admit()
    assert trial is not None
    breaker.record(None, failed)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.is_open()  # the trial is still in flight
    breaker.record(trial, None)  # no verdict: frees the place, stays half-open
    assert breaker.state is CircuitState.HALF_OPEN
    assert not breaker.is_open()
    trial = breaker.admit()
    assert trial is not None
    breaker.record(trial, False)
    assert breaker.state is CircuitState.CLOSED
