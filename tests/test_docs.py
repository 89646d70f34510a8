"""The documentation: every code block of README.md and docs/**/*.md is run, and the site builds.

Conventions in the Markdown (an HTML comment on the line right before a fenced block; invisible
on a code host and on the site):

* ``<!-- not run: why -->`` — the block is not run (it installs packages, needs your Git server,
  starts a web server, ...). Keep these few, and say why.
* ``<!-- test: NAME -->`` — the block runs with the checks of ``SCENARIOS[NAME]`` below: the
  routes its fault servers answer with, code appended to the block (``after``, run in the same
  process), and assertions on what the servers saw (``check``).
* ``<!-- file: NAME -->`` — the block is written to the file NAME, in the working directory of
  every block run from the same page (a ``client.toml`` that a later block reads).

Every other ``python`` block runs as it is, every ``bash`` block with bash. A block runs in a
subprocess of its own (``-X dev -W error``; a python block must leave stderr empty), in a
temporary directory, with waits between attempts turned off (``set_testing(waits=False)``;
attempts still count), except the blocks run by pytest (``test: pytest``), which must turn them
off themselves (their tests must each take < 0.5 s). The made-up hosts of a block
(``https://api.internal``, ``http://payments:8080``, ...) are each replaced with a started
``FaultServer`` on 127.0.0.1 (what the ``fault_server`` fixture yields), in the block and in its
scenario's code alike; unrouted paths answer ``200 ok``. A ``sitecustomize`` in the child refuses
any connection or name lookup off loopback, so a block that escaped the substitution fails
instead of reaching out. The blocks, and ``mkdocs build --strict``, run a few at a time in a pool
started by the module's first test (``background``); each test waits for its own.
"""
from __future__ import annotations

import configparser
import contextlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest

import resilient_requests as rr
from resilient_requests.testing import FaultServer, Hang, Limit, ok, status

from . import fault_matrix
from .conftest import NEEDS_REDIS, RedisProcess, _free_port

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]

PYTHON = [sys.executable, "-X", "dev", "-W", "error"]
PLUGIN = "resilient_requests.testing.pytest_plugin"
RUN_LANGS = {"python", "bash"}
DATA_LANGS = {"text", "toml", "json", ""}  # not code: shown, or written out with <!-- file: -->

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)^(?P=indent)```[ \t]*$",
                   re.M | re.S)
DIRECTIVE = re.compile(r"^<!--\s*(?P<kind>not run|test|file):\s*(?P<value>.*?)\s*-->$")
# An origin the examples make up: scheme://host[:port]. redis:// URLs are left alone.
ORIGIN = re.compile(r"\bhttps?://[A-Za-z0-9.-]+(?::\d+)?")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence
    lang: str
    code: str
    directive: Optional[Tuple[str, str]]  # (kind, value) from the comment before the fence

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"

    @property
    def scenario(self) -> Optional[str]:
        return self.directive[1] if self.directive and self.directive[0] == "test" else None

    @property
    def runs(self) -> bool:
        return self.lang in RUN_LANGS and (self.directive is None or self.directive[0] == "test")


def blocks(page: Path) -> List[Block]:
    """The fenced blocks of ``page``, each with the directive on the line before it, if any."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        directive = DIRECTIVE.match(before)
        line = text.count("\n", 0, match.start()) + 1
        given = (directive["kind"], directive["value"]) if directive else None
        if page.name == "README.md" and page.parent == REPO and line == 3:
            # The house rule: the README opens with the two commands, nothing between them
            # and the title. Not run here: CI runs the second (checked below), the first
            # installs and runs the demo (tests/test_demo.py runs the demo).
            given = ("not run", "the README's two commands")
        found.append(Block(page, line, match["lang"], textwrap.dedent(match["code"]), given))
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]
RUN = [block for block in ALL_BLOCKS if block.runs]

# ---------------------------------------------------------------- the child processes

#: Loaded by every Python process a block starts (PYTHONPATH): nothing leaves loopback.
SITECUSTOMIZE = '''
import socket

def _loopback(host):
    host = str(host or "")
    return host in ("localhost", "::1", "") or host.startswith("127.")

_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        raise OSError(f"docs test: {address!r} is not on loopback")
    return _connect(self, address)

def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        raise OSError(f"docs test: {address!r} is not on loopback")
    return _connect_ex(self, address)

def getaddrinfo(host, *args, **kwargs):
    if host is not None and not _loopback(host.decode() if isinstance(host, bytes) else host):
        raise socket.gaierror(f"docs test: no name lookups off loopback ({host!r})")
    return _getaddrinfo(host, *args, **kwargs)

socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''

#: Put before a python block that is run as a script.
PRELUDE = '''\
from resilient_requests.testing import set_testing as _set_testing
_set_testing(waits=False)  # attempts still count


def expect_raises(error, call, *args):
    """Call; fail unless it raises ``error``; return the error."""
    try:
        call(*args)
    except error as raised:
        return raised
    raise AssertionError(f"{getattr(call, '__name__', call)}{args} did not raise {error.__name__}")
'''

JSON = {"Content-Type": "application/json"}
HTML_PAGE = "<html><body><h1>502 Bad Gateway</h1></body></html>"
HTML = {"Content-Type": "text/html"}

Servers = Dict[str, FaultServer]


@dataclass
class Scenario:
    """What a ``<!-- test: NAME -->`` block is run with."""

    routes: Optional[Callable[[Servers], None]] = None
    after: str = ""  # appended to the block, in the child; the same made-up hosts apply
    check: Optional[Callable[[Servers, "subprocess.CompletedProcess[str]"], None]] = None
    redis: bool = False  # redis://127.0.0.1:6379/0 is a throwaway redis-server of the test's


def _order_routes(origin: str, prefix: str = "/api") -> Callable[[Servers], None]:
    """Order 1 answers JSON, order 2 a 503 every time, order 3 an HTML error page with 200."""
    def routes(servers: Servers) -> None:
        server = servers[origin]
        server.route(f"{prefix}/orders/1/status", ok('{"state": "paid"}', **JSON))
        server.route(f"{prefix}/orders/2/status", status(503))
        server.route(f"{prefix}/orders/3/status", ok(HTML_PAGE, **HTML))
    return routes


def _hits(origin: str, path: str, want: int, method: Optional[str] = None) -> Callable[[Servers, object], None]:
    def check(servers: Servers, done: object) -> None:
        assert servers[origin].hits(path, method) == want, servers[origin].requests
    return check


def _stdout_has(*texts: str) -> Callable[[Servers, "subprocess.CompletedProcess[str]"], None]:
    def check(servers: Servers, done: "subprocess.CompletedProcess[str]") -> None:
        for text in texts:
            assert text in done.stdout, done.stdout
    return check


def _batch_routes(servers: Servers) -> None:
    api = servers["https://api.example.com"]
    for item in range(1, 101):
        api.route(f"/v2/items/{item}", ok(json.dumps({"id": item}), **JSON))
    api.route("/v2/items/3", status(503))
    api.route("/v2/items/5", ok(HTML_PAGE, **HTML))


def _limit_check(servers: Servers, done: object) -> None:
    """Every item was sent; at most one in fifty met the server's limit (and was sent again)."""
    assert 60 <= servers["https://api.example.com"].hits("/v1/events") <= 61


def _script_routes(servers: Servers) -> None:
    api = servers["https://api.internal"]
    api.route("/users/1", ok('{"id": 1, "name": "Ada"}', **JSON))
    api.route("/users/2", status(503))
    api.route("/users/3", ok(HTML_PAGE, **HTML))
    api.route("/orders", status(503))


def _script_check(servers: Servers, done: object) -> None:
    api = servers["https://api.internal"]
    assert api.hits("/users/2") == 3  # retried, then the 503 was returned
    assert api.hits("/orders", "POST") == 1  # a POST without Idempotency-Key: sent once


_FLASK_CHECKS = '''
client = app.test_client()
answer = client.get("/checkout/1")
assert answer.status_code == 200 and answer.get_json() == {"order_id": 1, "status": {"state": "paid"}}, answer.data
answer = client.get("/checkout/3")  # an HTML error page, with 200
assert answer.status_code == 502 and answer.get_json()["reason"] == "JSONDecodeError", answer.data
answer = client.get("/checkout/2")  # a 503 after the retries
assert answer.status_code == 502 and answer.get_json()["reason"] == "HTTPError", answer.data
client.get("/checkout/2"), client.get("/checkout/2")  # 5 failures in a row: the breaker opens
answer = client.get("/checkout/2")
assert answer.status_code == 503 and answer.headers["Retry-After"], (answer.status_code, answer.data)
'''

_DJANGO_SETUP = '''
import django
from django.conf import settings
settings.configure(DEBUG=False, SECRET_KEY="docs-test-only", ALLOWED_HOSTS=["testserver"],
                   ROOT_URLCONF=__name__, INSTALLED_APPS=[], DATABASES={}, {extra})
django.setup()
from django.test import Client
client = Client()
'''

_DJANGO_QUICKSTART = _DJANGO_SETUP.replace("{extra}", "MIDDLEWARE=[]") + '''
answer = client.get("/checkout/1")
assert answer.status_code == 200 and answer.json() == {"order_id": 1, "status": {"state": "paid"}}, answer.content
answer = client.get("/checkout/3")
assert answer.status_code == 502 and answer.json()["reason"] == "JSONDecodeError", answer.content
answer = client.get("/checkout/2")
assert answer.status_code == 502 and answer.json()["reason"] == "HTTPError", answer.content
client.get("/checkout/2"), client.get("/checkout/2")
answer = client.get("/checkout/2")
assert answer.status_code == 503 and answer.headers["Retry-After"] == "5", answer.content
'''

_DJANGO_GUIDE = _DJANGO_SETUP.replace(
    "{extra}", "RESILIENT_REQUESTS=RESILIENT_REQUESTS, MIDDLEWARE=[m for m in MIDDLEWARE if m is not ...]") + '''
for _ in range(5):  # successes first: fast_microservice's adaptive throttling sheds nothing after them
    answer = client.get("/orders/1/status")
    assert answer.status_code == 200 and answer.json() == {"order_id": 1, "status": {"state": "paid"}}, answer.content
answer = client.get("/orders/3/status")
assert answer.status_code == 502 and answer.json()["reason"] == "JSONDecodeError", answer.content
for _ in range(4):  # two attempts each, both 503: the eighth failure in a row opens the breaker
    answer = client.get("/orders/2/status")
    assert answer.status_code == 502 and answer.json()["reason"] == "HTTPError", answer.content
answer = client.get("/orders/2/status")  # the middleware's answer
assert answer.status_code == 503 and answer.json()["reason"] == "circuit_open", answer.content
health = client.get("/health/http-clients").json()
assert set(health) == {"default", "payments"}, health
assert health["payments"]["origins"]["http://payments:8080"]["breaker_state"] == "open", health
'''

SCENARIOS: Dict[str, Scenario] = {
    # README.md: the quick starts, each against a final 5xx and a body that is not JSON.
    "quickstart-script": Scenario(_script_routes, '''
assert get_user(1) == {"id": 1, "name": "Ada"}
assert expect_raises(requests.HTTPError, get_user, 2).response.status_code == 503
expect_raises(requests.JSONDecodeError, get_user, 3)
expect_raises(requests.RequestException, get_user, 3)  # what old scripts catch
assert expect_raises(requests.HTTPError, place_order, {"sku": 7}).response.status_code == 503
''', _script_check),
    "quickstart-batch": Scenario(_batch_routes, '''
from resilient_requests import CircuitOpenError, HTTPError, JSONDecodeError
assert set(failed) == {3, 5}, failed
assert isinstance(failed[3], HTTPError) and not isinstance(failed[3], CircuitOpenError), failed[3]
assert failed[3].response.status_code == 503
assert isinstance(failed[5], JSONDecodeError), failed[5]
assert results[2] is None and results[4] is None
assert [r["id"] for r in results if r is not None] == [i for i in ids if i not in (3, 5)]
''', _hits("https://api.example.com", "/v2/items/3", 10)),  # batch_processing: 10 attempts
    "quickstart-flask": Scenario(_order_routes("http://payments:8080"), _FLASK_CHECKS,
                                 _hits("http://payments:8080", "/api/orders/2/status", 5)),
    "quickstart-django": Scenario(_order_routes("http://payments:8080"), '''
from django.urls import path
urlpatterns = [path("checkout/<int:order_id>", checkout)]
''' + _DJANGO_QUICKSTART, _hits("http://payments:8080", "/api/orders/2/status", 5)),
    # Blocks that are whole pytest modules (README.md, guides/testing.md): run by pytest.
    "pytest": Scenario(),
    # docs/
    "dependencies": Scenario(after='''
import resilient_requests
for url in ("https://payments.internal/a", "https://reports.internal/b",
            "https://s1.internal/c", "https://s2.internal/d"):
    assert session.get(url).status_code == 200
dependencies = {c["dependency"] for c in resilient_requests.registry().stats()}
assert dependencies == {"https://payments.internal", "https://reports.internal", "search"}, dependencies
'''),
    "flask-guide": Scenario(_order_routes("http://payments:8080"), _FLASK_CHECKS + '''
assert answer.get_json()["reason"] == "circuit_open"  # the extension's 503
assert b"resilient_requests_calls_total" in client.get("/metrics").data
'''),
    "flask-config": Scenario(after='''
assert resilient.session.config.retry.max_attempts == 2
assert resilient.session.config.timeout.total == 15  # fast_microservice
'''),
    "django-guide": Scenario(_order_routes("http://payments:8080"), _DJANGO_GUIDE),
    "multiprocessing": Scenario(
        lambda servers: [servers["https://api.example.com"].route(f"/v2/items/{i}", ok(json.dumps({"id": i}), **JSON))
                         for i in range(1, 9)],
        '''
if __name__ == "__main__":
    assert items == [{"id": i} for i in range(1, 9)], items
''', _hits("https://api.example.com", "/v2/health", 1)),
    "migrate-script": Scenario(
        lambda servers: servers["https://reports.internal"].route(
            "/report", status(503), ok('{"orders": 42}', **JSON)),
        '''
from resilient_requests.testing import refused_url
assert report("2024-05-01") == {"orders": 42}
assert ping(refused_url("/health")) == "unreachable (ConnectionError)"
assert ping("https://reports.internal/health") == 200
'''),
    "fault-server-script": Scenario(check=_stdout_has("gave up after 0.3 s")),
    "ratelimit": Scenario(
        lambda servers: servers["https://api.example.com"].route("/v1/events", Limit(50, 1.0)),
        '''
assert [r.status_code for r in results] == [200] * len(items)
''', _limit_check),
    "web-apps-own": Scenario(after='''
from resilient_requests.contrib.flask import get_session
assert get_session(app).config.bulkhead.max_concurrency == 3
'''),
    "exceptions": Scenario(lambda servers: servers["https://reports.internal"].route("/slow", Hang(limit=5)),
                           check=_hits("https://reports.internal", "/slow", 3)),
    "config-sources": Scenario(after='''
assert ClientConfig.from_file("client.toml").retry.max_attempts == 4
'''),
    "redis": Scenario(
        lambda servers: servers["http://payments:8080"].route("/api/orders/7", status(503)),
        '''
import redis
for _ in range(2):  # 3 attempts each: the fifth failure opens the shared breaker
    assert payments.get("/orders/7").status_code == 503
assert payments.circuit_state("http://payments:8080").value == "open"
keys = redis.Redis.from_url("redis://127.0.0.1:6379/0").keys("shop:breaker:*")
assert keys and keys[0].startswith(b"shop:breaker:http://payments:8080:"), keys
''', _hits("http://payments:8080", "/api/orders/7", 5), redis=True),
    "prometheus": Scenario(check=_stdout_has('resilient_requests_calls_total{', "resilient_requests_compartment_")),
    "observability": Scenario(check=_stdout_has("GET ", " success 1 ", "1 closed")),
    "cli": Scenario(check=lambda servers, done: (
        _hits("http://127.0.0.1:8080", "/api/items", 1, "GET")(servers, done),
        _hits("http://127.0.0.1:8080", "/api/orders", 1, "POST")(servers, done))),
}


def _env(tmp_path: Path) -> Dict[str, str]:
    """This environment, less RESILIENT_REQUESTS_* (which blocks would honour), with the
    loopback guard and the venv's scripts (``resilient-requests``) first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESILIENT_REQUESTS_")}
    guard = tmp_path / "_guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env["PYTHONPATH"] = os.pathsep.join([str(guard), str(REPO)])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _origins(*texts: str) -> List[str]:
    """The made-up origins of the texts, in order of first appearance."""
    seen: List[str] = []
    for text in texts:
        for origin in ORIGIN.findall(text):
            if origin not in seen:
                seen.append(origin)
    return seen


@contextlib.contextmanager
def _servers(origins: List[str]) -> Iterator[Servers]:
    """A started fault server per made-up origin (what the ``fault_server`` fixture yields)."""
    with contextlib.ExitStack() as stack:
        yield {origin: stack.enter_context(FaultServer()) for origin in origins}


def _substitute(text: str, servers: Servers, redis_url: Optional[str]) -> str:
    text = ORIGIN.sub(lambda m: servers[m[0]].base_url if m[0] in servers else m[0], text)
    if redis_url is not None:
        text = text.replace("redis://127.0.0.1:6379/0", redis_url)
    return text


def _write_files(block: Block, cwd: Path) -> None:
    """The page's ``<!-- file: NAME -->`` blocks, written where the block runs."""
    for other in blocks(block.page):
        if other.directive and other.directive[0] == "file":
            (cwd / other.directive[1]).write_text(other.code, encoding="utf-8")


def _run(block: Block, scenario: Scenario, servers: Servers, tmp_path: Path,
         redis_url: Optional[str]) -> "subprocess.CompletedProcess[str]":
    cwd = tmp_path / "run"
    cwd.mkdir()
    _write_files(block, cwd)
    code = _substitute(block.code, servers, redis_url)
    after = _substitute(scenario.after, servers, redis_url)
    env = _env(tmp_path)
    if block.lang == "bash":
        command = ["bash", "-e", "-o", "pipefail", "-c", code]
    elif block.scenario == "pytest":
        (cwd / "test_block.py").write_text(f"# {block.where}\n{code}", encoding="utf-8")
        # Only our plugin (which the package's pytest11 entry point names, see
        # test_the_pytest_plugin_is_registered): this venv's other plugins cost seconds.
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        command = [*PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", PLUGIN,
                   "--durations=0", "--durations-min=0", "test_block.py"]
    else:
        script = f"{PRELUDE}\n# ---- {block.where}\n{code}\n# ---- checks (tests/test_docs.py)\n{after}\n"
        (cwd / "block.py").write_text(script, encoding="utf-8")
        command = [*PYTHON, "block.py"]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=90,
                          stdin=subprocess.DEVNULL)


#: Modules of the test extra not installed on every supported Python (setup.cfg says why).
NOT_EVERYWHERE = ("vcr",)
#: Modules that warn before these Pythons (google-auth at import: "Python 3.9 past its end of
#: life"; requests-cache through the url-normalize that installs on 3.9: idna's deprecated mode).
WARNS_BEFORE = {"google": (3, 10), "requests_cache": (3, 10)}


def play(block: Block, tmp_path: Path) -> None:
    """Run ``block`` against fault servers standing in for its made-up hosts, then its
    scenario's checks; raise on any failure (or skip)."""
    scenario = SCENARIOS[block.scenario] if block.scenario else Scenario()
    for module in NOT_EVERYWHERE:
        if re.search(rf"^\s*(import|from) {module}\b", block.code, re.M) and importlib.util.find_spec(module) is None:
            pytest.skip(f"{block.where} needs {module}, which the test extra leaves out on this Python")
    for module, oldest in WARNS_BEFORE.items():
        if re.search(rf"^\s*(import|from) {module}\b", block.code, re.M) and sys.version_info < oldest:
            pytest.skip(f"{block.where}: {module} warns at import on this Python (blocks run with -W error)")
    with contextlib.ExitStack() as stack:
        redis_url = None
        if scenario.redis:
            if NEEDS_REDIS.args[0]:
                pytest.skip(NEEDS_REDIS.kwargs["reason"])
            redis = RedisProcess(_free_port())
            redis.start()
            stack.callback(redis.stop)
            redis_url = redis.url
        servers = stack.enter_context(_servers(_origins(block.code, scenario.after)))
        if scenario.routes:
            scenario.routes(servers)
        done = _run(block, scenario, servers, tmp_path, redis_url)
        assert done.returncode == 0, f"{block.where}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        if block.lang == "python":  # no traceback, no warning, no stray log line
            assert done.stderr == "", f"{block.where}\n--- stderr\n{done.stderr}"
        if block.scenario == "pytest":
            _check_pytest_run(done)
        if scenario.check:
            scenario.check(servers, done)


def _mkdocs_build(site: Path) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def _has_mkdocs() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None
               for name in ("mkdocs", "material", "mkdocstrings_handlers"))


#: Blocks (and the site build) run this many at a time: most of their time is a child's start.
WORKERS = 4


@pytest.fixture(scope="module")
def background(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, "Future[object]"]]:
    """The selected blocks of this module, and the site build, started at once in a pool; each
    test waits for its own. Longest first: the site, pytest runs, bash, the rest."""
    selected = [item for item in request.session.items if getattr(item, "module", None) is sys.modules[__name__]]
    chosen = [item.callspec.params["block"] for item in selected if item.originalname == "test_block"]
    jobs: Dict[str, "Future[object]"] = {}
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="docs-block")
    try:
        if _has_mkdocs() and any(item.originalname == "test_mkdocs_build_strict" for item in selected):
            site = tmp_path_factory.mktemp("site")
            jobs["mkdocs"] = pool.submit(lambda: (site, _mkdocs_build(site)))
        order = sorted(chosen, key=lambda b: (b.scenario != "pytest", b.lang != "bash"))
        for block in order:
            jobs[block.where] = pool.submit(play, block, tmp_path_factory.mktemp("block"))
        yield jobs
    finally:
        for job in jobs.values():
            job.cancel()
        pool.shutdown(wait=True)


@pytest.mark.parametrize("block", RUN, ids=[f"{b.where}-{b.scenario or b.lang}" for b in RUN])
def test_block(block: Block, background: Dict[str, "Future[object]"]) -> None:
    """The block runs, against fault servers on 127.0.0.1 standing in for its made-up hosts,
    and passes its scenario's checks (run in the pool; see ``play``)."""
    background[block.where].result(timeout=300)


def _check_pytest_run(done: "subprocess.CompletedProcess[str]") -> None:
    """Every test passed, and none waited between attempts: each took well under the first
    backoff wait of the default config (up to 1 s)."""
    assert re.search(r"^\d+ passed in ", done.stdout, re.M), done.stdout
    durations = re.findall(r"^([\d.]+)s call\s+(\S+)$", done.stdout, re.M)
    assert durations, done.stdout
    for seconds, test in durations:
        assert float(seconds) < 0.5, f"{test} took {seconds} s: does it wait between attempts?"


# ---------------------------------------------------------------- the conventions themselves


def test_every_code_block_runs_or_says_why() -> None:
    """Each block is run, written to a file for others, data, or marked with a reason; each
    named scenario exists and is used; nothing hides in an indented fence."""
    used = set()
    for block in ALL_BLOCKS:
        kind, value = block.directive or ("", "")
        if kind == "test":
            assert value in SCENARIOS, f"{block.where}: no scenario {value!r} in tests/test_docs.py"
            assert block.lang in RUN_LANGS, f"{block.where}: a {block.lang} block cannot run"
            used.add(value)
        elif kind == "not run":
            assert value, f"{block.where}: say why the block is not run"
        elif kind == "file":
            assert re.fullmatch(r"[\w.-]+", value), f"{block.where}: {value!r}"
            readers = [b for b in blocks(block.page) if b.runs and value in b.code]
            assert readers, f"{block.where}: no block on the page reads {value}"
        else:
            assert block.lang in RUN_LANGS | DATA_LANGS, \
                f"{block.where}: a {block.lang!r} block: run it (python, bash) or mark it <!-- not run: why -->"
    assert used == set(SCENARIOS), f"scenarios no block uses: {set(SCENARIOS) - used}"
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"^[ \t]+```", text, re.M), f"{page}: an indented fence is not extracted"
        stray = [m.group(0) for m in re.finditer(r"^<!--\s*(?:not run|test|file):.*-->\n(?!```)", text, re.M)]
        assert not stray, f"{page}: a directive not right before a fence: {stray}"


def test_not_run_blocks_are_few() -> None:
    """Blocks not run stay the exception (installs, servers, your Git host)."""
    not_run = [b.where for b in ALL_BLOCKS if b.directive and b.directive[0] == "not run"]
    assert len(not_run) <= 8, not_run
    assert len(RUN) >= 20


# ---------------------------------------------------------------- the README's promises


def test_readme_is_short() -> None:
    """README.md stays a front page: at most 200 lines; the rest is in docs/."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, len(lines)


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second() -> None:
    """The first lines after the title are the two commands, and CI's script runs the second."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ") and lines[1] == "" and lines[2] == "```bash" and lines[5] == "```"
    demo, tests = lines[3], lines[4]
    assert demo.startswith("python3 -m venv .venv && ") and demo.endswith("-m resilient_requests demo")
    assert tests.startswith("python3 -m venv .venv && ") and tests.endswith(".venv/bin/python -m pytest")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    wanted = re.search(r"pip install (?:-q )?-e ('[^']+'|\S+)", tests).group(1)  # type: ignore[union-attr]
    installed = re.findall(r"pip install (?:-q )?-e ('[^']+'|\S+)", ci)
    assert wanted in installed, (f"the README's test command installs {wanted}, .ci/run installs "
                                 f"{' and '.join(installed)}: make the README's second command install the same")
    assert ".venv/bin/python -m pytest" in ci


def _slug(heading: str) -> str:
    """The anchor MkDocs' toc gives a heading (and code hosts give, for these headings)."""
    heading = re.sub(r"[`*]", "", heading).strip().lower()
    return re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", heading))


def test_readme_links_lead_somewhere() -> None:
    """Every relative link of README.md names a file of the repository (and a heading in it)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue
        path, _, anchor = link.partition("#")
        target = REPO / path
        assert target.exists(), link
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(encoding="utf-8"), re.M)
            assert anchor in {_slug(h) for h in headings}, link


def test_install_docs_cover_every_extra() -> None:
    """Each extra of setup.cfg is in the extras table of docs/install.md."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    extras = set(parser["options.extras_require"])
    table = (DOCS / "install.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([\w-]+)` \|", table, re.M))
    assert extras <= documented, extras - documented


def test_exception_tree_in_the_readme_is_the_class_tree() -> None:
    """Each class in the README's tree is a subclass of the one it hangs from, and the
    tree holds every exception class of the package."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    tree = text[text.index("```text\nrequests.RequestException"):]
    tree = tree[len("```text\n"):tree.index("```", 8)]
    parents: Dict[int, type] = {}
    named = set()
    for line in tree.splitlines():
        name = re.search(r"[\w.]+", line.lstrip("│├└─ ")).group(0)  # type: ignore[union-attr]
        depth = (len(line) - len(line.lstrip("│├└─ "))) // 4
        cls = __import__("requests").RequestException if name == "requests.RequestException" else getattr(rr, name)
        if depth:
            assert issubclass(cls, parents[depth - 1]) and cls is not parents[depth - 1], line
        parents[depth] = cls
        named.add(name)
    ours = {name for name in rr.exceptions.__all__
            if isinstance(getattr(rr.exceptions, name), type)
            and getattr(rr.exceptions, name).__module__ == "resilient_requests.exceptions"}
    assert ours <= named, ours - named


# ---------------------------------------------------------------- the pages against the code


def test_presets_table_is_the_presets() -> None:
    """docs/reference/presets.md's table shows what preset() returns."""
    text = (DOCS / "reference" / "presets.md").read_text(encoding="utf-8")

    def num(value: Optional[float]) -> str:
        return "none" if value is None else f"{value:g}"

    for name in ("default", "high_latency", "fast_microservice", "batch_processing", "web"):
        config = rr.preset(name)
        t, r, b, h = config.timeout, config.retry, config.circuit_breaker, config.bulkhead
        row = re.search(rf"^\| {name} \|(.*)\|$", text, re.M)
        assert row is not None, name
        cells = [cell.strip() for cell in row.group(1).split("|")]
        assert cells[0] == f"{num(t.connect)} / {num(t.read)} / {num(t.write)} / {num(t.pool)}", (name, cells)
        assert cells[1] == num(t.total), (name, cells)
        assert cells[2] == f"{r.max_attempts}, {num(r.min_wait)} / {num(r.max_wait)}, {r.multiplier:.1f}", (name, cells)
        assert cells[3] == f"{b.failure_threshold}, {num(b.recovery_timeout)}", (name, cells)
        assert cells[4].split(" ")[0].rstrip(",") == str(h.max_concurrency), (name, cells)
        assert cells[4].endswith(f", {num(h.acquisition_timeout)}"), (name, cells)


def test_configuration_reference_names_every_field() -> None:
    """Every field of every config class is in docs/reference/configuration.md's table."""
    import dataclasses

    text = (DOCS / "reference" / "configuration.md").read_text(encoding="utf-8")
    rows: Dict[str, set] = {}
    current = ""
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")] if line.startswith("| ") else []
        if len(cells) == 4:
            current = cells[0].strip("`") or current
            rows.setdefault(current, set()).update(re.findall(r"`(\w+)`", cells[1]))
    for cls in (rr.ClientConfig, rr.TimeoutConfig, rr.RetryConfig, rr.CircuitBreakerConfig, rr.BulkheadConfig,
                rr.ThrottleConfig, rr.HedgeConfig, rr.RateLimitConfig, rr.LoggingConfig):
        fields = {f.name for f in dataclasses.fields(cls)}
        assert fields <= rows.get(cls.__name__, set()), (cls.__name__, fields - rows.get(cls.__name__, set()))


def test_api_reference_covers_the_public_names() -> None:
    """Every name of resilient_requests.__all__ is rendered by mkdocstrings on a reference page
    (``::: resilient_requests.NAME``, or its defining module's path), or is one of requests'
    own objects (or an alias) named on docs/reference/api.md."""
    import inspect

    reference = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "reference").glob("*.md"))
    rendered = set(re.findall(r"^::: ([\w.]+)$", reference, re.M))
    api_page = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    for name in rr.__all__:
        obj = getattr(rr, name)
        module = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", "") or ""
        if not module.startswith("resilient_requests") or name == "exceptions" or \
                (name == "Session" and obj is rr.ResilientSession):
            assert f"`{name}`" in api_page, f"{name} is not named on docs/reference/api.md"
            continue
        canonical = f"{module}.{getattr(obj, '__qualname__', name)}"
        assert f"resilient_requests.{name}" in rendered or canonical in rendered, \
            f"{name}: add '::: resilient_requests.{name}' to a page of docs/reference/"


def test_fault_matrix_page_shows_this_matrix() -> None:
    """docs/concepts/retries.md holds the table generated from tests/fault_matrix.py (the same
    check is in test_fault_matrix.py)."""
    assert fault_matrix.markdown_table() in (DOCS / "concepts" / "retries.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------- the site


def test_mkdocs_build_strict(background: Dict[str, "Future[object]"]) -> None:
    """``mkdocs build --strict`` passes: no broken link, anchor or API reference."""
    if "mkdocs" not in background:
        pytest.skip("needs mkdocs, mkdocs-material and mkdocstrings[python] (the docs extra)")
    site, done = background["mkdocs"].result(timeout=300)  # type: ignore[misc]
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert (site / "BENCHMARKS" / "index.html").exists()  # served from the repository by docs/hooks.py
    assert "ResilientSession" in (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    assert "get_user" in (site / "quickstart" / "index.html").read_text(encoding="utf-8")  # README's quick start


def test_the_pytest_plugin_is_registered() -> None:
    """The installed package names its pytest plugin (what "once installed, pytest gets the
    fixtures" rests on; the pytest runs above load it by name)."""
    from importlib.metadata import entry_points

    found = entry_points()
    group = found.select(group="pytest11") if hasattr(found, "select") else found.get("pytest11", [])
    assert {(e.name, e.value) for e in group} >= {("resilient_requests", PLUGIN)}
