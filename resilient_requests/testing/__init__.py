"""Test helpers for code that uses resilient_requests: a fault-injecting HTTP
server on 127.0.0.1 (:class:`FaultServer`) and the faults it plays, and a
forwarding HTTP proxy / CONNECT tunnel to put in front of it (:class:`ForwardProxy`).

With the package installed, pytest gets the fixtures ``fault_server``,
``resilient_no_waits``, ``resilient_no_retries`` and ``resilient_reset``; :func:`no_waits` and
:func:`no_retries` are the same switches as context managers.
"""
from ..testmode import no_retries, no_waits, set_testing
from .faults import (
    Echo,
    Fault,
    Hang,
    Hold,
    Limit,
    Reply,
    Reset,
    Trickle,
    Truncate,
    ok,
    redirect,
    status,
)
from .proxy import ForwardProxy, ProxyMode
from .server import FaultServer, SeenRequest, refused_url

__all__ = [
    "FaultServer", "SeenRequest", "refused_url", "no_waits", "no_retries", "set_testing",
    "Fault", "Reply", "ok", "status", "redirect", "Echo", "Reset", "Truncate", "Trickle", "Hang", "Hold", "Limit",
    "ForwardProxy", "ProxyMode",
]
