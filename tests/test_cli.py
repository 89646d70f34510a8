"""The command line (``python -m resilient_requests get|post|put|delete|presets|config``),
run as a user would: in a subprocess, against the fault server on 127.0.0.1."""
from __future__ import annotations

import configparser
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
import requests
import urllib3

from resilient_requests import (
    BulkheadConfig,
    CircuitBreakerConfig,
    ClientConfig,
    ResilientSession,
    RetryConfig,
    TimeoutConfig,
    cli,
    exceptions,
    preset,
)
from resilient_requests.__main__ import main
from resilient_requests.bulkhead import Bulkhead
from resilient_requests.errors import to_raise
from resilient_requests.presets import PRESET_NAMES
from resilient_requests.testing import (
    Echo,
    FaultServer,
    Hang,
    Reset,
    Truncate,
    ok,
    redirect,
    refused_url,
    status,
)

REPO = Path(__file__).resolve().parents[1]

# Warnings are errors in the child too; -X dev shows ResourceWarnings (unclosed sockets).
PYTHON = [sys.executable, "-X", "dev", "-W", "error"]

#: Short, unjittered waits between attempts: 0.01 s, then 0.02 s.
FAST_RETRIES = {
    "RESILIENT_REQUESTS_RETRY__MIN_WAIT": "0.01",
    "RESILIENT_REQUESTS_RETRY__MAX_WAIT": "0.05",
    "RESILIENT_REQUESTS_RETRY__JITTER": "false",
}


def _env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESILIENT_REQUESTS_")}
    env.update(FAST_RETRIES)
    env.update(extra)
    return env


def _run(*args: str, env: Optional[Dict[str, str]] = None, stdin: Optional[bytes] = None,
         timeout: float = 30) -> "subprocess.CompletedProcess[str]":
    # cwd=REPO: "-m" imports the package from this checkout, whatever is installed.
    return subprocess.run(
        [*PYTHON, "-m", "resilient_requests", *args], cwd=REPO, capture_output=True,
        env=env if env is not None else _env(), timeout=timeout,
        input=stdin.decode() if stdin is not None else None, text=True,
        **({} if stdin is not None else {"stdin": subprocess.DEVNULL}),
    )


def _no_traceback(done: "subprocess.CompletedProcess[str]") -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert "Warning" not in done.stderr, done.stderr


# -- request commands ---------------------------------------------------------

def test_get_prints_the_body_and_exits_0(fault_server: FaultServer) -> None:
    """A 200's body goes to stdout unchanged, nothing to stderr, exit 0."""
    fault_server.route("/hello", ok("hello, world\n"))
    done = _run("get", fault_server.url("/hello"))
    assert done.returncode == cli.EXIT_OK == 0, done.stderr
    assert done.stdout == "hello, world\n"
    assert done.stderr == ""


def test_404_exits_with_the_http_client_error_code(fault_server: FaultServer) -> None:
    """A 404 prints its body, names the status on stderr and exits EXIT_HTTP_CLIENT."""
    fault_server.route("/missing", status(404, body=b"no such thing"))
    done = _run("get", fault_server.url("/missing"))
    assert done.returncode == cli.EXIT_HTTP_CLIENT == 3
    assert done.stdout == "no such thing"
    assert "404 Not Found" in done.stderr
    _no_traceback(done)
    assert fault_server.hits("/missing") == 1  # a 4xx is not retried


def test_503_is_retried_then_exits_with_the_http_server_error_code(fault_server: FaultServer) -> None:
    """A GET that keeps getting 503 is tried --retries + 1 times, then exits EXIT_HTTP_SERVER."""
    fault_server.route("/down", status(503))
    done = _run("get", "--retries", "2", fault_server.url("/down"))
    assert done.returncode == cli.EXIT_HTTP_SERVER == 4
    assert fault_server.hits("/down") == 3
    assert "503 Service Unavailable" in done.stderr
    _no_traceback(done)


def test_503_then_200_succeeds_after_retries(fault_server: FaultServer) -> None:
    """Two 503s then a 200: the body of the 200, exit 0, three requests upstream."""
    fault_server.route("/flaky", status(503), status(503), ok("finally"))
    done = _run("get", fault_server.url("/flaky"))
    assert (done.returncode, done.stdout) == (0, "finally"), done.stderr
    assert fault_server.hits("/flaky") == 3


def test_hang_with_a_small_timeout_exits_with_the_timeout_code(fault_server: FaultServer) -> None:
    """A reply that never comes, with --timeout 0.2: EXIT_TIMEOUT within about a second."""
    fault_server.route("/hang", Hang(limit=10))
    started = time.monotonic()
    done = _run("get", "--timeout", "0.2", "--retries", "1", fault_server.url("/hang"))
    assert done.returncode == cli.EXIT_TIMEOUT == 5, done.stderr
    assert time.monotonic() - started < 5
    assert fault_server.hits("/hang") == 2
    assert "timeout" in done.stderr
    _no_traceback(done)


def test_deadline_exits_with_the_timeout_code(fault_server: FaultServer) -> None:
    """--deadline bounds the whole call; passing it is a timeout too."""
    fault_server.route("/hang", Hang(limit=10))
    done = _run("get", "--deadline", "0.3", fault_server.url("/hang"))
    assert done.returncode == cli.EXIT_TIMEOUT, done.stderr
    assert "deadline" in done.stderr
    _no_traceback(done)


def test_refused_connection_exits_with_the_connection_error_code() -> None:
    """Nothing listening on the port: EXIT_CONNECTION."""
    done = _run("get", refused_url("/x"))
    assert done.returncode == cli.EXIT_CONNECTION == 6
    assert "connection error" in done.stderr
    _no_traceback(done)


def test_open_breaker_exits_with_the_circuit_open_code(fault_server: FaultServer) -> None:
    """A redirect whose status the config counts as a failure (threshold 1) opens the
    origin's breaker, so the redirected hop fails fast: EXIT_CIRCUIT_OPEN, one request sent."""
    fault_server.route("/moved", redirect("/target"))
    env = _env(RESILIENT_REQUESTS_CIRCUIT_BREAKER__FAILURE_THRESHOLD="1",
               RESILIENT_REQUESTS_CIRCUIT_BREAKER__FAILURE_STATUSES="302")
    done = _run("get", "-v", fault_server.url("/moved"), env=env)
    assert done.returncode == cli.EXIT_CIRCUIT_OPEN == 7, done.stderr
    assert "closed -> open" in done.stderr
    assert "circuit open" in done.stderr
    assert fault_server.hits("/moved") == 1 and fault_server.hits("/target") == 0
    _no_traceback(done)


def test_verbose_shows_attempts_waits_and_the_end_of_the_call(fault_server: FaultServer) -> None:
    """-v writes each failed attempt, each retry's wait and the call's end to stderr only."""
    fault_server.route("/flaky", status(503), status(503), ok("done"))
    done = _run("get", "-v", fault_server.url("/flaky"))
    assert (done.returncode, done.stdout) == (0, "done"), done.stderr
    err = done.stderr
    assert "* attempt 1 failed: 503 Service Unavailable" in err
    assert "* attempt 2 failed: 503 Service Unavailable" in err
    assert "* retry: waiting 0.010s before attempt 2" in err
    assert "* retry: waiting 0.020s before attempt 3" in err
    assert re.search(r"\* finished: status 200 after 3 attempt\(s\) in [0-9.]+s \(success\)", err), err
    assert "< 200 OK" in err and "> GET /flaky" in err


def test_verbose_shows_breaker_state_changes(fault_server: FaultServer) -> None:
    """-v reports the breaker opening when the failures reach the threshold."""
    fault_server.route("/down", status(503))
    env = _env(RESILIENT_REQUESTS_CIRCUIT_BREAKER__FAILURE_THRESHOLD="2")
    done = _run("get", "-v", "--retries", "3", fault_server.url("/down"), env=env)
    assert done.returncode == cli.EXIT_HTTP_SERVER
    assert f"* breaker http://127.0.0.1:{fault_server.port}: closed -> open" in done.stderr
    assert fault_server.hits("/down") == 2  # the open breaker ends the retries


def test_headers_and_data_reach_the_server(fault_server: FaultServer) -> None:
    """-H (repeatable, non-Latin-1 as UTF-8) and -d arrive as sent, with curl's form Content-Type."""
    fault_server.route("/in", Echo())
    done = _run("post", fault_server.url("/in"), "-H", "X-One: 1", "-H", "X-Two: two words",
                "-H", "X-Euro: \u20ac", "-d", "a=1&b=2")
    assert done.returncode == 0, done.stderr
    seen = fault_server.requests[-1]
    assert (seen.method, seen.path, seen.body) == ("POST", "/in", b"a=1&b=2")
    assert seen.headers["X-One"] == "1" and seen.headers["X-Two"] == "two words"
    assert seen.headers["X-Euro"] == "\u20ac".encode().decode("latin-1")  # UTF-8 bytes, as curl sends
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert json.loads(done.stdout)["body"] == "a=1&b=2"


def test_data_from_a_file_and_from_stdin(fault_server: FaultServer, tmp_path: Path) -> None:
    """-d @file sends the file's bytes, -d @- sends stdin."""
    body = tmp_path / "body.txt"
    body.write_bytes(b"from a file\n")
    assert _run("put", fault_server.url("/f"), "-d", f"@{body}").returncode == 0
    assert _run("put", fault_server.url("/s"), "-d", "@-", stdin=b"from stdin").returncode == 0
    sent = {r.path: r.body for r in fault_server.requests}
    assert sent == {"/f": b"from a file\n", "/s": b"from stdin"}


def test_json_body_and_header_override(fault_server: FaultServer) -> None:
    """--json sends the JSON as is with JSON Content-Type and Accept; -H overrides them."""
    done = _run("post", fault_server.url("/j"), "--json", '{"a": [1, 2]}')
    assert done.returncode == 0, done.stderr
    seen = fault_server.requests[-1]
    assert json.loads(seen.body) == {"a": [1, 2]}
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Accept"] == "application/json"
    done = _run("post", fault_server.url("/j"), "--json", "{}", "-H", "Content-Type: application/vnd.x+json")
    assert fault_server.requests[-1].headers["Content-Type"] == "application/vnd.x+json"


def test_post_is_retried_on_503_only_with_an_idempotency_key(fault_server: FaultServer) -> None:
    """A POST is sent once on 503; with -H Idempotency-Key it is retried like a GET."""
    fault_server.route("/pay", status(503))
    assert _run("post", fault_server.url("/pay"), "-d", "x").returncode == cli.EXIT_HTTP_SERVER
    assert fault_server.hits("/pay") == 1
    done = _run("post", fault_server.url("/pay"), "-d", "x", "-H", "Idempotency-Key: k1")
    assert done.returncode == cli.EXIT_HTTP_SERVER
    assert fault_server.hits("/pay") == 1 + 3


def test_delete_sends_delete(fault_server: FaultServer) -> None:
    """The delete command sends a DELETE."""
    assert _run("delete", fault_server.url("/thing/1")).returncode == 0
    assert fault_server.hits("/thing/1", method="DELETE") == 1


def test_include_and_output_file(fault_server: FaultServer, tmp_path: Path) -> None:
    """-i puts the status line and headers before the body; -o writes it all to a file."""
    fault_server.route("/h", ok("body", **{"X-Custom": "yes"}))
    done = _run("get", "-i", fault_server.url("/h"))
    assert done.returncode == 0
    head, _, body = done.stdout.partition("\n\n")
    assert head.splitlines()[0] == "HTTP/1.1 200 OK"
    assert "X-Custom: yes" in head.splitlines()
    assert body == "body"
    target = tmp_path / "out.bin"
    done = _run("get", "-o", str(target), fault_server.url("/h"))
    assert (done.returncode, done.stdout) == (0, "")
    assert target.read_bytes() == b"body"


def test_preset_and_timeout_flags_reach_the_config(fault_server: FaultServer) -> None:
    """--preset picks the base; --timeout and --retries override it (shown by -v)."""
    done = _run("get", "-v", "--preset", "fast_microservice", "--timeout", "1.5", "--retries", "4",
                fault_server.url("/"))
    assert done.returncode == 0, done.stderr
    assert "preset fast_microservice (--preset)" in done.stderr
    assert "read 1.5s" in done.stderr and "max_attempts 5" in done.stderr
    assert "connect 2s" in done.stderr  # fast_microservice's own connect timeout


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> Tuple[int, str, str]:
    """Run the command line in this process: (exit status, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args", [
    ["get"],                                   # no URL
    ["get", "http://x", "--timeout", "0"],     # not > 0
    ["get", "http://x", "--retries", "-1"],
    ["get", "http://x", "-H", "no colon"],
    ["get", "http://x", "--preset", "nope"],
    ["post", "http://x", "-d", "a", "--json", "{}"],
    ["post", "http://x", "--json", "{not json"],
    ["get", "not a url"],
    ["config", "--preset", "default", "--file", "x.json"],
    ["frobnicate"],
])
def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], args: List[str]) -> None:
    """Bad arguments exit 2 (argparse's code) with a message on stderr."""
    code, out, err = _main(capsys, *args)
    assert code == cli.EXIT_USAGE == 2, err
    assert err.strip() and out == ""


def test_bad_usage_exits_2_in_a_subprocess() -> None:
    """Run for real, bad usage exits 2 with a usage line and no traceback."""
    done = _run("get", "--retries", "lots", "http://127.0.0.1:9/")
    assert done.returncode == 2
    assert "usage:" in done.stderr and "--retries" in done.stderr
    _no_traceback(done)


def test_bad_configuration_exits_2_naming_the_variable() -> None:
    """A bad RESILIENT_REQUESTS_* value is a usage error naming the variable."""
    done = _run("get", "http://127.0.0.1:9/", env=_env(RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS="many"))
    assert done.returncode == 2
    assert "RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS" in done.stderr
    _no_traceback(done)


def test_missing_data_file_exits_2(tmp_path: Path) -> None:
    """-d @missing is a usage error."""
    done = _run("post", "http://127.0.0.1:9/", "-d", f"@{tmp_path / 'missing'}")
    assert done.returncode == 2 and "cannot read" in done.stderr


# -- presets and config -------------------------------------------------------

def test_presets_lists_every_preset_with_its_values() -> None:
    """``presets`` has a row per preset whose numbers are the preset's own."""
    done = _run("presets")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line.strip()}
    header = next(line for line in done.stdout.splitlines() if line.startswith("preset ")).split()
    for name in PRESET_NAMES:
        assert name in rows, done.stdout
        config = preset(name)
        values = dict(zip(header[1:], rows[name]))
        assert float(values["read"]) == config.timeout.read
        assert int(values["attempts"]) == config.retry.max_attempts
        assert values["waits"] == f"{config.retry.min_wait:g}-{config.retry.max_wait:g}"
        assert int(values["fails"]) == config.circuit_breaker.failure_threshold
        assert int(values["slots"]) == config.bulkhead.max_concurrency


def test_presets_fits_100_columns() -> None:
    """Every line of ``presets`` fits a 100-column terminal (it was 126 wide)."""
    done = _run("presets")
    assert done.returncode == 0, done.stderr
    widest = max(done.stdout.splitlines(), key=len)
    assert len(widest) <= 100, widest


def test_presets_json_matches_the_presets(capsys: pytest.CaptureFixture[str]) -> None:
    """``presets --json`` holds each preset's full config."""
    code, out, _ = _main(capsys, "presets", "--json")
    data = json.loads(out)
    assert code == 0
    assert list(data) == list(PRESET_NAMES)
    for name in PRESET_NAMES:
        assert data[name] == cli.config_as_dict(preset(name))


def test_config_shows_environment_overrides() -> None:
    """``config`` with RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS=4 shows 4, as text and as JSON."""
    env = _env(RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS="4")
    done = _run("config", env=env)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^retry\.max_attempts\s+4$", done.stdout, re.M), done.stdout
    assert "RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS" in done.stdout.splitlines()[0]
    data = json.loads(_run("config", "--json", env=env).stdout)
    assert data["config"]["retry"]["max_attempts"] == 4


def test_config_preset_and_overrides(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``config --preset X --retries N`` shows X's values with max_attempts N + 1."""
    monkeypatch.setenv("RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS", "4")
    code, out, _ = _main(capsys, "config", "--json", "--preset", "batch_processing", "--retries", "0")
    data = json.loads(out)
    assert code == 0
    assert data["config"]["retry"]["max_attempts"] == 1
    assert data["config"]["timeout"]["read"] == preset("batch_processing").timeout.read


def test_config_from_a_file(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                            tmp_path: Path) -> None:
    """``config --file PATH`` reads the file (and not the environment); a bad key exits 2."""
    path = tmp_path / "client.json"
    path.write_text(json.dumps({"preset": "high_latency", "retry": {"max_attempts": 7}}))
    monkeypatch.setenv("RESILIENT_REQUESTS_RETRY__MAX_ATTEMPTS", "4")
    code, out, _ = _main(capsys, "config", "--json", "--file", str(path))
    data = json.loads(out)
    assert code == 0 and data["source"] == f"file {path}"
    assert data["config"]["retry"]["max_attempts"] == 7
    assert data["config"]["timeout"]["read"] == preset("high_latency").timeout.read
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"retry": {"max_tries": 1}}))
    code, _, err = _main(capsys, "config", "--file", str(bad))
    assert code == 2 and "max_tries" in err


def test_config_output_hides_passwords_and_objects() -> None:
    """Printed config never shows a URL's password, and shows a non-JSON value by its class."""
    config = ClientConfig(base_url="http://user:s3cret@api.example/v1")
    config.user_agent = object()  # type: ignore[assignment]  # stands for e.g. a storage client
    data = cli.config_as_dict(config)
    assert data["base_url"] == "http://user:***@api.example/v1"
    assert data["user_agent"] == "<builtins.object object>"
    assert "s3cret" not in "\n".join(cli.config_lines(config))
    json.dumps(data)


def test_help_lists_commands_and_exit_codes() -> None:
    """``--help`` lists every command and the exit-status table."""
    done = _run("--help")
    assert done.returncode == 0
    for command in ("get", "post", "put", "delete", "presets", "config", "demo"):
        assert re.search(rf"^\s+{command}\s", done.stdout, re.M), command
    for code, _ in cli.EXIT_CODES:
        assert re.search(rf"^\s+{code}\s", done.stdout, re.M), code


# -- what the errors say ----------------------------------------------------------

#: Names a user cannot act on: urllib3's classes (and our pool subclass) in its messages.
PRIVATE = ("_HTTPPool", "_HTTPConnection", "HTTPConnectionPool", "HTTPSConnectionPool", "MaxRetryError",
           "NewConnectionError", "NameResolutionError", "ReadTimeoutError", "ProtocolError", "urllib3",
           "Max retries exceeded", "IncompleteRead(")


def _error_line(done: "subprocess.CompletedProcess[str]") -> str:
    """The one line the command printed about the failure (not the -v lines)."""
    lines = [line for line in done.stderr.splitlines() if not line.startswith(("*", "<", ">"))]
    assert len(lines) == 1, done.stderr
    _no_traceback(done)
    for name in PRIVATE:
        assert name not in lines[0], lines[0]
    return lines[0]


def test_refused_connection_names_the_port_and_the_attempts_made() -> None:
    """A refused port: the host, the port, what the system said, and that the library
    tried 3 times (the default max_attempts), not urllib3's pool and exception names."""
    url = refused_url("/x")
    port = url.split(":")[2].split("/")[0]
    done = _run("get", url)
    assert done.returncode == cli.EXIT_CONNECTION
    line = _error_line(done)
    assert re.fullmatch(rf"python -m resilient_requests get: connection error: could not connect to "
                        rf"127\.0\.0\.1 port {port}: Connection refused; 3 attempts in \d+ ms", line), line


def test_read_timeout_names_the_origin_the_timeout_and_the_attempts(fault_server: FaultServer) -> None:
    """A read timeout: which origin, that it was the read timeout, how long it waited, how
    many attempts; with the option that sets it."""
    fault_server.route("/hang", Hang(limit=10))
    done = _run("get", "--timeout", "0.2", "--retries", "1", fault_server.url("/hang"))
    assert done.returncode == cli.EXIT_TIMEOUT
    line = _error_line(done)
    assert f"timeout: http://127.0.0.1:{fault_server.port} sent nothing for 0.2 s (the read timeout; " \
           "--timeout sets it); 2 attempts in " in line, line


@pytest.mark.parametrize(("fault", "args", "expected"), [
    (Reset(), (), r"connection error: http://127\.0\.0\.1:\d+ closed the connection without a complete "
                  r"answer \(Connection reset by peer\); 3 attempts in \d+ ms"),
    (Truncate(b"partial", 1000), (), r"connection error: http://127\.0\.0\.1:\d+ closed the connection "
                                     r"before the whole response arrived \(7 of 1000 bytes arrived\); 3 attempts"),
    (Hang(limit=10), ("--deadline", "0.3"), r"timeout: http://127\.0\.0\.1:\d+ had not answered when the "
                                            r"deadline of 0\.3 s for the whole call passed .*; 1 attempt in"),
    (status(503), (), r"HTTP server error: 503 Service Unavailable for url: \S+; 3 attempts in \d+ ms$"),
    (status(404), (), r"HTTP client error: 404 Not Found for url: \S+; 1 attempt in \d+ ms$"),
    (redirect("/f"), (), r"error: http://127\.0\.0\.1:\d+/f redirected more than 30 times without a final "
                         r"answer \(a redirect loop\?\); 31 requests in"),
])
def test_each_failure_is_told_in_the_users_terms(fault_server: FaultServer, fault: Any, args: Tuple[str, ...],
                                                 expected: str) -> None:
    """Each kind of failure says what happened to which origin and how many attempts were made."""
    fault_server.route("/f", fault, cycle=True)
    done = _run("get", *args, fault_server.url("/f"))
    assert done.returncode != 0
    assert re.search(expected, _error_line(done)), done.stderr


def test_tls_to_a_plain_http_port_is_told_as_a_tls_failure(fault_server: FaultServer) -> None:
    """https:// to a plain HTTP server: the TLS connection failed, with what TLS said."""
    done = _run("get", "--retries", "0", f"https://127.0.0.1:{fault_server.port}/")
    assert done.returncode == cli.EXIT_CONNECTION
    line = _error_line(done)
    assert f"connection error: the TLS connection to https://127.0.0.1:{fault_server.port} failed (" in line
    assert "; 1 attempt in" in line


def test_a_post_not_retried_says_why(fault_server: FaultServer) -> None:
    """A POST that got a 503 is sent once; the message says so and how to allow retries."""
    fault_server.route("/pay", status(503))
    done = _run("post", fault_server.url("/pay"), "-d", "x")
    assert done.returncode == cli.EXIT_HTTP_SERVER
    line = _error_line(done)
    assert "; 1 attempt in" in line and "-H 'Idempotency-Key: <unique key>' allows it" in line


@pytest.mark.parametrize(("url", "hint"), [
    ("localhost:8080/x", "'localhost:8080/x' has no scheme; did you mean http://localhost:8080/x?"),
    ("example.com/path", "'example.com/path' has no scheme; did you mean http://example.com/path?"),
    ("htp://example.com/", "'htp://example.com/': htp:// is not supported, only http:// and https://; "
                           "did you mean http://example.com/?"),
    ("ftp://example.com/", "'ftp://example.com/': ftp:// is not supported, only http:// and https://"),
])
def test_a_url_without_a_usable_scheme_gets_a_hint(capsys: pytest.CaptureFixture[str], url: str, hint: str) -> None:
    """No scheme (requests: "No connection adapters were found") or a misspelt one: a usage
    error that suggests the URL meant; nothing is sent."""
    code, out, err = _main(capsys, "get", url)
    assert code == cli.EXIT_USAGE, err
    assert err.strip().endswith(f"usage error: {hint}"), err
    assert "No connection adapters" not in err and out == ""


def test_every_kind_of_failure_has_words() -> None:
    """Each kind of failure errors.RULES can name has its sentence in cli.FAILURES, and
    each sentence fills in from the fields describe_failure gives."""
    from resilient_requests.errors import RULES

    names = {verdict.name for _, verdict in RULES}
    assert names <= set(cli.FAILURES), names - set(cli.FAILURES)
    for text in cli.FAILURES.values():
        text.format(origin="o", host="h", port=1, detail="d", connect="1 s", read="1 s", write="1 s")


def test_version_prints_the_library_version() -> None:
    """``--version`` prints the version (and requests', urllib3's, Python's) and exits 0."""
    from resilient_requests import __version__

    done = _run("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"python -m resilient_requests {__version__} (requests "), done.stdout


def test_a_missing_redis_package_is_a_configuration_error() -> None:
    """RESILIENT_REQUESTS_CIRCUIT_BREAKER__STORAGE=redis://... without the redis package:
    exit 2 with what to install, before anything is sent (no traceback)."""
    code = ("import sys; sys.modules['redis'] = None; from resilient_requests.__main__ import main; "
            "sys.exit(main(['get', 'http://127.0.0.1:9/']))")
    done = subprocess.run([*PYTHON, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30,
                          env=_env(RESILIENT_REQUESTS_CIRCUIT_BREAKER__STORAGE="redis://127.0.0.1:6379/0"),
                          stdin=subprocess.DEVNULL)
    assert done.returncode == cli.EXIT_USAGE, done.stderr
    assert "configuration: CircuitBreakerConfig.storage" in done.stderr
    assert "pip install 'resilient_requests[redis]'" in done.stderr
    _no_traceback(done)


# -- exit codes from exception classes, in-process -------------------------------

def test_exit_code_for_a_real_circuit_open_error(fault_server: FaultServer) -> None:
    """A CircuitOpenError raised by a real session maps to EXIT_CIRCUIT_OPEN, not EXIT_CONNECTION."""
    fault_server.route("/down", status(503))
    config = ClientConfig(retry=RetryConfig(max_attempts=1),
                          circuit_breaker=CircuitBreakerConfig(failure_threshold=1, recovery_timeout=30))
    with ResilientSession(config) as session:
        session.get(fault_server.url("/down"))
        with pytest.raises(exceptions.CircuitOpenError) as caught:
            session.get(fault_server.url("/down"))
    assert isinstance(caught.value, exceptions.ConnectionError)
    assert cli.exit_code_for(caught.value) == cli.EXIT_CIRCUIT_OPEN


def test_exit_code_for_a_real_bulkhead_rejection() -> None:
    """A full bulkhead's PoolTimeoutError, and urllib3's EmptyPoolError as the library maps it,
    exit EXIT_BULKHEAD_FULL."""
    bulkhead = Bulkhead(BulkheadConfig(max_concurrency=1, acquisition_timeout=0))
    bulkhead.acquire()
    try:
        with pytest.raises(exceptions.PoolTimeoutError) as caught:
            bulkhead.acquire()
    finally:
        bulkhead.release()
    assert cli.exit_code_for(caught.value) == cli.EXIT_BULKHEAD_FULL
    empty = to_raise(urllib3.exceptions.EmptyPoolError(None, "pool empty"))
    assert cli.exit_code_for(empty) == cli.EXIT_BULKHEAD_FULL


def test_exit_code_checks_the_most_specific_class_first() -> None:
    """Connect timeouts (TimeoutError and ConnectionError) exit as timeouts; deadlines too;
    HTTP errors by class; anything else passed through is EXIT_OTHER."""
    connect_timeout = to_raise(requests.ConnectTimeout("connect timed out"))
    assert isinstance(connect_timeout, exceptions.ConnectionError)
    assert cli.exit_code_for(connect_timeout) == cli.EXIT_TIMEOUT
    assert cli.exit_code_for(exceptions.DeadlineExceededError("late")) == cli.EXIT_TIMEOUT
    assert cli.exit_code_for(to_raise(requests.ConnectionError("reset"))) == cli.EXIT_CONNECTION
    assert cli.exit_code_for(exceptions.NotFoundError("404")) == cli.EXIT_HTTP_CLIENT
    assert cli.exit_code_for(exceptions.AuthenticationError("401")) == cli.EXIT_HTTP_CLIENT
    assert cli.exit_code_for(exceptions.ServerError("503")) == cli.EXIT_HTTP_SERVER
    assert cli.exit_code_for(requests.exceptions.MissingSchema("no scheme")) == cli.EXIT_USAGE
    assert cli.exit_code_for(requests.TooManyRedirects("loop")) == cli.EXIT_OTHER
    assert len({code for code, _ in cli.EXIT_CODES}) == len(cli.EXIT_CODES)


def test_tuned_sets_read_timeout_deadline_and_attempts() -> None:
    """--timeout is the read timeout, --deadline the total, --retries N gives N + 1 attempts."""
    base = ClientConfig(timeout=TimeoutConfig(connect=3, read=9))
    config = cli.tuned(base, timeout=0.5, deadline=2, retries=0)
    assert (config.timeout.connect, config.timeout.read, config.timeout.total) == (3, 0.5, 2)
    assert config.retry.max_attempts == 1
    assert cli.tuned(base) is base


# -- the demo's progress line ---------------------------------------------------

class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _fake_demo(out: "io.TextIOBase") -> None:
    print("header", file=out)
    print("running plain requests ...", file=out)
    time.sleep(0.25)
    print("running ResilientSession ...", file=out)
    print("", file=out)
    time.sleep(0.25)
    print("the table", file=out)


def test_demo_progress_draws_one_line_on_a_terminal() -> None:
    """On a TTY, a progress line names the running client, is redrawn in place and
    cleared at the end; the report itself passes through unchanged."""
    terminal, out = _Terminal(), io.StringIO()
    progress = cli.DemoProgress(terminal, phase_seconds=0.5, interval=0.05)
    with progress:
        _fake_demo(progress.wrap(out))
    assert out.getvalue() == "header\nrunning plain requests ...\nrunning ResilientSession ...\n\nthe table\n"
    drawn = terminal.getvalue()
    assert "\rrunning plain requests [" in drawn and "\rrunning ResilientSession [" in drawn
    assert "\n" not in drawn  # one line, redrawn with \r
    assert drawn.endswith("\r\033[K")


def test_demo_progress_is_silent_when_not_a_terminal() -> None:
    """With stderr not a TTY (a pipe, a file, the tests), nothing is drawn."""
    pipe, out = io.StringIO(), io.StringIO()
    progress = cli.DemoProgress(pipe, phase_seconds=0.5, interval=0.05)
    assert not progress.enabled
    with progress:
        _fake_demo(progress.wrap(out))
    assert pipe.getvalue() == ""
    assert out.getvalue().endswith("the table\n")


# -- the console script ---------------------------------------------------------

def test_console_script_entry_point_is_declared(capsys: pytest.CaptureFixture[str]) -> None:
    """setup.cfg declares ``resilient-requests = resilient_requests.__main__:main``, and it is callable."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    scripts = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    entry = dict(line.replace(" ", "").split("=", 1) for line in scripts)
    assert entry["resilient-requests"] == "resilient_requests.__main__:main"
    code, out, _ = _main(capsys, "presets")
    assert code == 0 and "fast_microservice" in out
