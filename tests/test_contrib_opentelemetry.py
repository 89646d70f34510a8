"""contrib.opentelemetry: real calls through sessions against the fault server, read back from
the real OpenTelemetry SDK's in-memory span exporter and metric reader, with and without the
real opentelemetry-instrumentation-requests."""
from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from requests.adapters import HTTPAdapter

import resilient_requests as rr
from resilient_requests.contrib.opentelemetry import (
    BREAKER_STATES,
    OpenTelemetryListener,
    instrument,
    observe_registry,
    uninstrument,
)
from resilient_requests.testing import Hold, ok, redirect, refused_url, status

from .conftest import wait_until

OURS = "resilient_requests.contrib.opentelemetry"
INSTRUMENTATION = "opentelemetry.instrumentation.requests"


@pytest.fixture
def otel() -> Iterator[SimpleNamespace]:
    """A tracer provider exporting to memory and a meter provider read in memory (never the globals)."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield SimpleNamespace(exporter=exporter, tracer_provider=tracer_provider, reader=reader,
                          meter_provider=meter_provider, tracer=tracer_provider.get_tracer("the app"))
    meter_provider.shutdown()
    tracer_provider.shutdown()


@pytest.fixture
def instrumented_requests(otel: SimpleNamespace) -> Iterator[None]:
    """opentelemetry-instrumentation-requests on, and off again whatever the test did."""
    RequestsInstrumentor().instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        yield
    finally:
        RequestsInstrumentor().uninstrument()
    assert not getattr(requests.Session.send, "opentelemetry_instrumentation_requests_applied", False)


def spans(otel: SimpleNamespace, scope: str) -> List[ReadableSpan]:
    """The finished spans of one instrumentation scope, in start order."""
    found = [s for s in otel.exporter.get_finished_spans() if s.instrumentation_scope.name == scope]
    return sorted(found, key=lambda s: s.start_time)


def events(span: ReadableSpan, name: str) -> List[Dict[str, Any]]:
    return [dict(e.attributes) for e in span.events if e.name == name]


def metric(otel: SimpleNamespace, name: str, **attributes: Any) -> Optional[float]:
    """The value of ``name``'s data point with these attributes (``resilient_requests.`` prefixed),
    or None if there is none."""
    wanted = {f"resilient_requests.{k}": v for k, v in attributes.items()}
    data = otel.reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else []:
        for scope in resource.scope_metrics:
            for found in scope.metrics:
                if found.name != name:
                    continue
                for point in found.data.data_points:
                    if all(point.attributes.get(k) == v for k, v in wanted.items()):
                        return point.value  # type: ignore[no-any-return]
    return None


def traceparent_span_id(seen: Any) -> str:
    header = {k.lower(): v for k, v in seen.headers.items()}["traceparent"]
    return header.split("-")[2]


def test_a_retried_get_is_one_instrumentation_span_with_a_span_per_attempt(
        fault_server, make_session, otel, instrumented_requests):
    """503, 503, 200 under opentelemetry-instrumentation-requests: its span says 200; three attempt
    spans under it carry resend_count absent/1/2, the 503s marked as errors; two retry events;
    the server saw each attempt's own context."""
    fault_server.route("/x", status(503), status(503), ok())
    session = make_session()
    instrument(session, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    assert session.get(fault_server.url("/x?q=1")).status_code == 200

    [call] = spans(otel, INSTRUMENTATION)
    attributes = dict(call.attributes)
    assert call.kind is SpanKind.CLIENT and call.status.status_code is StatusCode.UNSET
    assert attributes.get("http.response.status_code", attributes.get("http.status_code")) == 200
    assert attributes.get("http.request.method", attributes.get("http.method")) == "GET"
    assert attributes.get("url.full", attributes.get("http.url")) == fault_server.url("/x?q=1")

    attempts = spans(otel, OURS)
    assert len(attempts) == 3 == fault_server.hits("/x")
    for span in attempts:
        assert span.kind is SpanKind.CLIENT and span.name == "GET"
        assert span.parent is not None and span.parent.span_id == call.context.span_id
        assert span.context.trace_id == call.context.trace_id
        assert span.attributes["http.request.method"] == "GET"
        assert span.attributes["url.full"] == fault_server.url("/x?q=1")
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == fault_server.port
    assert [s.attributes.get("http.request.resend_count") for s in attempts] == [None, 1, 2]
    assert [s.attributes["http.response.status_code"] for s in attempts] == [503, 503, 200]
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]
    assert [s.attributes.get("error.type") for s in attempts] == ["503", "503", None]

    retries = events(call, "resilient_requests.retry_scheduled")
    assert [r["resilient_requests.attempt"] for r in retries] == [1, 2]
    assert all(r["resilient_requests.dependency"] == fault_server.base_url for r in retries)
    assert all(r["resilient_requests.reason"].startswith("503") and r["resilient_requests.wait"] >= 0
               for r in retries)
    sent = [traceparent_span_id(seen) for seen in fault_server.requests]
    assert sent == [format(s.context.span_id, "016x") for s in attempts]


def test_a_redirect_is_a_resend(fault_server, make_session, otel):
    """A followed redirect is the call's second request: resend_count 1, url.full the target's."""
    fault_server.route("/old", redirect(fault_server.url("/new")))
    session = make_session()
    instrument(session, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    assert session.get(fault_server.url("/old")).status_code == 200
    first, second = spans(otel, OURS)
    assert "http.request.resend_count" not in first.attributes
    assert first.attributes["http.response.status_code"] == 302 and first.status.status_code is StatusCode.UNSET
    assert second.attributes["http.request.resend_count"] == 1
    assert second.attributes["url.full"] == fault_server.url("/new")


def test_transport_failures_are_error_spans_under_the_apps_span(make_session, otel):
    """Without the requests instrumentation, attempts are children of the app's span; a refused
    connection is an error with the exception's qualified name, recorded as an exception event."""
    session = make_session(attempts=2)
    instrument(session, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    with otel.tracer.start_as_current_span("checkout"):
        with pytest.raises(rr.ConnectionError):
            session.get(refused_url("/x"))
    [app] = spans(otel, "the app")
    attempts = spans(otel, OURS)
    assert len(attempts) == 2
    for span in attempts:
        assert span.parent is not None and span.parent.span_id == app.context.span_id
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "requests.exceptions.ConnectionError"
        assert "http.response.status_code" not in span.attributes
        assert [e.name for e in span.events] == ["exception"]
    assert [s.attributes.get("http.request.resend_count") for s in attempts] == [None, 1]
    assert len(events(app, "resilient_requests.retry_scheduled")) == 1


def test_an_open_breaker_is_an_event_and_a_metric_and_no_attempt_span(
        fault_server, make_session, otel, instrumented_requests):
    """The failure that opens the breaker is counted as a transition and an event; the next call
    fails fast: a short_circuited event on the app's span, no attempt span, and the gauges say open."""
    fault_server.route("/x", status(500))
    session = make_session(attempts=1, threshold=1)
    instrument(session, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    session.get(fault_server.url("/x"))
    assert len(spans(otel, OURS)) == 1
    [call] = spans(otel, INSTRUMENTATION)
    [changed] = events(call, "resilient_requests.breaker_state_changed")
    assert (changed["resilient_requests.breaker.from_state"], changed["resilient_requests.breaker.to_state"]) \
        == ("closed", "open")

    with otel.tracer.start_as_current_span("checkout"):
        with pytest.raises(rr.CircuitOpenError):
            session.get(fault_server.url("/x"))
    assert len(spans(otel, OURS)) == 1 and fault_server.hits("/x") == 1
    [app] = spans(otel, "the app")
    [refused] = events(app, "resilient_requests.short_circuited")
    assert refused["resilient_requests.dependency"] == fault_server.base_url
    assert refused["resilient_requests.retry_after"] > 0

    origin = fault_server.base_url
    assert metric(otel, "resilient_requests.short_circuited", dependency=origin) == 1
    assert metric(otel, "resilient_requests.failures", dependency=origin) == 1
    assert metric(otel, "resilient_requests.breaker.state", dependency=origin) == BREAKER_STATES["open"]
    assert metric(otel, "resilient_requests.breaker.transitions", dependency=origin,
                  **{"breaker.from_state": "closed", "breaker.to_state": "open"}) == 1


def test_the_gauges_show_the_bulkhead_in_use_and_a_rejection(fault_server, make_session, otel):
    """While a call holds the only slot: in_use 1 of 1; a second call is rejected, an event on the
    app's span and a count; once it ends, in_use is 0 and the breaker is closed."""
    release = threading.Event()
    fault_server.route("/slow", Hold(release, ok()))
    session = make_session(slots=1, acquire=0.0)
    instrument(session, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    origin = fault_server.base_url
    with ThreadPoolExecutor(max_workers=1) as pool:
        busy = pool.submit(session.get, fault_server.url("/slow"))
        wait_until(lambda: fault_server.hits("/slow") == 1)  # the call holds its slot by then
        assert metric(otel, "resilient_requests.bulkhead.in_use", dependency=origin) == 1
        assert metric(otel, "resilient_requests.bulkhead.capacity", dependency=origin) == 1
        with otel.tracer.start_as_current_span("checkout"):
            with pytest.raises(rr.PoolTimeoutError):
                session.get(fault_server.url("/other"))
        release.set()
        assert busy.result(timeout=10).status_code == 200
    [app] = spans(otel, "the app")
    [rejected] = events(app, "resilient_requests.bulkhead_rejected")
    assert rejected["resilient_requests.dependency"] == origin
    assert rejected["resilient_requests.bulkhead.capacity"] == 1
    assert metric(otel, "resilient_requests.rejected", dependency=origin) == 1
    assert metric(otel, "resilient_requests.bulkhead.in_use", dependency=origin) == 0
    assert metric(otel, "resilient_requests.breaker.state", dependency=origin) == BREAKER_STATES["closed"]
    assert fault_server.hits("/other") == 0


def test_the_counters_agree_with_session_stats(fault_server, make_session, otel):
    """After an ok call, a retried one and a failed one, each counter is what stats() says."""
    fault_server.route("/flaky", status(503), ok())
    fault_server.route("/down", status(500))
    session = make_session(attempts=2)
    instrument(session, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    session.get(fault_server.url("/ok"))
    session.get(fault_server.url("/flaky"))
    session.get(fault_server.url("/down"))
    stats = session.stats()["origins"][fault_server.base_url]
    for name in ("calls", "successes", "failures", "retries", "short_circuited", "rejected"):
        assert metric(otel, f"resilient_requests.{name}", dependency=fault_server.base_url) == stats[name], name
    assert stats["calls"] == 3 and stats["retries"] == 2


def test_a_plain_requests_session_is_traced_as_before(fault_server, make_session, otel, instrumented_requests):
    """With an instrumented ResilientSession in the process, a plain requests.Session gets the
    instrumentation's span and propagation as ever, and no attempt spans."""
    instrument(make_session(), tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    fault_server.route("/x", status(503))
    with requests.Session() as plain:
        assert plain.get(fault_server.url("/x")).status_code == 503
    [call] = spans(otel, INSTRUMENTATION)
    assert spans(otel, OURS) == [] and fault_server.hits("/x") == 1
    attributes = dict(call.attributes)
    assert attributes.get("http.response.status_code", attributes.get("http.status_code")) == 503
    assert call.status.status_code is StatusCode.ERROR
    assert traceparent_span_id(fault_server.requests[0]) == format(call.context.span_id, "016x")


def test_uninstrument_leaves_no_listener_behind(fault_server, make_session, otel, instrumented_requests):
    """instrument() twice adds one listener, shared by sessions given the same providers;
    uninstrument() takes it off: no more attempt spans, the requests instrumentation unaffected."""
    session, other = make_session(), make_session()
    listener = instrument(session, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    assert instrument(session, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider) is listener
    assert instrument(other, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider) is listener
    assert session._pipeline.events.listeners == (listener,)
    uninstrument(session)
    uninstrument(session)  # again: nothing left to do
    assert session._pipeline.events.listeners == ()
    assert other._pipeline.events.listeners == (listener,)
    session.get(fault_server.url("/x"))
    assert spans(otel, OURS) == [] and len(spans(otel, INSTRUMENTATION)) == 1
    other.get(fault_server.url("/x"))
    assert len(spans(otel, OURS)) == 1


def test_suppressed_instrumentation_makes_no_attempt_spans(fault_server, make_session, otel):
    """Inside suppress_instrumentation (an exporter's own calls, say) no span is made; the call works."""
    session = make_session()
    instrument(session, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        assert session.get(fault_server.url("/x")).status_code == 200
    finally:
        otel_context.detach(token)
    assert spans(otel, OURS) == [] and fault_server.hits("/x") == 1
    session.get(fault_server.url("/x"))
    assert len(spans(otel, OURS)) == 1


def test_an_unknown_method_and_credentials_in_the_url(fault_server, make_session, otel):
    """A method outside the known ones is _OTHER (span "HTTP", the original kept); user, password
    and a signature in the URL are redacted from url.full."""
    session = make_session(attempts=1)
    instrument(session, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    session.request("PURGE", fault_server.url("/cache"))
    secret = fault_server.url("/x?sig=abc&a=1").replace("http://", "http://user:pw@")
    assert session.get(secret).status_code == 200
    purge, get = spans(otel, OURS)
    assert purge.name == "HTTP" and purge.attributes["http.request.method"] == "_OTHER"
    assert purge.attributes["http.request.method_original"] == "PURGE"
    assert purge.attributes["http.response.status_code"] == 501 and purge.attributes["error.type"] == "501"
    assert get.attributes["url.full"] == \
        f"http://REDACTED:REDACTED@127.0.0.1:{fault_server.port}/x?sig=REDACTED&a=1"


class Interrupt(BaseException):
    """What a gevent timeout or a signal handler may raise inside an attempt."""


class InterruptingAdapter(HTTPAdapter):
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        raise Interrupt("stop")


def test_an_attempt_interrupted_by_a_base_exception_still_ends_its_span(fault_server, make_session, otel):
    """A BaseException inside the adapter skips attempt_finished; the span ends with the call, as an error."""
    session = make_session()
    session.mount(fault_server.base_url, InterruptingAdapter())
    listener = instrument(session, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    with pytest.raises(Interrupt):
        session.get(fault_server.url("/x"))
    [span] = spans(otel, OURS)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == f"{__name__}.Interrupt"
    assert listener._local.spans == {}


def test_a_private_registry_is_reported_when_observed(fault_server, otel):
    """observe_registry() adds a session's own registry to the metrics of a meter provider."""
    registry = rr.Registry()
    session = rr.ResilientSession(registry=registry)
    try:
        instrument(session, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
        session.get(fault_server.url("/x"))
        assert metric(otel, "resilient_requests.calls", dependency=fault_server.base_url) is None
        observe_registry(registry, otel.meter_provider)
        assert metric(otel, "resilient_requests.calls", dependency=fault_server.base_url) == 1
    finally:
        session.close()


def test_a_listener_added_by_hand_works_too(fault_server, make_session, otel):
    """OpenTelemetryListener is a plain listener: session.add_listener() is all it needs."""
    session = make_session()
    session.add_listener(OpenTelemetryListener(otel.tracer_provider, otel.meter_provider, propagate=False))
    session.get(fault_server.url("/x"))
    [span] = spans(otel, OURS)
    assert span.attributes["http.response.status_code"] == 200
    assert "traceparent" not in {k.lower() for k in fault_server.requests[0].headers}


def test_missing_opentelemetry_names_the_extra(monkeypatch):
    """Without opentelemetry-api the import fails with the pip command for the extra."""
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, OURS)
    with pytest.raises(ImportError, match=r"pip install 'resilient_requests\[opentelemetry\]'"):
        importlib.import_module(OURS)


def test_importing_the_library_imports_no_opentelemetry():
    """import resilient_requests (and its contrib package) loads no opentelemetry module."""
    code = (
        "import sys, resilient_requests, resilient_requests.contrib\n"
        "loaded = [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, timeout=60)


def test_instrument_without_a_session_traces_the_module_api_and_sessions_made_later(fault_server, otel):
    """instrument() alone: resilient_requests.get, a session made afterwards, and one that
    install() gives a third-party `requests.Session()` all make attempt spans; uninstrument()
    stops them all."""
    fault_server.route("/x", status(503), ok(), cycle=True)
    instrument(tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider)
    try:
        assert rr.get(fault_server.url("/x")).status_code == 200          # two attempts
        assert rr.ResilientSession().get(fault_server.url("/x")).status_code == 200
        rr.install()
        try:
            assert requests.Session().get(fault_server.url("/x")).status_code == 200
        finally:
            rr.uninstall()
        assert [s.attributes.get("http.request.resend_count") for s in spans(otel, OURS)] == [None, 1] * 3
    finally:
        uninstrument()
    rr.get(fault_server.url("/x"))
    assert len(spans(otel, OURS)) == 6 and fault_server.hits("/x") == 8


def test_a_process_listener_reaches_every_session_once(fault_server, make_session):
    """resilient_requests.add_listener: sessions made before and after, once each even if also
    added to a session directly; remove_listener takes it off everywhere."""
    fault_server.route("/x", ok())
    seen: List[str] = []

    class Calls(rr.Listener):
        def call_finished(self, event: Any) -> None:
            seen.append(event.outcome)

    listener = Calls()
    before = make_session()
    rr.add_listener(listener)
    try:
        before.add_listener(listener)
        after = make_session()
        for session in (before, after):
            session.get(fault_server.url("/x"))
        rr.get(fault_server.url("/x"))
        assert seen == ["success"] * 3
    finally:
        rr.remove_listener(listener)
    after.get(fault_server.url("/x"))
    assert seen == ["success"] * 3
