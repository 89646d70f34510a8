"""PrometheusListener: real calls through a session against the fault server, read back from a real registry."""
from __future__ import annotations

import importlib
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import CollectorRegistry, Counter

import resilient_requests as rr
from resilient_requests.contrib.prometheus import BREAKER_STATES, PrometheusListener
from resilient_requests.testing import Hold, ok, refused_url, status

from .conftest import wait_until


def value(registry, name, **labels):
    """A sample's value, 0.0 when the series does not exist yet."""
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


@pytest.fixture
def registry():
    """A fresh registry per test, so counts start at zero."""
    return CollectorRegistry()


def test_a_retried_success_counts_call_retry_failed_attempt_and_duration(fault_server, make_session, registry):
    """503 then 200: one successful call, one retry, one failed attempt labelled 503, one duration sample."""
    fault_server.route("/x", status(503), ok())
    session = make_session()
    session.add_listener(PrometheusListener(registry))
    assert session.get(fault_server.url("/x")).status_code == 200
    origin = fault_server.base_url
    call = {"origin": origin, "method": "GET", "outcome": "success"}
    assert value(registry, "resilient_requests_calls_total", **call) == 1
    assert value(registry, "resilient_requests_call_duration_seconds_count", **call) == 1
    assert value(registry, "resilient_requests_call_duration_seconds_sum", **call) > 0
    assert value(registry, "resilient_requests_retries_total", origin=origin, method="GET") == 1
    assert value(registry, "resilient_requests_attempts_failed_total",
                 origin=origin, method="GET", reason="503") == 1
    assert value(registry, "resilient_requests_breaker_state", origin=origin) == BREAKER_STATES["closed"]


def test_transport_failures_are_labelled_by_exception_class(make_session, registry):
    """A refused connection fails each attempt with a class-name reason and the call with outcome failure."""
    session = make_session(attempts=2)
    session.add_listener(PrometheusListener(registry))
    url = refused_url("/x")
    with pytest.raises(rr.ConnectionError):
        session.get(url)
    origin = url.rsplit("/", 1)[0]
    assert value(registry, "resilient_requests_calls_total", origin=origin, method="GET", outcome="failure") == 1
    samples = [s for metric in registry.collect() for s in metric.samples
               if s.name == "resilient_requests_attempts_failed_total"]
    assert sum(s.value for s in samples) == 2
    assert all(s.labels["reason"] and not s.labels["reason"].isdigit() for s in samples)


def test_breaker_gauge_follows_open_half_open_and_closed(fault_server, make_session, registry):
    """The gauge reads 1 once the breaker opens, 2 while the trial call is in flight, 0 after it succeeds."""
    release = threading.Event()
    fault_server.route("/x", status(500), Hold(release, ok()))
    session = make_session(attempts=1, threshold=1, recovery=0.05)
    session.add_listener(PrometheusListener(registry))
    origin = fault_server.base_url
    session.get(fault_server.url("/x"))
    assert value(registry, "resilient_requests_breaker_state", origin=origin) == BREAKER_STATES["open"]
    time.sleep(0.06)
    with ThreadPoolExecutor(max_workers=1) as pool:
        trial = pool.submit(session.get, fault_server.url("/x"))
        wait_until(lambda: fault_server.in_flight == 1)
        assert value(registry, "resilient_requests_breaker_state", origin=origin) == BREAKER_STATES["half_open"]
        release.set()
        assert trial.result(timeout=10).status_code == 200
    assert value(registry, "resilient_requests_breaker_state", origin=origin) == BREAKER_STATES["closed"]
    transitions = {(old, new): value(registry, "resilient_requests_breaker_transitions_total",
                                     origin=origin, from_state=old, to_state=new)
                   for old, new in [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]}
    assert transitions == {("closed", "open"): 1, ("open", "half_open"): 1, ("half_open", "closed"): 1}


def test_a_short_circuited_call_is_counted_once(fault_server, make_session, registry):
    """A call refused by the open breaker counts in short_circuited_total and as outcome short_circuited, untimed."""
    fault_server.route("/x", status(500))
    session = make_session(attempts=1, threshold=1)
    session.add_listener(PrometheusListener(registry))
    origin = fault_server.base_url
    session.get(fault_server.url("/x"))
    with pytest.raises(rr.CircuitOpenError):
        session.get(fault_server.url("/x"))
    assert value(registry, "resilient_requests_short_circuited_total", origin=origin, method="GET") == 1
    assert value(registry, "resilient_requests_calls_total",
                 origin=origin, method="GET", outcome="short_circuited") == 1
    assert value(registry, "resilient_requests_calls_total", origin=origin, method="GET", outcome="failure") == 1
    assert value(registry, "resilient_requests_call_duration_seconds_count",
                 origin=origin, method="GET", outcome="short_circuited") == 0


def test_bulkhead_rejection_is_counted_as_a_rejected_call(fault_server, make_session, registry):
    """A call refused by a full bulkhead counts in bulkhead_rejected_total and as outcome rejected."""
    release = threading.Event()
    fault_server.route("/x", Hold(release, ok()))
    session = make_session(slots=1, acquire=0.0)
    session.add_listener(PrometheusListener(registry))
    with ThreadPoolExecutor(max_workers=1) as pool:
        busy = pool.submit(session.get, fault_server.url("/x"))
        wait_until(lambda: fault_server.in_flight == 1)
        with pytest.raises(rr.PoolTimeoutError):
            session.get(fault_server.url("/y"))
        release.set()
        busy.result(timeout=10)
    origin = fault_server.base_url
    assert value(registry, "resilient_requests_bulkhead_rejected_total", origin=origin, method="GET") == 1
    assert value(registry, "resilient_requests_calls_total", origin=origin, method="GET", outcome="rejected") == 1
    assert value(registry, "resilient_requests_call_duration_seconds_count",
                 origin=origin, method="GET", outcome="success") == 1


def test_counters_agree_with_session_stats(fault_server, make_session, registry):
    """After ok, flaky, down and a short-circuit, the metrics add up to session.stats()."""
    fault_server.route("/ok", ok())
    fault_server.route("/flaky", status(503), ok())
    fault_server.route("/down", status(500))
    session = make_session(attempts=2, threshold=2)
    session.add_listener(PrometheusListener(registry))
    session.get(fault_server.url("/ok"))
    session.post(fault_server.url("/ok"))
    session.get(fault_server.url("/flaky"))
    session.get(fault_server.url("/down"))
    with pytest.raises(rr.CircuitOpenError):
        session.get(fault_server.url("/ok"))
    stats = session.stats()["origins"][fault_server.base_url]

    def total(name, **labels):
        return sum(s.value for metric in registry.collect() for s in metric.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    started = stats["calls"]
    assert total("resilient_requests_call_duration_seconds_count") == started
    assert total("resilient_requests_calls_total") == started + 1  # + the call refused up front
    assert total("resilient_requests_calls_total", outcome="success") == stats["successes"]
    assert total("resilient_requests_calls_total", outcome="failure") == stats["failures"]
    assert total("resilient_requests_calls_total", method="POST") == 1
    assert total("resilient_requests_retries_total") == stats["retries"]
    assert total("resilient_requests_short_circuited_total") == stats["short_circuited"]
    assert total("resilient_requests_bulkhead_rejected_total") == stats["rejected"]


def test_two_listeners_in_one_registry_share_the_metrics(fault_server, make_session, registry):
    """A second listener for the same registry and namespace reuses the metrics: no crash, counts add up."""
    first, second = make_session(), make_session()
    first.add_listener(PrometheusListener(registry))
    second.add_listener(PrometheusListener(registry))
    first.get(fault_server.url("/"))
    second.get(fault_server.url("/"))
    assert value(registry, "resilient_requests_calls_total",
                 origin=fault_server.base_url, method="GET", outcome="success") == 2


def test_another_namespace_gets_its_own_metrics(fault_server, make_session, registry):
    """namespace= prefixes every metric, so two sets live side by side in one registry."""
    session = make_session()
    session.add_listener(PrometheusListener(registry, namespace="payments_client"))
    session.get(fault_server.url("/"))
    labels = {"origin": fault_server.base_url, "method": "GET", "outcome": "success"}
    assert value(registry, "payments_client_calls_total", **labels) == 1
    assert registry.get_sample_value("resilient_requests_calls_total", labels) is None


def test_conflicting_buckets_are_a_clear_error(registry):
    """Asking for other buckets under a namespace already registered raises ValueError naming both."""
    PrometheusListener(registry, buckets=[0.1, 1.0])
    with pytest.raises(ValueError, match="already registered.*buckets"):
        PrometheusListener(registry, buckets=[0.5, 5.0])


def test_a_name_taken_by_another_collector_is_a_clear_error_and_registers_nothing(registry):
    """A foreign metric with one of our names raises ValueError pointing at namespace=, leaving no partial set."""
    Counter("resilient_requests_retries", "someone else's", registry=registry)
    with pytest.raises(ValueError, match="namespace="):
        PrometheusListener(registry)
    assert registry.get_sample_value("resilient_requests_calls_total", {}) is None
    names = {metric.name for metric in registry.collect()}
    assert names == {"resilient_requests_retries"}


def test_missing_prometheus_client_names_the_extra(monkeypatch):
    """Without prometheus_client the import fails with the pip command for the extra."""
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "resilient_requests.contrib.prometheus")
    with pytest.raises(ImportError, match=r"pip install 'resilient_requests\[prometheus\]'"):
        importlib.import_module("resilient_requests.contrib.prometheus")


def test_importing_the_library_imports_no_framework():
    """import resilient_requests (and its contrib package) loads neither Flask, Django nor prometheus_client."""
    code = (
        "import sys, resilient_requests, resilient_requests.contrib, resilient_requests.testing\n"
        "loaded = [m for m in ('flask', 'django', 'prometheus_client') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, timeout=60)


def test_the_compartment_collector_shows_each_dependency(fault_server, make_session):
    """CompartmentCollector exports breaker state and bulkhead per compartment at scrape time."""
    from prometheus_client import CollectorRegistry, generate_latest

    from resilient_requests.contrib.prometheus import CompartmentCollector

    registry = CollectorRegistry()
    CompartmentCollector().register(registry)
    session = make_session(threshold=1, attempts=1, slots=4)
    fault_server.route("/down", status(503))
    session.get(fault_server.url("/down"))
    text = generate_latest(registry).decode()
    origin = f"http://127.0.0.1:{fault_server.port}"
    state = [line for line in text.splitlines()
             if line.startswith("resilient_requests_compartment_breaker_state{") and origin in line]
    assert len(state) == 1 and state[0].endswith(" 1.0")
    assert any(line.startswith("resilient_requests_compartment_bulkhead_capacity{") and origin in line
               and line.endswith(" 4.0") for line in text.splitlines())
