"""A test mode for users' own test suites, as stamina's ``set_testing`` offers.

Process-wide switches read by the retry loop: with waits off, every wait is
0 s but attempts still count (a test still sees three requests for a flaky
GET, without sleeping); with retries off, every call makes one attempt.
With request ids off, no ``X-Request-ID`` header is added (a strict header
matcher in a mocking library sees the headers the code set, as with requests).
Use the context managers (or the pytest fixtures ``resilient_no_waits`` and
``resilient_no_retries``, or the plugin's test mode: ``--resilient-test-mode``
or ``resilient_test_mode = true`` in the pytest ini) so the switches are put
back after the test.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

__all__ = ["TestMode", "MODE", "set_testing", "no_waits", "no_retries", "no_request_ids"]


class TestMode:
    """The switches; one instance, :data:`MODE`."""

    __test__ = False  # not a pytest test class
    __slots__ = ("waits", "retries", "request_ids")

    def __init__(self) -> None:
        self.waits = True
        self.retries = True
        self.request_ids = True


#: The process-wide test mode.
MODE = TestMode()


def set_testing(waits: bool = True, retries: bool = True, request_ids: bool = True) -> None:
    """Switch waits, retries and ``X-Request-ID`` headers on or off for the whole process."""
    MODE.waits = waits
    MODE.retries = retries
    MODE.request_ids = request_ids


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


@contextlib.contextmanager
def no_request_ids() -> Iterator[None]:
    """Within the block, no ``X-Request-ID`` header is added to requests."""
    previous = MODE.request_ids
    MODE.request_ids = False
    try:
        yield
    finally:
        MODE.request_ids = previous
