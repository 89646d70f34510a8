"""The configuration dataclasses: their defaults and the checks made when they are built."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from resilient_requests import (
    BulkheadConfig,
    CircuitBreakerConfig,
    ClientConfig,
    HedgeConfig,
    LoggingConfig,
    RateLimitConfig,
    RetryConfig,
    TimeoutConfig,
)

NAN, INF = float("nan"), float("inf")

TIMEOUT_DEFAULTS = {"connect": 10.0, "read": 30.0, "write": 15.0, "pool": 5.0, "total": None}
RETRY_DEFAULTS = {
    "max_attempts": 3, "min_wait": 1.0, "max_wait": 60.0, "multiplier": 2.0, "jitter": True,
    "retry_on_status": frozenset({429, 500, 502, 503, 504}),
    "budget_ratio": 0.2, "budget_floor": 1.0, "budget_window": 10.0,
}
BREAKER_DEFAULTS = {
    "failure_threshold": 5, "recovery_timeout": 30.0,
    "failure_statuses": frozenset({500, 502, 503, 504}),
    "policy": "consecutive", "failure_rate_threshold": 0.5, "window_type": "count",
    "window_size": 100.0, "minimum_calls": 20, "slow_call_duration": None,
    "slow_call_rate_threshold": 1.0, "permitted_calls_in_half_open": 1, "trial_timeout": None,
    "recovery_multiplier": 1.0, "max_recovery_timeout": None,
    "storage": None, "namespace": "resilient_requests", "storage_timeout": 0.25,
    "state_cache_ttl": 0.1, "storage_retry": 5.0,
}
BULKHEAD_DEFAULTS = {"max_concurrency": 50, "acquisition_timeout": 30.0}
LOGGING_DEFAULTS = {
    "level": "INFO", "include_request_id": True, "logger_name": "resilient_requests",
}
THROTTLE_DEFAULTS = {"enabled": False, "k": 2.0, "window": 120.0}
HEDGE_DEFAULTS = {
    "enabled": False, "delay": None, "percentile": 0.95, "min_samples": 20, "max_hedges": 1,
    "methods": frozenset({"GET", "HEAD", "OPTIONS"}),
}
RATE_LIMIT_DEFAULTS = {
    "rate": None, "per": 1.0, "margin": 0.02, "burst": None, "max_wait": 0.0, "adaptive": False, "min_rate": 0.5,
    "cooldown": False, "max_pause": 300.0, "shared": False, "fallback_share": 1.0,
}
CLIENT_DEFAULTS = {
    "base_url": None, "timeout": TIMEOUT_DEFAULTS, "retry": RETRY_DEFAULTS,
    "circuit_breaker": BREAKER_DEFAULTS, "bulkhead": BULKHEAD_DEFAULTS, "logging": LOGGING_DEFAULTS,
    "throttle": THROTTLE_DEFAULTS, "hedge": HEDGE_DEFAULTS, "rate_limit": RATE_LIMIT_DEFAULTS,
    "follow_redirects": True, "verify_ssl": True, "user_agent": None, "raise_for_status": False,
    "dependencies": {}, "total_concurrency": None,
}


# -- defaults ----------------------------------------------------------------

@pytest.mark.parametrize("cls, expected", [
    (TimeoutConfig, TIMEOUT_DEFAULTS),
    (RetryConfig, RETRY_DEFAULTS),
    (CircuitBreakerConfig, BREAKER_DEFAULTS),
    (BulkheadConfig, BULKHEAD_DEFAULTS),
    (LoggingConfig, LOGGING_DEFAULTS),
    (HedgeConfig, HEDGE_DEFAULTS),
    (RateLimitConfig, RATE_LIMIT_DEFAULTS),
    (ClientConfig, CLIENT_DEFAULTS),
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_defaults(cls, expected):
    """Each config built with no arguments has exactly the documented fields, values and types."""
    actual = dataclasses.asdict(cls())
    assert actual == expected
    assert {k: type(v) for k, v in actual.items()} == {k: type(v) for k, v in expected.items()}


def test_client_config_sections_are_not_shared():
    """Two default ClientConfigs get their own section objects, not one shared default."""
    a, b = ClientConfig(), ClientConfig()
    for name in ("timeout", "retry", "circuit_breaker", "bulkhead", "logging"):
        assert getattr(a, name) is not getattr(b, name)


# -- accepted values ---------------------------------------------------------

@pytest.mark.parametrize("cls, kwargs, field, expected", [
    (BulkheadConfig, {"acquisition_timeout": 0}, "acquisition_timeout", 0.0),
    (TimeoutConfig, {"connect": 1}, "connect", 1.0),
    (TimeoutConfig, {"read": 0.001}, "read", 0.001),
    (RetryConfig, {"min_wait": 0, "max_wait": 0}, "max_wait", 0.0),
    (RetryConfig, {"multiplier": 1}, "multiplier", 1.0),
    (RetryConfig, {"max_attempts": 1}, "max_attempts", 1),
    (RetryConfig, {"retry_on_status": [503, 503, 429]}, "retry_on_status", frozenset({429, 503})),
    (RetryConfig, {"retry_on_status": ()}, "retry_on_status", frozenset()),
    (CircuitBreakerConfig, {"failure_threshold": 1}, "failure_threshold", 1),
    (LoggingConfig, {"level": "debug"}, "level", "DEBUG"),
    (ClientConfig, {"base_url": "HTTPS://api.example.com/v1"}, "base_url",
     "HTTPS://api.example.com/v1"),
    (ClientConfig, {"user_agent": "probe/1.0"}, "user_agent", "probe/1.0"),
], ids=lambda v: v.__name__ if isinstance(v, type) else None)
def test_accepted_values_are_normalised(cls, kwargs, field, expected):
    """Edge values that mean something are accepted (numbers as float, statuses as frozenset)."""
    value = getattr(cls(**kwargs), field)
    assert value == expected
    assert type(value) is type(expected)


# -- rejected values ---------------------------------------------------------

_BAD_SECONDS = [("1", TypeError), (None, TypeError), (True, TypeError), (-1, ValueError),
                (NAN, ValueError), (INF, ValueError), (-INF, ValueError)]
_BAD_COUNT = [(1.0, TypeError), ("3", TypeError), (None, TypeError), (True, TypeError),
              (0, ValueError), (-1, ValueError)]
_BAD_FLAG = [(1, TypeError), ("yes", TypeError), (None, TypeError)]
_BAD_SECTION = [(None, TypeError), ("x", TypeError), ({"connect": 1}, TypeError)]


def _rows(cls, field, bad):
    return [(cls, field, value, error) for value, error in bad]


INVALID = [
    *[row for f in ("connect", "read", "write", "pool")
      for row in _rows(TimeoutConfig, f, _BAD_SECONDS + [(0, ValueError), (0.0, ValueError)])],
    *_rows(RetryConfig, "max_attempts", _BAD_COUNT),
    *_rows(RetryConfig, "min_wait", _BAD_SECONDS),
    *_rows(RetryConfig, "max_wait", _BAD_SECONDS),
    *_rows(RetryConfig, "multiplier", _BAD_SECONDS + [(0, ValueError), (0.5, ValueError)]),
    *_rows(RetryConfig, "jitter", _BAD_FLAG),
    *_rows(CircuitBreakerConfig, "failure_threshold", _BAD_COUNT),
    *_rows(CircuitBreakerConfig, "recovery_timeout", _BAD_SECONDS + [(0, ValueError)]),
    *_rows(CircuitBreakerConfig, "permitted_calls_in_half_open", _BAD_COUNT),
    *_rows(CircuitBreakerConfig, "trial_timeout", [(0, ValueError), (-1, ValueError), ("1", TypeError),
                                                   (INF, ValueError)]),
    *_rows(CircuitBreakerConfig, "recovery_multiplier", _BAD_SECONDS + [(0.5, ValueError)]),
    *_rows(CircuitBreakerConfig, "max_recovery_timeout", [(0, ValueError), ("9", TypeError), (INF, ValueError),
                                                          (10.0, ValueError)]),  # < recovery_timeout (30)
    *_rows(BulkheadConfig, "max_concurrency", _BAD_COUNT),
    *_rows(BulkheadConfig, "acquisition_timeout", _BAD_SECONDS),
    *_rows(HedgeConfig, "enabled", _BAD_FLAG),
    *_rows(HedgeConfig, "delay", [("1", TypeError), (-1, ValueError), (NAN, ValueError), (True, TypeError)]),
    *_rows(HedgeConfig, "percentile", [(0, ValueError), (1.0, ValueError), (95, ValueError), ("0.9", TypeError)]),
    *_rows(HedgeConfig, "min_samples", _BAD_COUNT),
    *_rows(HedgeConfig, "max_hedges", _BAD_COUNT),
    *_rows(HedgeConfig, "methods", [("GET", TypeError), (None, TypeError), ({"POST"}, ValueError),
                                    (frozenset(), ValueError), ({"GET", "PATCH"}, ValueError)]),
    *_rows(LoggingConfig, "level", [(20, TypeError), (None, TypeError), ("LOUD", ValueError),
                                    ("", ValueError)]),
    *_rows(LoggingConfig, "include_request_id", _BAD_FLAG),
    *_rows(LoggingConfig, "logger_name", [(123, TypeError), (None, TypeError), ("", ValueError)]),
    *_rows(ClientConfig, "base_url", [(123, TypeError), (b"http://x", TypeError),
                                      ("ftp://example.com", ValueError),
                                      ("example.com", ValueError), ("", ValueError)]),
    *[row for f in ("timeout", "retry", "circuit_breaker", "bulkhead", "logging", "throttle", "hedge")
      for row in _rows(ClientConfig, f, _BAD_SECTION)],
    (ClientConfig, "timeout", RetryConfig(), TypeError),
    (ClientConfig, "retry", TimeoutConfig, TypeError),  # the class, not an instance
    *[row for f in ("follow_redirects", "verify_ssl", "raise_for_status")
      for row in _rows(ClientConfig, f, _BAD_FLAG)],
    *_rows(ClientConfig, "user_agent", [(123, TypeError), (b"ua", TypeError)]),
]


@pytest.mark.parametrize("cls, field, value, error", INVALID,
                         ids=[f"{c.__name__}.{f}={v!r}" for c, f, v, _ in INVALID])
def test_invalid_field_raises_naming_class_field_and_value(cls, field, value, error):
    """A bad field raises TypeError/ValueError naming Class.field and the value's repr."""
    with pytest.raises(error) as info:
        cls(**{field: value})
    message = str(info.value)
    assert f"{cls.__name__}.{field}" in message
    assert repr(value) in message


BAD_STATUSES = [
    (RetryConfig, "retry_on_status", 500, 500, TypeError),
    (RetryConfig, "retry_on_status", "500", "500", TypeError),
    (RetryConfig, "retry_on_status", None, None, TypeError),
    (RetryConfig, "retry_on_status", {600}, 600, ValueError),
    (RetryConfig, "retry_on_status", {99}, 99, ValueError),
    (RetryConfig, "retry_on_status", [503, -1], -1, ValueError),
    (RetryConfig, "retry_on_status", {"500"}, "500", TypeError),
    (RetryConfig, "retry_on_status", {True}, True, TypeError),
    (CircuitBreakerConfig, "failure_statuses", 500, 500, TypeError),
    (CircuitBreakerConfig, "failure_statuses", {600}, 600, ValueError),
    (CircuitBreakerConfig, "failure_statuses", {"500"}, "500", TypeError),
]


@pytest.mark.parametrize("cls, field, value, member, error", BAD_STATUSES,
                         ids=[f"{c.__name__}.{f}={v!r}" for c, f, v, _, _ in BAD_STATUSES])
def test_invalid_status_set_raises_naming_the_bad_member(cls, field, value, member, error):
    """A status set that is not a collection of int codes in 100-599 names the culprit."""
    with pytest.raises(error) as info:
        cls(**{field: value})
    assert f"{cls.__name__}.{field}" in str(info.value)
    assert repr(member) in str(info.value)


def test_max_wait_below_min_wait_is_refused():
    """RetryConfig refuses a max_wait smaller than min_wait, naming both values."""
    with pytest.raises(ValueError) as info:
        RetryConfig(min_wait=2.0, max_wait=1.5)
    assert "RetryConfig.max_wait" in str(info.value)
    assert repr(1.5) in str(info.value) and repr(2.0) in str(info.value)


def test_replace_checks_the_changes():
    """ClientConfig.replace returns a checked copy and leaves the original alone."""
    original = ClientConfig()
    changed = original.replace(raise_for_status=True)
    assert changed.raise_for_status is True and original.raise_for_status is False
    with pytest.raises(TypeError, match=r"ClientConfig\.retry"):
        original.replace(retry=None)


#: Run in a child whose ``import redis`` fails, as where the package is not installed:
#: ``sys.modules['redis'] = None`` before the library is imported. Prints
#: ``<stage>: <exception class>: <message>`` for the first step that raised.
WITHOUT_REDIS = textwrap.dedent("""
    import sys
    sys.modules["redis"] = None
    import resilient_requests as rr
    from resilient_requests.testing import FaultServer
    stage = "config"
    try:
        config = rr.ClientConfig(circuit_breaker=rr.CircuitBreakerConfig(
            storage="redis://:s3cret@127.0.0.1:6379/0"))
        stage = "session"
        with FaultServer() as server, rr.ResilientSession(config, isolated=True) as session:
            stage = "request"
            session.get(server.url("/"))
        print("no error")
    except Exception as error:
        print(f"{stage}: {type(error).__name__}: {error}")
""")


def test_redis_storage_without_the_redis_package_fails_when_the_config_is_built():
    """A Redis storage URL with ``redis`` not importable raises ImportError from
    CircuitBreakerConfig itself (not at the first request), saying what to install,
    without the URL's password."""
    done = subprocess.run([sys.executable, "-c", WITHOUT_REDIS], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1], stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    out = done.stdout.strip()
    assert out.startswith("config: ImportError: CircuitBreakerConfig.storage"), out
    assert "pip install 'resilient_requests[redis]'" in out
    assert "s3cret" not in out


def test_redis_storage_with_redis_installed_builds():
    """With redis importable (as in this environment), a Redis URL is accepted as before."""
    pytest.importorskip("redis")
    config = CircuitBreakerConfig(storage="redis://127.0.0.1:6379/0")
    assert config.storage == "redis://127.0.0.1:6379/0"
