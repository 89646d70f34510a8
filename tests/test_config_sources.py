"""Configuration from a dict, a JSON or TOML file, and the environment."""
from __future__ import annotations

import json
import sys

import pytest

import resilient_requests as rr
from resilient_requests import ClientConfig


def test_env_preset_is_the_base_and_fields_override_it():
    """PRESET picks the base; SECTION__FIELD and FIELD variables override it, typed from strings."""
    config = ClientConfig.from_env(environ={
        "RESILIENT_REQUESTS_PRESET": "fast_microservice",
        "RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS": "4",
        "RESILIENT_REQUESTS_TIMEOUT__READ": "2.5",
        "RESILIENT_REQUESTS_TIMEOUT__TOTAL": "none",
        "RESILIENT_REQUESTS_RETRY__RETRY_ON_STATUS": "503, 504",
        "RESILIENT_REQUESTS_RAISE_FOR_STATUS": "yes",
        "RESILIENT_REQUESTS_BASE_URL": "http://127.0.0.1:9/api",
        "OTHER_VARIABLE": "ignored",
    })
    fast = rr.get_fast_microservice_config()
    assert config.retry.max_attempts == 4 and config.retry.min_wait == fast.retry.min_wait
    assert (config.timeout.read, config.timeout.connect, config.timeout.total) == (2.5, 2.0, None)
    assert config.retry.retry_on_status == frozenset({503, 504})
    assert config.raise_for_status is True and config.base_url == "http://127.0.0.1:9/api"
    assert config.circuit_breaker == fast.circuit_breaker


def test_env_with_nothing_set_is_the_default():
    """No variables: ClientConfig()."""
    assert ClientConfig.from_env(environ={}) == ClientConfig()


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS": "x"}, "RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS='x'"),
        ({"RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS": "0"}, "RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS='0'"),
        ({"RESILIENT_REQUESTS_RETRY__BOGUS": "1"}, "RESILIENT_REQUESTS_RETRY__BOGUS"),
        ({"RESILIENT_REQUESTS_BOGUS": "1"}, "RESILIENT_REQUESTS_BOGUS"),
        ({"RESILIENT_REQUESTS_PRESET": "nope"}, "RESILIENT_REQUESTS_PRESET='nope'"),
        ({"RESILIENT_REQUESTS_FOLLOW_REDIRECTS": "maybe"}, "RESILIENT_REQUESTS_FOLLOW_REDIRECTS='maybe'"),
        ({"RESILIENT_REQUESTS_TIMEOUT__READ": "-1"}, "RESILIENT_REQUESTS_TIMEOUT__READ='-1'"),
    ],
)
def test_env_errors_name_the_variable_and_value(environ, named):
    """A bad variable raises an error naming the variable and its value."""
    with pytest.raises((TypeError, ValueError)) as got:
        ClientConfig.from_env(environ=environ)
    assert named in str(got.value)


def test_custom_prefix_and_typed_values_as_in_flask_app_config():
    """Another prefix works, and already-typed values (as in app.config) are taken as they are."""
    config = ClientConfig.from_env("PAY_", {"PAY_BULKHEAD__MAX_CONCURRENCY": 7, "PAY_VERIFY_SSL": False})
    assert config.bulkhead.max_concurrency == 7 and config.verify_ssl is False


def test_dict_with_sections_and_errors_naming_the_key():
    """from_dict takes nested sections; errors name the key path."""
    config = ClientConfig.from_dict({"preset": "batch_processing", "bulkhead": {"max_concurrency": 3},
                                     "retry": {"retry_on_status": [503]}})
    assert config.bulkhead.max_concurrency == 3 and config.retry.retry_on_status == frozenset({503})
    assert config.retry.max_attempts == 10
    with pytest.raises(ValueError, match=r"retry\.max_attempts=-1"):
        ClientConfig.from_dict({"retry": {"max_attempts": -1}})
    with pytest.raises(ValueError, match=r"unknown key retry\.tries"):
        ClientConfig.from_dict({"retry": {"tries": 2}})
    with pytest.raises(TypeError, match="retry"):
        ClientConfig.from_dict({"retry": 3})


def test_json_file(tmp_path):
    """A JSON file holds the from_dict layout."""
    path = tmp_path / "client.json"
    path.write_text(json.dumps({"preset": "high_latency", "timeout": {"read": 99}}))
    config = ClientConfig.from_file(path)
    assert config.timeout.read == 99.0 and config.retry.max_attempts == 5


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is in the standard library from 3.11")
def test_toml_file_with_a_table(tmp_path):
    """A TOML file may hold the layout under a [resilient_requests] table; errors name the file."""
    path = tmp_path / "client.toml"
    path.write_text('[resilient_requests]\npreset = "fast_microservice"\n[resilient_requests.retry]\nmax_attempts = 5\n')
    assert ClientConfig.from_file(path).retry.max_attempts == 5
    path.write_text('[retry]\nmax_attempts = 0\n')
    with pytest.raises(ValueError, match=r"client\.toml: retry\.max_attempts=0"):
        ClientConfig.from_file(path)


def test_unknown_file_kind(tmp_path):
    """Only .json and .toml are read."""
    path = tmp_path / "client.yaml"
    path.write_text("retry: {}")
    with pytest.raises(ValueError, match="json or .toml"):
        ClientConfig.from_file(path)


def test_module_level_api_reads_the_environment_when_first_built(monkeypatch, fault_server):
    """The module-level session is built from RESILIENT_REQUESTS_* on first use."""
    from resilient_requests import api
    from resilient_requests.testing import status

    monkeypatch.setattr(api, "_shared", None)
    monkeypatch.setenv("RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS", "2")
    monkeypatch.setenv("RESILIENT_REQUESTS_RETRY__MIN_WAIT", "0")
    fault_server.route("/x", status(503))
    try:
        rr.get(fault_server.url("/x"))
        assert fault_server.hits("/x") == 2
    finally:
        rr.configure()
