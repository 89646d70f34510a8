"""The examples in examples/, each run as a user would: a subprocess that starts its own
fault server on 127.0.0.1, prints what happened and ends by itself."""
from __future__ import annotations

import os
import py_compile
import re
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

from resilient_requests import ClientConfig

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"

# Warnings are errors in the child too; -X dev shows ResourceWarnings (unclosed sockets).
PYTHON = [sys.executable, "-X", "dev", "-W", "error"]


def _env() -> Dict[str, str]:
    """This environment without RESILIENT_REQUESTS_* variables, which the examples would honour."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RESILIENT_REQUESTS_")}


def _run(name: str, timeout: float = 30) -> "subprocess.CompletedProcess[str]":
    done = subprocess.run(
        [*PYTHON, str(EXAMPLES / name)], cwd=REPO, capture_output=True, text=True,
        timeout=timeout, env=_env(), stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # no traceback, no warning, no stray log line
    return done


def _lines(done: "subprocess.CompletedProcess[str]") -> Dict[str, str]:
    """The output's lines by their first words (up to the first ':' or '->')."""
    lines: Dict[str, str] = {}
    for line in done.stdout.splitlines():
        key = re.split(r"[:]| -> ", line, maxsplit=1)[0].strip()
        lines[key] = line
    return lines


def test_script_swap() -> None:
    """The one-line migration: retries hide two 503s, a keyed POST is retried, a dead host is caught."""
    out = _lines(_run("script_swap.py"))
    assert out["report"] == ("report: {'day': '2024-05-01', 'orders': 42} "
                             "(server saw 3 requests: 503, 503, 200)")
    assert out["event"] == "event: 202 (server saw 2 requests: 503, then 202)"
    assert out["ping dead host"] == "ping dead host: unreachable (ConnectionError)"
    assert out["ping live host"] == "ping live host: 200"


def test_script_swap_changes_only_the_import() -> None:
    """The script imports resilient_requests as requests, and never plain requests."""
    source = (EXAMPLES / "script_swap.py").read_text()
    assert "import resilient_requests as requests  # was: import requests" in source
    assert not re.search(r"^\s*import requests\b|^\s*from requests\b", source, re.M)


def test_threadpool_batch() -> None:
    """The batch: every catalog lookup succeeds, the warehouse's fail (some fast), and the
    summary adds up."""
    done = _run("threadpool_batch.py")
    out = done.stdout
    assert "batch: 48 lookups on 16 threads, one shared ResilientSession (bulkhead 8)" in out
    assert "[##############################] 48/48 (12 failed)" in out  # the bar's last line
    succeeded = int(re.search(r"^succeeded:\s+(\d+)$", out, re.M).group(1))  # type: ignore[union-attr]
    failed = int(re.search(r"^failed:\s+(\d+) \(503 x\d+; after retrying\)$", out, re.M).group(1))  # type: ignore[union-attr]
    fast = re.search(r"^failed fast:\s+(\d+) \(CircuitOpenError x\d+; nothing sent\)$", out, re.M)
    assert fast is not None, out
    assert succeeded == 36
    assert failed + int(fast.group(1)) == 12 and int(fast.group(1)) >= 1
    hits = re.search(r"^upstream requests: catalog (\d+), warehouse (\d+) \(from 36 and 12 lookups\)$", out, re.M)
    assert hits is not None, out
    assert int(hits.group(1)) == 36 + 8  # eight SKUs answer 503 once: one retry each
    assert int(hits.group(2)) < 12 * 3  # the open breaker spared the warehouse
    assert "breakers: catalog closed, warehouse open" in out


def test_flask_app() -> None:
    """The Flask app: 200 after a retry, 404, 504 on a hang, 502 on 503s, then 503 from the open breaker."""
    out = _run("flask_app.py").stdout.splitlines()
    assert out[0] == "GET /orders/1 -> 200 {'order': {'id': 1, 'state': 'shipped'}, 'order_id': 1} [upstream requests: 1]"
    assert out[1] == "GET /orders/2 -> 200 {'order': {'id': 2, 'state': 'paid'}, 'order_id': 2} [upstream requests: 2]"
    assert out[2] == "GET /orders/3 -> 404 {'error': 'no such order', 'order_id': 3} [upstream requests: 1]"
    assert out[3] == "GET /orders/4 -> 504 {'error': 'orders service timed out'} [upstream requests: 3]"
    assert out[4] == "GET /orders/5 -> 502 {'error': 'orders service failing', 'upstream_status': 503} [upstream requests: 1]"
    assert re.fullmatch(r"GET /orders/1 -> 503 \{'error': 'upstream unavailable', 'reason': 'circuit_open', "
                        r"'retry_after': \d+\} Retry-After: \d+ \[upstream requests: 0\]", out[5]), out[5]
    assert out[6].startswith("breaker for the orders service: open")


def test_django_app() -> None:
    """The Django project: the same story through its view, middleware and health view."""
    out = _run("django_app.py").stdout.splitlines()
    assert out[0] == "GET /stock/apple/ -> 200 {'sku': 'apple', 'stock': {'count': 12}} [upstream requests: 1]"
    assert out[1] == "GET /stock/pear/ -> 200 {'sku': 'pear', 'stock': {'count': 3}} [upstream requests: 2]"
    assert out[2] == "GET /stock/plum/ -> 404 {'error': 'unknown sku', 'sku': 'plum'} [upstream requests: 1]"
    assert out[3] == "GET /stock/fig/ -> 504 {'error': 'inventory timed out'} [upstream requests: 3]"
    assert out[4] == ("GET /stock/kiwi/ -> 502 {'error': 'inventory failing', 'upstream_status': 503} "
                      "[upstream requests: 1]")
    assert re.fullmatch(r"GET /stock/apple/ -> 503 \{'error': 'upstream unavailable', 'reason': 'circuit_open', "
                        r"'retry_after': \d+\} Retry-After: \d+ \[upstream requests: 0\]", out[5]), out[5]
    assert out[6] == "health: inventory breaker open, calls 5, retries 3, short-circuited 1"


@pytest.mark.parametrize("entry", ["flask_app:create_app()", "django_app:application()"])
def test_wsgi_entry_points_build_an_app(entry: str) -> None:
    """The entry points named for gunicorn build a WSGI callable without any network I/O."""
    module, call = entry.split(":")
    code = f"import {module}; app = {module}.{call}; assert callable(app); print(type(app).__name__)"
    done = subprocess.run([*PYTHON, "-c", code], cwd=EXAMPLES, capture_output=True, text=True,
                          timeout=30, env=_env(), stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_gunicorn_conf_compiles_and_is_consistent(tmp_path: Path) -> None:
    """gunicorn.conf.py compiles; it uses gthread, a bulkhead smaller than the threads, and
    timeouts above the client deadline its raw_env hands the workers."""
    path = EXAMPLES / "gunicorn.conf.py"
    py_compile.compile(str(path), cfile=str(tmp_path / "gunicorn.conf.pyc"), doraise=True)
    conf: Dict[str, Any] = runpy.run_path(str(path))
    assert conf["worker_class"] == "gthread"
    assert conf["threads"] >= 2 and conf["workers"] >= 1
    env = dict(item.split("=", 1) for item in conf["raw_env"])
    config = ClientConfig.from_env(environ=env)  # what a worker's ClientConfig.from_env() reads
    assert config.timeout.total == conf["upstream_deadline"]
    assert 1 <= config.bulkhead.max_concurrency < conf["threads"]
    assert conf["timeout"] > config.timeout.total
    assert conf["graceful_timeout"] >= config.timeout.total
    assert conf["preload_app"] is False


def test_every_example_is_tested() -> None:
    """Each examples/*.py is run (or, for the gunicorn config, compiled) by a test here."""
    tested = {"script_swap.py", "threadpool_batch.py", "flask_app.py", "django_app.py", "gunicorn.conf.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested
