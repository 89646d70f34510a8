"""What ``import resilient_requests`` loads: nothing optional until it is used.

Each test runs a fresh interpreter (this one has imported everything long ago)
and asserts on its ``sys.modules``: behaviour, not timing. Each "not imported"
has a counterpart showing the module does get imported once its feature is
used, so the checks cannot pass by looking for the wrong name.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import resilient_requests as rr
from resilient_requests.testing import ok, status

from .conftest import NEEDS_REDIS

#: Modules (and their submodules) a plain ``ResilientSession().get(url)`` does not need.
OPTIONAL = (
    "redis",  # shared state and shared rate limits only
    "opentelemetry",  # which redis-py imports when it is installed
    "pybreaker",  # the breaker runs its own copy of pybreaker's module, without redis
    "tornado",
    "concurrent.futures.thread",  # hedging's worker threads
    "backoff",  # the retry loop, built at a call's first retry
    "asyncio",  # which backoff imports
    "argparse",
    "logging.handlers",
    "resilient_requests.__main__",
    "resilient_requests.cli",
    "resilient_requests.demo",
    "resilient_requests.contrib",
    "resilient_requests.testing",
    "resilient_requests.shared_state",
    "resilient_requests.shared_limit",
    "flask",
    "django",
    "prometheus_client",
)

_PRELUDE = """
import json, sys
OPTIONAL = {optional!r}
def loaded():
    return sorted(m for m in OPTIONAL if any(k == m or k.startswith(m + ".") for k in sys.modules))
"""


def run(code: str, **values: Any) -> Any:
    """Run ``code`` in a fresh interpreter; it prints one JSON value, returned here."""
    source = _PRELUDE.format(optional=OPTIONAL) + textwrap.dedent(code).format(**values)
    done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_loads_nothing_optional():
    assert run("""
        import resilient_requests
        print(json.dumps(loaded()))
    """) == []


def test_a_plain_call_loads_nothing_optional(fault_server):
    """A session's GET and the module-level ``get`` need none of the optional parts."""
    fault_server.route("/x", ok())
    got = run("""
        import resilient_requests
        with resilient_requests.ResilientSession() as session:
            first = session.get({url!r}).status_code
        second = resilient_requests.get({url!r}).status_code
        print(json.dumps([first, second, loaded()]))
    """, url=fault_server.url("/x"))
    assert got == [200, 200, []]
    assert fault_server.hits("/x") == 2


def test_the_optional_parts_load_when_used():
    """The counterpart: each feature brings in what the first test found absent."""
    got = run("""
        import resilient_requests as rr
        steps = []
        rr.ResilientSession(rr.ClientConfig(hedge=rr.HedgeConfig(enabled=True, delay=0.05))).close()
        steps.append(loaded())
        import resilient_requests.__main__
        steps.append(loaded())
        print(json.dumps(steps))
    """)
    assert got[0] == ["concurrent.futures.thread"]
    assert {"argparse", "resilient_requests.__main__", "resilient_requests.cli"} <= set(got[1])


def test_every_public_name_resolves():
    """``__all__`` and ``dir()`` as before; each name by attribute, by ``from ... import``, and by ``*``."""
    got = run("""
        import resilient_requests as rr
        names = list(rr.__all__)
        missing = [n for n in names if getattr(rr, n, None) is None]
        for n in names:
            exec(f"from resilient_requests import {{n}}", {{}})
        star = {{}}
        exec("from resilient_requests import *", star)
        print(json.dumps([names, missing, sorted(set(names) - set(dir(rr))), sorted(set(names) - set(star))]))
    """)
    names, missing, not_in_dir, not_starred = got
    assert names == list(rr.__all__) and len(names) == len(set(names))
    assert (missing, not_in_dir, not_starred) == ([], [], [])


@pytest.mark.skipif(importlib.util.find_spec("redis") is None, reason="needs the redis package")
@NEEDS_REDIS
def test_pybreakers_own_redis_storage_still_works(redis_server):
    """A program that imports pybreaker after us gets the whole module: its
    CircuitRedisStorage opens a breaker in a real Redis."""
    got = run("""
        import resilient_requests
        before = loaded()
        import pybreaker, redis
        client = redis.Redis.from_url({url!r})
        storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace="import-test")
        breaker = pybreaker.CircuitBreaker(fail_max=1, state_storage=storage)
        try:
            breaker.call(lambda: 1 / 0)
        except (ZeroDivisionError, pybreaker.CircuitBreakerError):
            pass
        # What Redis holds, read by another storage on the same namespace.
        stored = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace="import-test").state
        ours = resilient_requests.breaker.pybreaker
        print(json.dumps([before, pybreaker.HAS_REDIS_SUPPORT, stored, ours is pybreaker]))
    """, url=redis_server.url)
    assert got == [[], True, "open", False]


@NEEDS_REDIS
def test_shared_state_loads_redis_when_configured(fault_server, redis_server):
    """A session naming a Redis storage imports redis-py then, and its breaker is shared."""
    fault_server.route("/x", status(503))
    got = run("""
        import resilient_requests as rr
        before = loaded()
        breaker = rr.CircuitBreakerConfig(failure_threshold=1, storage={redis!r}, state_cache_ttl=0.0)
        config = rr.ClientConfig(retry=rr.RetryConfig(max_attempts=1), circuit_breaker=breaker)
        with rr.ResilientSession(config, isolated=True) as a, rr.ResilientSession(config, isolated=True) as b:
            first = a.get({url!r}).status_code
            try:
                b.get({url!r})
                second = "sent"
            except rr.CircuitOpenError:
                second = "open"
        print(json.dumps([before, first, second, "redis" in sys.modules]))
    """, redis=redis_server.url, url=fault_server.url("/x"))
    assert got == [[], 503, "open", True]
    assert fault_server.hits("/x") == 1
