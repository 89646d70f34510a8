"""ResilientSession stays a requests.Session: URLs, timeouts, adapters, cookies, redirects, pickling."""
from __future__ import annotations

import json
import pickle
import time

import pytest
import requests
from requests.adapters import HTTPAdapter

import resilient_requests as rr
from resilient_requests.testing import Echo, Hang, Reply, ok, redirect, status
from resilient_requests.transport import ResilientAdapter

from .conftest import fast_config


def test_is_a_requests_session_and_the_session_alias():
    """ResilientSession subclasses requests.Session; rr.Session is the same class."""
    assert issubclass(rr.ResilientSession, requests.Session)
    assert rr.Session is rr.ResilientSession
    with rr.Session() as session:
        assert isinstance(session.get_adapter("http://127.0.0.1/"), ResilientAdapter)


@pytest.mark.parametrize(
    ("base", "url", "expected"),
    [
        ("http://h/api", "/users/1", "http://h/api/users/1"),
        ("http://h/api/", "/users/1", "http://h/api/users/1"),
        ("http://h/api", "users/1", "http://h/api/users/1"),
        ("http://h/api", "", "http://h/api"),
        ("http://h/api", "?q=1", "http://h/api?q=1"),
        ("http://h/api", "http://other/x", "http://other/x"),
        ("http://h/api", "HTTPS://other/x", "HTTPS://other/x"),
    ],
)
def test_relative_urls_join_base_url_keeping_its_path(base, url, expected):
    """A relative URL is appended to base_url's path; an absolute one is used as given."""
    with rr.ResilientSession(rr.ClientConfig(base_url=base)) as session:
        assert session.absolute_url(url) == expected


def test_base_url_is_used_for_requests(fault_server, make_session):
    """session.get('/users/1') with base_url .../api reaches /api/users/1."""
    session = make_session(base_url=fault_server.url("/api"))
    assert session.get("/users/1").status_code == 200
    assert fault_server.hits("/api/users/1") == 1


def test_config_timeouts_apply_when_the_caller_gives_none(fault_server, make_session):
    """Without timeout= (or with timeout=None) the config's read timeout ends a hung call."""
    fault_server.route("/hang", Hang(limit=5))
    session = make_session(attempts=1, read=0.1)
    for kwargs in ({}, {"timeout": None}):
        started = time.monotonic()
        with pytest.raises(rr.TimeoutError):
            session.get(fault_server.url("/hang"), **kwargs)
        assert time.monotonic() - started < 4  # generous: the hang lasts 5 s


def test_caller_timeout_wins_for_that_call(fault_server, make_session):
    """A caller's timeout= replaces the config's for that call only."""
    fault_server.route("/slow", ok(delay=0.3))
    session = make_session(attempts=1, read=0.05)
    assert session.get(fault_server.url("/slow"), timeout=5).status_code == 200
    with pytest.raises(rr.TimeoutError):
        session.get(fault_server.url("/slow"))


def test_write_timeout_bounds_sending_the_body(fault_server):
    """A server that never reads the body stalls the upload; timeout.write ends it, not timeout.connect."""
    fault_server.route("/upload", Hang(limit=20, read_body=False))
    config = fast_config(attempts=1)
    config.timeout = rr.TimeoutConfig(connect=30.0, read=30.0, write=0.3, pool=1.0)
    started = time.monotonic()
    with rr.ResilientSession(config) as session, pytest.raises(rr.TimeoutError):
        session.post(fault_server.url("/upload"), data=b"x" * (64 * 1024 * 1024))
    assert time.monotonic() - started < 15  # generous; without the write timeout: 30 s


def test_mounted_adapter_is_returned_as_is_and_still_guarded(fault_server, make_session):
    """get_adapter returns the very adapter mounted, and its sends still go through retries."""

    class CountingAdapter(HTTPAdapter):
        sends = 0

        def send(self, request, **kwargs):
            CountingAdapter.sends += 1
            return super().send(request, **kwargs)

    session = make_session()
    adapter = CountingAdapter()
    session.mount(fault_server.url("/"), adapter)
    assert session.get_adapter(fault_server.url("/x")) is adapter
    fault_server.route("/x", status(503), ok())
    assert session.get(fault_server.url("/x")).status_code == 200
    assert CountingAdapter.sends == 2


def test_cookies_persist_within_a_session(fault_server, make_session):
    """A cookie the server sets is sent back on the session's next call."""
    fault_server.route("/login", Reply(200, b"in", {"Set-Cookie": "sid=42; Path=/"}))
    fault_server.route("/me", Echo())
    session = make_session()
    session.get(fault_server.url("/login"))
    assert session.get(fault_server.url("/me")).json()["headers"]["Cookie"] == "sid=42"


def test_auth_and_session_headers_are_sent(fault_server, make_session):
    """Basic auth and session headers reach the server, plus a configured User-Agent."""
    fault_server.route("/me", Echo())
    session = make_session(user_agent="legacy-batch/1.0")
    session.headers["X-Team"] = "core"
    headers = session.get(fault_server.url("/me"), auth=("alice", "pw")).json()["headers"]
    assert headers["Authorization"].startswith("Basic ")
    assert headers["X-Team"] == "core" and headers["User-Agent"] == "legacy-batch/1.0"


def test_redirects_are_followed_and_follow_redirects_false_is_honoured(fault_server, make_session):
    """Redirects are followed by default; with follow_redirects=False the 302 is returned unless asked."""
    fault_server.route("/old", redirect("/new"))
    fault_server.route("/new", ok("new"))
    followed = make_session().get(fault_server.url("/old"))
    assert followed.text == "new" and [r.status_code for r in followed.history] == [302]
    session = make_session(follow_redirects=False)
    assert session.get(fault_server.url("/old")).status_code == 302
    assert session.request("GET", fault_server.url("/old")).status_code == 302
    assert session.get(fault_server.url("/old"), allow_redirects=True).text == "new"


def test_redirect_hops_each_get_retries_and_share_one_slot(fault_server, make_session):
    """A redirect target answering 503 once is retried; the whole chain runs in one bulkhead slot."""
    fault_server.route("/old", redirect("/new"))
    fault_server.route("/new", status(503), ok("new"))
    session = make_session(slots=1, acquire=0.0)
    assert session.get(fault_server.url("/old")).text == "new"
    assert (fault_server.hits("/old"), fault_server.hits("/new")) == (1, 2)


def test_stream_true_iterates_the_body(fault_server, make_session):
    """stream=True hands back an unread body that iter_content reads."""
    fault_server.route("/big", ok(b"a" * 100_000))
    with make_session().get(fault_server.url("/big"), stream=True) as response:
        assert response.raw.tell() == 0
        assert sum(len(chunk) for chunk in response.iter_content(8192)) == 100_000


def test_pickled_session_keeps_config_and_works(fault_server):
    """A session survives pickling with its config, adapters and cookies; breakers start fresh."""
    config = fast_config(base_url=fault_server.url("/api"))
    with rr.ResilientSession(config) as original:
        original.cookies.set("k", "v")
        copy = pickle.loads(pickle.dumps(original))
    with copy:
        assert copy.config == config
        assert isinstance(copy.get_adapter(fault_server.url("/")), ResilientAdapter)
        assert copy.cookies.get("k") == "v"
        assert copy.get("/x").status_code == 200
    assert fault_server.hits("/api/x") == 1


def test_close_releases_the_pools(fault_server):
    """Leaving the context manager closes every pooled connection."""
    with rr.ResilientSession(fast_config()) as session:
        session.get(fault_server.url("/"))
        adapter = session.get_adapter(fault_server.url("/"))
        assert len(adapter.poolmanager.pools) == 1
    assert len(adapter.poolmanager.pools) == 0


def test_create_resilient_client_yields_and_closes(fault_server):
    """create_resilient_client yields a working session and closes it on exit."""
    with rr.create_resilient_client(fast_config()) as session:
        assert isinstance(session, rr.ResilientSession)
        assert session.get(fault_server.url("/")).ok
        adapter = session.get_adapter(fault_server.url("/"))
    assert len(adapter.poolmanager.pools) == 0


def test_verify_ssl_false_turns_verification_off():
    """verify_ssl=False sets requests' own verify flag."""
    with rr.ResilientSession(rr.ClientConfig(verify_ssl=False)) as session:
        assert session.verify is False


def test_describe_lists_the_layers_outermost_first():
    """The layer order is bulkhead, retry, circuit breaker, adapter."""
    with rr.ResilientSession() as session:
        assert [layer["layer"] for layer in session.describe()["layers"]] == [
            "bulkhead", "retry", "circuit_breaker", "adapter",
        ]


def test_session_rejects_a_config_of_the_wrong_type():
    """Passing something other than a ClientConfig names the problem."""
    with pytest.raises(TypeError, match="ClientConfig"):
        rr.ResilientSession({"retry": 3})  # type: ignore[arg-type]


def test_a_mapping_for_config_points_to_from_dict():
    """config={"retry": 3} says how to build a ClientConfig from a mapping (and the example works)."""
    with pytest.raises(TypeError, match=r"must be a ClientConfig, got \{'retry': 3\}") as caught:
        rr.ResilientSession(config={"retry": 3})  # type: ignore[arg-type]
    assert "ClientConfig.from_dict(" in str(caught.value)
    example = rr.ClientConfig.from_dict({"retry": {"max_attempts": 3}})
    assert example.retry.max_attempts == 3
    with pytest.raises(TypeError, match=r"preset\(name\)"):
        rr.ResilientSession("web")  # type: ignore[arg-type]


def test_base_url_keyword_sets_the_configs_base_url(fault_server):
    """ResilientSession(base_url=...) as in httpx: relative URLs join it; a config passed
    along keeps its other settings and is not changed itself."""
    config = fast_config(attempts=4)
    with rr.ResilientSession(config, base_url=fault_server.url("/api")) as session:
        assert session.get("/users/1").status_code == 200
        assert session.config.base_url == fault_server.url("/api")
        assert session.config.retry.max_attempts == 4
    assert fault_server.hits("/api/users/1") == 1
    assert config.base_url is None
    with rr.ResilientSession(base_url=fault_server.url("/v2")) as session:
        assert session.get("x").status_code == 200
    assert fault_server.hits("/v2/x") == 1


def test_base_url_keyword_and_a_config_with_another_one_conflict():
    """base_url= and a config with a different base_url: ValueError naming both; the same one is fine."""
    config = rr.ClientConfig(base_url="http://a.example/api")
    with pytest.raises(ValueError) as caught:
        rr.ResilientSession(config, base_url="http://b.example/api")
    assert "http://a.example/api" in str(caught.value) and "http://b.example/api" in str(caught.value)
    with rr.ResilientSession(config, base_url="http://a.example/api") as session:
        assert session.config is config
    with pytest.raises(ValueError, match="base_url must start with http"):
        rr.ResilientSession(base_url="a.example/api")


@pytest.mark.parametrize("kwargs", [
    {"timeout": "5"},
    {"timeout": (1, "x")},
    {"timeout": (1, 2, 3)},
    {"timeout": -1},
    {"headers": {"X-Bad": "a\nb"}},
])
def test_an_error_before_anything_was_sent_is_not_a_failure_of_the_origin(fault_server, kwargs):
    """A call whose own arguments are wrong (a timeout of "5", a header with a newline) fails
    before any attempt: it raises as requests would, but counts as ``not_sent``, not as one of
    the origin's calls or failures, and leaves its breaker closed even at threshold 1."""
    url = fault_server.url("/ok")
    events = []

    class Recorder(rr.Listener):
        def call_finished(self, event):
            events.append(event)

    with rr.ResilientSession(fast_config(threshold=1), isolated=True) as session:
        session.add_listener(Recorder())
        with pytest.raises((ValueError, requests.exceptions.InvalidHeader)):
            session.get(url, **kwargs)
        origin = session.stats()["origins"][f"http://127.0.0.1:{fault_server.port}"]
        assert (origin["calls"], origin["failures"], origin["not_sent"]) == (0, 0, 1)
        assert session.circuit_state(url) is rr.CircuitState.CLOSED
        assert [(e.outcome, e.attempts) for e in events] == [("not_sent", 0)]
        assert session.get(url).status_code == 200
        origin = session.stats()["origins"][f"http://127.0.0.1:{fault_server.port}"]
        assert (origin["calls"], origin["successes"], origin["failures"]) == (1, 1, 0)
    assert fault_server.hits("/ok") == 1


def test_json_body_and_params_round_trip(fault_server, make_session):
    """json= and params= behave as in requests."""
    fault_server.route("/echo", Echo())
    seen = make_session().post(fault_server.url("/echo"), json={"a": 1}, params={"q": "x"}).json()
    assert json.loads(seen["body"]) == {"a": 1}
    assert fault_server.requests[-1].query == "q=x"


def test_retry_error_from_a_callers_own_adapter_passes_through(fault_server, make_session):
    """A caller-mounted adapter whose urllib3 Retry gives up raises requests' RetryError unchanged."""
    from urllib3.util.retry import Retry

    fault_server.route("/x", status(503))
    session = make_session(attempts=1)
    retries = Retry(total=1, status_forcelist=[503], backoff_factor=0, respect_retry_after_header=False)
    session.mount(fault_server.url("/"), HTTPAdapter(max_retries=retries))
    with pytest.raises(requests.exceptions.RetryError) as got:
        session.get(fault_server.url("/x"))
    assert type(got.value) is requests.exceptions.RetryError
    assert fault_server.hits("/x") == 2


def test_a_redirect_with_a_broken_body_is_still_followed(fault_server, make_session):
    """A 302 whose body claims gzip but is not is followed, as requests does."""
    fault_server.route("/old", Reply(302, b"not gzip at all", {"Location": "/new", "Content-Encoding": "gzip"}))
    fault_server.route("/new", ok("new"))
    assert make_session().get(fault_server.url("/old")).text == "new"
