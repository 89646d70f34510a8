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
    get_web_config,
    preset,
)

BASE = "http://api.example.com/v1"

# name: factory, (connect, read, write, pool), (attempts, min wait, max wait, multiplier),
#       (breaker threshold, recovery), (bulkhead slots, acquisition timeout)
TABLE = {
    "high_latency": (get_high_latency_config, (30, 120, 60, 15), (5, 2, 300, 2.0), (10, 120),
                     (20, 60)),
    "fast_microservice": (get_fast_microservice_config, (2, 5, 5, 1), (3, 0.5, 10, 2.0), (8, 10),
                          (100, 5)),
    "batch_processing": (get_batch_processing_config, (10, 300, 120, 30), (10, 5, 600, 1.5),
                         (15, 180), (5, 120)),
    "web": (get_web_config, (1, 1.25, 2, 1), (3, 0.05, 0.5, 2.0), (5, 5), (4, 0.05)),
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


#: The fault rate every preset must ride out with >= 99% of calls succeeding.
FAULT_RATE = 0.1


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_makes_enough_attempts_for_ten_percent_faults(name):
    """At least three attempts: with 10% independent faults a call then fails 0.1% of the
    time (two attempts: 1%, the whole of a 99% goal); a consecutive-failures breaker."""
    config = preset(name)
    assert config.retry.max_attempts >= 3
    assert FAULT_RATE ** config.retry.max_attempts <= 0.001 + 1e-12
    assert config.circuit_breaker.policy == "consecutive"


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_one_calls_retries_never_open_the_breaker_alone(name):
    """The threshold is above the attempts of one call, so a single resource that keeps
    failing (one call, all its attempts) does not refuse every other call."""
    config = preset(name)
    assert config.circuit_breaker.failure_threshold > config.retry.max_attempts


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_a_hard_outage_opens_the_breaker_within_ten_calls_on_paper(name):
    """With its retries a hard outage reaches the threshold within 10 calls (3 at most);
    without any retry, within 10 calls for every preset but batch_processing (15, by design:
    its threshold stays above its 10 attempts). tests/test_presets_under_faults.py measures it."""
    config = preset(name)
    threshold, attempts = config.circuit_breaker.failure_threshold, config.retry.max_attempts
    assert -(-threshold // attempts) <= 3
    assert threshold <= (15 if name == "batch_processing" else 10)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_the_retry_budget_covers_ten_percent_faults(name):
    """10% faults need about 11% retries (p + p^2 + ...); the budget allows 20% of calls."""
    retry = preset(name).retry
    needed = sum(FAULT_RATE ** n for n in range(1, retry.max_attempts))
    assert retry.budget_ratio is not None and retry.budget_ratio >= 1.5 * needed


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_chance_openings_cost_under_one_percent_at_the_documented_rate(name):
    """A run of k faults at rate p costs about R * p**k * T of the calls (T: the open period);
    the limits docs/reference/presets.md gives keep that under 0.9% (what three attempts leave)."""
    documented = {"default": 30, "high_latency": 750_000, "fast_microservice": 90_000,
                  "batch_processing": 5 * 10**10, "web": 180}
    breaker = preset(name).circuit_breaker
    loss = documented[name] * FAULT_RATE ** breaker.failure_threshold * breaker.recovery_timeout
    assert loss <= 0.009 + 1e-12, loss
