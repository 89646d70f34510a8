"""Small numeric and process helpers: percentiles, interleaving, /proc readings."""

from __future__ import annotations

import gc
import os
import statistics
import threading
import time
from typing import Callable, Dict, Iterable, List, Sequence, TypeVar

__all__ = [
    "percentile",
    "median",
    "ratio",
    "interleaved",
    "rss_kib",
    "peak_rss_kib",
    "open_fds",
    "thread_names",
    "load_average",
    "sleep_until",
]

T = TypeVar("T")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linearly interpolated; NaN if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Iterable[float]) -> float:
    """The median; NaN if empty."""
    values = list(values)
    return statistics.median(values) if values else float("nan")


def ratio(value: float, baseline: float) -> float:
    """``value / baseline``; NaN when the baseline is zero or missing."""
    return value / baseline if baseline else float("nan")


def interleaved(
    names: Sequence[str], rounds: int, run: Callable[[str, int], T]
) -> Dict[str, List[T]]:
    """Run ``run(name, round)`` for every name, round after round (A B C, B C A, …:
    the order rotates so that no contender always follows the same one).
    Collects garbage between runs so one run's garbage is not the next one's pause."""
    results: Dict[str, List[T]] = {name: [] for name in names}
    for number in range(rounds):
        shift = number % len(names)
        for name in list(names[shift:]) + list(names[:shift]):
            gc.collect()
            results[name].append(run(name, number))
    return results


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_kib() -> int:
    """This process's resident set size now, in KiB."""
    return _status_kib("VmRSS")


def peak_rss_kib() -> int:
    """This process's peak resident set size so far, in KiB."""
    return _status_kib("VmHWM")


def open_fds() -> int:
    """File descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def thread_names() -> List[str]:
    """The live threads of this process, by name."""
    return sorted(thread.name for thread in threading.enumerate())


def load_average() -> float:
    """The 1-minute load average (other jobs on the machine show up here)."""
    return os.getloadavg()[0]


def sleep_until(moment: float) -> None:
    """Sleep until ``moment`` (a ``time.monotonic()`` instant), if it is ahead."""
    time.sleep(max(0.0, moment - time.monotonic()))
