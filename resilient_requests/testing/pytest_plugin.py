"""pytest plugin (entry point ``pytest11``): the ``fault_server`` fixture."""
from __future__ import annotations

from typing import Iterator

import pytest

from .server import FaultServer


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A started :class:`FaultServer` on 127.0.0.1, stopped after the test."""
    with FaultServer() as server:
        yield server
