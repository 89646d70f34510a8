"""Named configurations: their exact numbers, and looking them up by name."""
from __future__ import annotations

import pytest

from resilient_requests import CircuitBreakerConfig, ClientConfig, LoggingConfig, RetryConfig
from resilient_requests.presets import (
    PRESET_NAMES,
    get_batch_processing_config,
    get_default_config,
    get_fast_microservice_config,
    get_high_latency_config,
    preset,
)

BASE = "http://api.example.com/v1"

# name: factory, (connect, read, write, pool), (attempts, min wait, max wait, multiplier),
#       (breaker threshold, recovery), (bulkhead slots, acquisition timeout)
TABLE = {
    "high_latency": (get_high_latency_config, (30, 120, 60, 15), (5, 2, 300, 2.0), (10, 120),
                     (20, 60)),
    "fast_microservice": (get_fast_microservice_config, (2, 5, 5, 1), (2, 0.5, 10, 2.0), (3, 10),
                          (100, 5)),
    "batch_processing": (get_batch_processing_config, (10, 300, 120, 30), (10, 5, 600, 1.5),
                         (15, 180), (5, 120)),
}
FACTORIES = {"default": get_default_config, **{name: row[0] for name, row in TABLE.items()}}


@pytest.mark.parametrize("name", TABLE)
def test_preset_numbers(name):
    """Each preset's timeouts, retry, breaker and bulkhead settings are exactly as documented."""
    factory, timeouts, retry, breaker, bulkhead = TABLE[name]
    config = factory()
    t, r, b, h = config.timeout, config.retry, config.circuit_breaker, config.bulkhead
    assert (t.connect, t.read, t.write, t.pool) == timeouts
    assert (r.max_attempts, r.min_wait, r.max_wait, r.multiplier) == retry
    assert (b.failure_threshold, b.recovery_timeout) == breaker
    assert (h.max_concurrency, h.acquisition_timeout) == bulkhead


@pytest.mark.parametrize("name", TABLE)
def test_preset_keeps_the_other_defaults(name):
    """Outside the table a preset keeps the defaults (jitter, status sets, logging, flags)."""
    config, default = preset(name), ClientConfig()
    assert config.retry.jitter is True
    assert config.retry.retry_on_status == RetryConfig().retry_on_status
    assert config.circuit_breaker.failure_statuses == CircuitBreakerConfig().failure_statuses
    assert config.logging == LoggingConfig()
    for flag in ("base_url", "follow_redirects", "verify_ssl", "user_agent", "raise_for_status"):
        assert getattr(config, flag) == getattr(default, flag)


def test_default_preset_is_the_default_config():
    """get_default_config() and preset('default') are ClientConfig() with the given base_url."""
    assert get_default_config() == ClientConfig()
    assert preset("default", BASE) == ClientConfig(base_url=BASE)


def test_preset_names():
    """PRESET_NAMES lists the five presets preset() accepts."""
    assert PRESET_NAMES == ("default", "high_latency", "fast_microservice", "batch_processing", "web")


@pytest.mark.parametrize("name", FACTORIES)
def test_preset_by_name_passes_base_url(name):
    """preset(name, base_url) is the named factory's config with base_url set."""
    config = preset(name, BASE)
    assert config.base_url == BASE
    assert config == FACTORIES[name](BASE)
    assert FACTORIES[name]().base_url is None


@pytest.mark.parametrize("name", FACTORIES)
def test_preset_returns_a_fresh_config_each_time(name):
    """Two calls return separate configs, so changing one cannot change the next."""
    first, second = preset(name), preset(name)
    assert first is not second and first.timeout is not second.timeout
    first.timeout.read = 999.0
    assert preset(name).timeout.read != 999.0


@pytest.mark.parametrize("name", FACTORIES)
def test_preset_checks_base_url(name):
    """A preset given a base_url without an http(s) scheme raises ValueError."""
    with pytest.raises(ValueError, match=r"ClientConfig\.base_url"):
        preset(name, "ftp://files.example.com")


@pytest.mark.parametrize("bad", ["High_Latency", "turbo", "", None])
def test_unknown_preset_lists_the_valid_names(bad):
    """An unknown preset name raises ValueError naming it and every valid preset."""
    with pytest.raises(ValueError) as info:
        preset(bad)
    message = str(info.value)
    assert repr(bad) in message
    for name in FACTORIES:
        assert name in message
