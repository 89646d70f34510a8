"""Test helpers for code that uses resilient_requests: a fault-injecting HTTP
server on 127.0.0.1 (:class:`FaultServer`) and the faults it plays.

With the package installed, pytest gets a ``fault_server`` fixture.
"""
from .faults import Echo, Fault, Hang, Hold, Reply, Reset, Trickle, Truncate, ok, redirect, status
from .server import FaultServer, SeenRequest, refused_url

__all__ = [
    "FaultServer", "SeenRequest", "refused_url",
    "Fault", "Reply", "ok", "status", "redirect", "Echo", "Reset", "Truncate", "Trickle", "Hang", "Hold",
]
