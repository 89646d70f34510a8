"""pytest plugin for running requests' own test suite against ResilientSession.

Loaded with ``-p resilient_compat`` by ``run_requests_suite.py`` (which puts
this directory on PYTHONPATH), so everything at import time below happens
before any of requests' test modules is imported.

Environment (set by the runner):
  RESILIENT_COMPAT_MODE     "patched" (default) or "plain" (requests as is)
  RESILIENT_COMPAT_BLOCKLOG file to append blocked off-loopback attempts to
                            (a file, so pytest-xdist workers can report too)
"""
from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path

import pytest
import requests
import requests.sessions

HERE = Path(__file__).resolve().parent
MODE = os.environ.get("RESILIENT_COMPAT_MODE", "patched")
if MODE not in ("patched", "plain"):
    raise RuntimeError(f"RESILIENT_COMPAT_MODE must be 'patched' or 'plain', got {MODE!r}")

# --- 1. the swap ------------------------------------------------------------
# requests.get() and friends build ``sessions.Session()`` (a global lookup in
# requests.sessions), so patching the module attribute covers them too. Each
# such call gets a fresh ResilientSession; breakers live per dependency in the
# process, so each test starts with none, as we tell users to do in their own
# suites (the resilient_reset fixture).
if MODE == "patched":
    import resilient_requests

    requests.Session = requests.sessions.Session = resilient_requests.ResilientSession

    @pytest.fixture(autouse=True)
    def _fresh_resilience_state():
        resilient_requests.reset()
        yield
        resilient_requests.reset()


# --- 2. the loopback guard ----------------------------------------------------
# A safety net, not a mock: any lookup or connection that would leave this
# machine raises instead. It is not an OSError on purpose, so that urllib3 and
# requests do not turn it into an ordinary ConnectionError that a test expects.
class OffLoopbackBlocked(Exception):
    pass


_LOCAL_NAMES = {"localhost"}  # in /etc/hosts; any other name may go to DNS


def _is_local_host(host) -> bool:
    if host is None or host in ("", b""):
        return True  # passive lookups (bind), no traffic
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%", 1)[0]
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _block(what: str, target) -> None:
    test = os.environ.get("PYTEST_CURRENT_TEST", "<outside a test>")
    line = f"{test}: {what} {target!r}"
    log = os.environ.get("RESILIENT_COMPAT_BLOCKLOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    raise OffLoopbackBlocked(f"blocked off-loopback {what} {target!r} (in {test})")


def _guard_address(what, address) -> None:
    # AF_UNIX addresses are paths (str/bytes); AF_INET/AF_INET6 are tuples.
    if isinstance(address, tuple) and not _is_local_host(address[0]):
        _block(what, address)


def _wrap_method(name):
    real = getattr(socket.socket, name)

    def guarded(self, *args):
        _guard_address(f"socket.{name}", args[-1] if name == "sendto" else args[0])
        return real(self, *args)

    guarded.__name__ = name
    setattr(socket.socket, name, guarded)


def _wrap_lookup(name):
    real = getattr(socket, name)

    def guarded(host, *args, **kwargs):
        target = host[0] if name == "getnameinfo" else host
        if not _is_local_host(target):
            _block(f"socket.{name}", target)
        return real(host, *args, **kwargs)

    guarded.__name__ = name
    setattr(socket, name, guarded)


for _name in ("connect", "connect_ex", "sendto"):
    _wrap_method(_name)
for _name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
    _wrap_lookup(_name)


# --- 3. deselect / skip / xfail from the lists ----------------------------------
def _read_list(name):
    """``test-id  # reason`` lines; an id without ``[params]`` covers them all.
    The reason starts at the first "#" after whitespace: ids may hold a "#"."""
    entries = {}
    for raw in (HERE / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        test_id, *reason = re.split(r"\s+#\s*", line, maxsplit=1)
        entries[test_id] = reason[0] if reason else name
    return entries


def _lookup(entries, nodeid):
    for test_id, reason in entries.items():
        if nodeid == test_id or nodeid.startswith((test_id + "[", test_id + "::")):
            return test_id, reason
    return None, None


OFF_LOOPBACK = _read_list("off_loopback.txt")  # deselected: never run
ENVIRONMENT = _read_list("environment_skips.txt")  # skipped in both modes
KNOWN = _read_list("known_differences.txt") if MODE == "patched" else {}  # strict xfail
_used = set()

# These ask pytest-httpbin's single-threaded server for /delay/10 and give up
# after a fraction of a second; the server stays busy for 10 s per request (30 s
# with ResilientSession's 3 attempts), stalling every later httpbin test behind
# it. Run them last so that wait overlaps nothing (saves 30-80 s).
RUN_LAST = (
    "tests/test_requests.py::TestTimeout::test_stream_timeout",
    "tests/test_requests.py::TestTimeout::test_read_timeout",
)


def pytest_report_header(config):
    where = "ResilientSession" if MODE == "patched" else "plain requests.Session"
    return f"resilient_compat: mode={MODE} (requests.Session is {where}); off-loopback guard on"


def pytest_collection_modifyitems(config, items):
    keep, dropped = [], []
    for item in items:
        test_id, _ = _lookup(OFF_LOOPBACK, item.nodeid)
        if test_id:
            _used.add(test_id)
            dropped.append(item)
            continue
        keep.append(item)
        test_id, reason = _lookup(ENVIRONMENT, item.nodeid)
        if test_id:
            _used.add(test_id)
            item.add_marker(pytest.mark.skip(reason=f"environment: {reason}"))
            continue
        test_id, reason = _lookup(KNOWN, item.nodeid)
        if test_id:
            _used.add(test_id)
            # strict: a difference that went away fails the run, so the list stays true
            item.add_marker(pytest.mark.xfail(reason=f"known difference: {reason}", strict=True))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    keep.sort(key=lambda item: item.nodeid.split("[")[0] in RUN_LAST)  # stable: order kept otherwise
    items[:] = keep


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    # Entries that match nothing are typos or stale; only meaningful on a full
    # collection (the runner passes no -k or explicit test ids by default).
    # Under pytest-xdist the workers collect, not this process: no check then.
    if (config.getoption("keyword") or config.getoption("markexpr") or config.args != ["tests"]
            or getattr(config.option, "numprocesses", None)):
        return
    stale = [t for lst in (OFF_LOOPBACK, ENVIRONMENT, KNOWN) for t in lst if t not in _used]
    if stale:
        terminalreporter.write_sep("=", "list entries that matched no test", yellow=True)
        for test_id in stale:
            terminalreporter.write_line(test_id)
