"""A test mode for users' own test suites, as stamina's ``set_testing`` offers.

Process-wide switches read by the retry loop: with waits off, every wait is
0 s but attempts still count (a test still sees three requests for a flaky
GET, without sleeping); with retries off, every call makes one attempt.
Use the context managers (or the pytest fixtures ``resilient_no_waits`` and
``resilient_no_retries``) so the switches are put back after the test.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

__all__ = ["TestMode", "MODE", "set_testing", "no_waits", "no_retries"]


class TestMode:
    """The switches; one instance, :data:`MODE`."""

    __test__ = False  # not a pytest test class
    __slots__ = ("waits", "retries")

    def __init__(self) -> None:
        self.waits = True
        self.retries = True


#: The process-wide test mode.
MODE = TestMode()


def set_testing(waits: bool = True, retries: bool = True) -> None:
    """Switch waits and retries on or off for the whole process."""
    MODE.waits = waits
    MODE.retries = retries


@contextlib.contextmanager
def no_waits() -> Iterator[None]:
    """Within the block, waits between attempts are 0 s; attempts still count."""
    previous = MODE.waits
    MODE.waits = False
    try:
        yield
    finally:
        MODE.waits = previous


@contextlib.contextmanager
def no_retries() -> Iterator[None]:
    """Within the block, every call makes exactly one attempt."""
    previous = MODE.retries
    MODE.retries = False
    try:
        yield
    finally:
        MODE.retries = previous
