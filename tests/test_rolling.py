"""RollingCounts keeps each name's total as it goes: always the sum of the window's buckets."""
from __future__ import annotations

from typing import List, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st

from resilient_requests.rolling import RollingCounts

STEPS = st.lists(st.tuples(st.sampled_from(["a", "b", "wait"]), st.floats(0.0, 3.0)), max_size=200)


@settings(max_examples=200, deadline=None)
@given(STEPS)
def test_totals_are_the_sum_of_the_events_still_in_the_window(steps: List[Tuple[str, float]]) -> None:
    clock = [1000.0]
    counts = RollingCounts(("a", "b"), window=1.0, slots=4, clock=lambda: clock[0])
    events: List[Tuple[str, float]] = []
    for what, value in steps:
        if what == "wait":
            clock[0] += value
            continue
        counts.add(what)
        events.append((what, clock[0]))
    for name in ("a", "b"):
        bucket_now = int(clock[0] / 0.25)
        expected = sum(1 for what, at in events if what == name and bucket_now - int(at / 0.25) < 4)
        assert counts.total(name) == expected
    assert counts.totals("a", "b") == (counts.total("a"), counts.total("b"))
