"""pytest plugin (entry point ``pytest11``): ``fault_server`` and the test-mode fixtures."""
from __future__ import annotations

from typing import Iterator

import pytest

from ..api import reset
from ..testmode import no_retries, no_waits
from .server import FaultServer


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A started :class:`FaultServer` on 127.0.0.1, stopped after the test."""
    with FaultServer() as server:
        yield server


@pytest.fixture
def resilient_no_waits() -> Iterator[None]:
    """Waits between attempts are 0 s during the test; attempts still count."""
    with no_waits():
        yield


@pytest.fixture
def resilient_no_retries() -> Iterator[None]:
    """Every call makes one attempt during the test."""
    with no_retries():
        yield


@pytest.fixture
def resilient_reset() -> Iterator[None]:
    """The process's breakers, bulkheads and budgets start and end the test
    fresh (``resilient_requests.reset()``): no state passes between tests.
    Make it autouse in your conftest.py to apply it to every test."""
    reset()
    yield
    reset()
