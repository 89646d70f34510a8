"""The retry budget: a half-down dependency gets ~1.2 requests per call, not up to max_attempts."""
from __future__ import annotations

import logging

import resilient_requests as rr
from resilient_requests.budget import RetryBudget
from resilient_requests.testing import ok, status

from .conftest import fast_config


def _config(ratio, floor=0.0):
    config = fast_config(attempts=3, threshold=10_000)
    config.retry = rr.RetryConfig(
        max_attempts=3, min_wait=0.0, max_wait=0.0, budget_ratio=ratio, budget_floor=floor,
    )
    return config


def test_budget_caps_retries_at_a_share_of_calls(fault_server, make_session, caplog):
    """With every first attempt failing, 100 calls send at most 100 * 1.2 requests, and refusals are logged."""
    caplog.set_level(logging.WARNING, logger="resilient_requests")
    fault_server.route("/half", status(503), ok(), cycle=True)
    session = make_session(_config(ratio=0.2))
    codes = [session.get(fault_server.url("/half")).status_code for _ in range(100)]
    assert 100 <= fault_server.hits("/half") <= 120
    assert 503 in codes  # refused retries return the failure at once
    assert any("retry budget spent" in r.getMessage() for r in caplog.records)


def test_without_a_budget_every_failure_is_retried(fault_server, make_session):
    """budget_ratio=None: the same 100 calls send 200 requests and all succeed."""
    fault_server.route("/half", status(503), ok(), cycle=True)
    session = make_session(_config(ratio=None))
    codes = [session.get(fault_server.url("/half")).status_code for _ in range(100)]
    assert fault_server.hits("/half") == 200 and set(codes) == {200}


def test_floor_lets_a_quiet_caller_retry(fault_server, make_session):
    """A caller making few calls still gets its retries from the floor."""
    fault_server.route("/x", status(503), ok(), cycle=True)
    session = make_session(_config(ratio=0.0, floor=1.0))
    assert [session.get(fault_server.url("/x")).status_code for _ in range(5)] == [200] * 5


def test_budgets_are_per_origin(fault_server, make_session):
    """Spending one origin's budget leaves another's untouched."""
    from resilient_requests.testing import FaultServer

    fault_server.route("/x", status(503))
    session = make_session(_config(ratio=0.0, floor=0.1))  # one retry per 10 s window
    session.get(fault_server.url("/x"))
    session.get(fault_server.url("/x"))
    assert fault_server.hits("/x") == 3  # 2 first attempts + the single retry
    with FaultServer() as other:
        other.route("/x", status(503), ok())
        assert session.get(other.url("/x")).status_code == 200


def test_retry_budget_unit_window():
    """RetryBudget allows ratio * calls + floor retries in its window."""
    budget = RetryBudget(ratio=0.5, floor_per_second=0.0, window=60.0)
    for _ in range(10):
        budget.record_call()
    assert [budget.try_spend() for _ in range(7)] == [True] * 5 + [False] * 2
    assert budget.refused == 2
