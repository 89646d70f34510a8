"""Logging and request ids: the library's own logger only, no secrets, ids on every call."""
from __future__ import annotations

import logging

import resilient_requests as rr
from resilient_requests.testing import Echo

from .conftest import fast_config


def test_level_applies_to_the_library_logger_only():
    """LoggingConfig.level sets the library's logger and leaves the root logger alone."""
    root_level = logging.getLogger().level
    with rr.ResilientSession(fast_config(logging=rr.LoggingConfig(level="ERROR", logger_name="rr.test.a"))):
        assert logging.getLogger("rr.test.a").level == logging.ERROR
    assert logging.getLogger().level == root_level


def test_library_adds_no_handlers_but_a_null_handler():
    """Importing and using the library configures no output handlers."""
    with rr.ResilientSession(fast_config()):
        pass
    handlers = logging.getLogger("resilient_requests").handlers
    assert all(isinstance(h, logging.NullHandler) for h in handlers)
    assert not any(isinstance(h, logging.StreamHandler) for h in logging.getLogger().handlers
                   if not type(h).__module__.startswith("_pytest"))


def test_request_id_sent_and_callers_own_kept(fault_server, make_session):
    """Each call sends an X-Request-ID; a caller's own value is kept; its headers dict is untouched."""
    fault_server.route("/me", Echo())
    session = make_session()
    generated = session.get(fault_server.url("/me")).json()["headers"]["X-Request-ID"]
    assert len(generated) == 32
    mine = {"X-Request-ID": "abc-123"}
    assert session.get(fault_server.url("/me"), headers=mine).json()["headers"]["X-Request-ID"] == "abc-123"
    plain: dict = {}
    session.get(fault_server.url("/me"), headers=plain)
    assert plain == {}


def test_request_id_can_be_switched_off(fault_server, make_session):
    """include_request_id=False sends no X-Request-ID."""
    fault_server.route("/me", Echo())
    session = make_session(logging=rr.LoggingConfig(include_request_id=False))
    assert "X-Request-ID" not in session.get(fault_server.url("/me")).json()["headers"]


def test_breaker_transitions_are_logged_once_each(fault_server, make_session, caplog):
    """Opening is a WARNING naming the origin; it is logged once, not per failing call."""
    caplog.set_level(logging.INFO, logger="resilient_requests")
    from resilient_requests.testing import status

    fault_server.route("/x", status(503))
    session = make_session(attempts=1, threshold=2)
    for _ in range(2):
        session.get(fault_server.url("/x"))
    for _ in range(3):
        try:
            session.get(fault_server.url("/x"))
        except rr.CircuitOpenError:
            pass
    opened = [r for r in caplog.records if "-> open" in r.getMessage()]
    assert len(opened) == 1 and opened[0].levelno == logging.WARNING
    assert f"127.0.0.1:{fault_server.port}" in opened[0].getMessage()


def test_an_applications_own_level_wins():
    """A level the application set on the logger is not overridden by a session's config."""
    logger = logging.getLogger("rr.test.app")
    logger.setLevel(logging.ERROR)
    with rr.ResilientSession(fast_config(logging=rr.LoggingConfig(level="DEBUG", logger_name="rr.test.app"))):
        assert logger.level == logging.ERROR
