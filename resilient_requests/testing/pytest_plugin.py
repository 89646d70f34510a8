"""pytest plugin (entry point ``pytest11``): ``fault_server``, the test-mode
fixtures, and the test mode for a suite migrated from requests.

The test mode (``pytest --resilient-test-mode``, or ``resilient_test_mode =
true`` in the ini file) applies to every test: the process's resilience state
(breakers, bulkheads, retry budgets, throttles, rate limits) starts each test
fresh, waits between attempts take 0 s, and no ``X-Request-ID`` header is
added. Retries stay on: a test that mocks a failing answer sees the call
counts the code will really make (add ``resilient_no_retries`` to a test, or
``resilient_test_mode_retries = false`` to the ini, for one attempt per call).
"""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from ..api import reset
from ..testmode import MODE, no_request_ids, no_retries, no_waits
from .server import FaultServer

_TRUE = ("1", "true", "yes", "on")


def pytest_addoption(parser: Any) -> None:
    """``--resilient-test-mode`` and the ini options ``resilient_test_mode``
    and ``resilient_test_mode_retries``."""
    group = parser.getgroup("resilient_requests")
    group.addoption("--resilient-test-mode", action="store_true", default=False,
                    help="reset resilience state around each test, no waits, no X-Request-ID")
    parser.addini("resilient_test_mode", "the resilient_requests test mode for every test (true/false)",
                  default="false")
    parser.addini("resilient_test_mode_retries", "in test mode, whether calls retry (true/false)",
                  default="true")


def _test_mode(config: Any) -> bool:
    return bool(config.getoption("--resilient-test-mode")) or \
        str(config.getini("resilient_test_mode")).strip().lower() in _TRUE


@pytest.fixture(autouse=True)
def _resilient_test_mode(request: Any) -> Iterator[None]:
    """The test mode around every test, when it is on."""
    config = request.config
    if not _test_mode(config):
        yield
        return
    retries = str(config.getini("resilient_test_mode_retries")).strip().lower() in _TRUE
    previous = (MODE.waits, MODE.retries, MODE.request_ids)
    reset()
    MODE.waits, MODE.request_ids = False, False
    if not retries:
        MODE.retries = False
    try:
        yield
    finally:
        MODE.waits, MODE.retries, MODE.request_ids = previous
        reset()


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
def resilient_no_request_ids() -> Iterator[None]:
    """No ``X-Request-ID`` header is added during the test."""
    with no_request_ids():
        yield


@pytest.fixture
def resilient_reset() -> Iterator[None]:
    """The process's breakers, bulkheads and budgets start and end the test
    fresh (``resilient_requests.reset()``): no state passes between tests.
    Make it autouse in your conftest.py to apply it to every test."""
    reset()
    yield
    reset()
