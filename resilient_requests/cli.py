"""The command line: ``resilient-requests COMMAND`` or ``python -m resilient_requests COMMAND``.

Commands:

* ``get|post|put|delete URL`` -- one call through a :class:`~resilient_requests.ResilientSession`,
  like a small ``curl``: ``-H 'Name: value'`` (repeatable), ``-d DATA`` or ``-d @file``,
  ``--json JSON``, ``--preset NAME``, ``--config-file PATH``, ``--timeout S`` (read),
  ``--connect-timeout S``, ``--deadline S`` (the whole call), ``--retries N``
  (``max_attempts = N + 1``), ``-v`` (attempts, waits and breaker changes on stderr),
  ``-i`` (response headers), ``-o FILE``. The body goes to stdout.
* ``presets`` -- the presets' settings, read from :mod:`resilient_requests.presets`.
* ``config`` -- the effective configuration (environment, or ``--file``), as text or ``--json``.
* ``demo`` -- see :mod:`resilient_requests.demo`.
* ``--version`` -- this library's version, and requests', urllib3's and Python's.

A failed call prints one line on stderr, ``PROG METHOD: KIND: WHAT; ATTEMPTS``
(:func:`describe_failure`): what happened in the user's terms -- the origin, what
failed or timed out and after how long, what the system said -- and how many
attempts were made in how long (or that nothing was sent); a URL without a usable
scheme gets the URL it probably meant. The kind is
:func:`resilient_requests.errors.classify`'s, the attempts the pipeline's
(:class:`~resilient_requests.events.CallFinished`).

The configuration of a call: ``ClientConfig.from_env()`` (``RESILIENT_REQUESTS_*``;
``--preset`` replaces ``RESILIENT_REQUESTS_PRESET`` as the base the other variables
override), or ``--config-file`` alone (the environment is then not read); then
``--timeout``, ``--connect-timeout``, ``--deadline`` and ``--retries`` on top.

Exit status (:data:`EXIT_CODES`), chosen from the exception class the library
raises, most specific class first (:func:`exit_code_for`):

====  ==============================================================================
code  meaning
====  ==============================================================================
0     success: the final response is 1xx, 2xx or 3xx
1     any other error: a request error the library passes through unchanged
      (e.g. too many redirects), or the output file cannot be written
2     usage error: bad arguments, an invalid URL, an unreadable ``-d @file``, or a
      bad configuration (argparse's own code)
3     HTTP client error: the final response is 4xx (``ClientError``); body still printed
4     HTTP server error: the final response is 5xx after the retries (``ServerError``)
5     timeout: connect, read or send timeout, or the deadline passed (``TimeoutError``,
      ``DeadlineExceededError``); a connect timeout is both, and counts as a timeout
6     connection error: refused, reset, name resolution, TLS (``ConnectionError``)
7     circuit open: the origin's breaker refused the call; nothing was sent
      (``CircuitOpenError``)
8     bulkhead full, or no pooled connection in time; nothing was sent
      (``PoolTimeoutError``)
9     rate limited: no permit of the dependency's rate limit in time, or it is
      paused after a 429; nothing was sent (``RateLimitedError``)
130   interrupted (Ctrl-C)
====  ==============================================================================
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import platform
import re
import ssl
import sys
import textwrap
import threading
import time
from typing import IO, Any, Callable, Dict, List, Mapping, Optional, Tuple, Type, Union

import requests
import urllib3
from requests.models import DEFAULT_REDIRECT_LIMIT

from .config import IDEMPOTENT_METHODS, ClientConfig, RetryConfig
from .errors import PASS_THROUGH, RetryWhen, causes, classify
from .events import (
    AttemptFailed,
    BreakerStateChanged,
    BulkheadRejected,
    CallFinished,
    CallShortCircuited,
    Listener,
    RetryScheduled,
)
from .exceptions import (
    CircuitOpenError,
    ClientError,
    ConnectionError,
    DeadlineExceededError,
    PoolTimeoutError,
    RateLimitedError,
    ServerError,
    ThrottledError,
    TimeoutError,
    error_for_status,
)
from .origins import host_and_port, origin_of
from .presets import PRESET_NAMES, preset

__all__ = [
    "EXIT_OK", "EXIT_OTHER", "EXIT_USAGE", "EXIT_HTTP_CLIENT", "EXIT_HTTP_SERVER", "EXIT_TIMEOUT",
    "EXIT_CONNECTION", "EXIT_CIRCUIT_OPEN", "EXIT_BULKHEAD_FULL", "EXIT_INTERRUPTED", "EXIT_CODES",
    "exit_code_for", "load_config", "tuned", "config_as_dict", "VerboseListener",
    "presets_table", "config_lines", "DemoProgress", "COMMANDS", "CallRecord", "describe_failure",
    "FAILURES", "version",
]

EXIT_OK = 0
EXIT_OTHER = 1
EXIT_USAGE = 2
EXIT_HTTP_CLIENT = 3
EXIT_HTTP_SERVER = 4
EXIT_TIMEOUT = 5
EXIT_CONNECTION = 6
EXIT_CIRCUIT_OPEN = 7
EXIT_BULKHEAD_FULL = 8
EXIT_RATE_LIMITED = 9
EXIT_INTERRUPTED = 130

#: Every exit status and what it means (the table in ``--help``).
EXIT_CODES: Tuple[Tuple[int, str], ...] = (
    (EXIT_OK, "success: final response 1xx/2xx/3xx"),
    (EXIT_OTHER, "other error (a request error passed through unchanged; -o not writable)"),
    (EXIT_USAGE, "usage error: bad arguments, invalid URL, unreadable @file, bad configuration"),
    (EXIT_HTTP_CLIENT, "HTTP 4xx (the body is still printed)"),
    (EXIT_HTTP_SERVER, "HTTP 5xx, after the retries (the body is still printed)"),
    (EXIT_TIMEOUT, "timeout: connect/read/send timeout or the deadline passed"),
    (EXIT_CONNECTION, "connection error: refused, reset, DNS, TLS"),
    (EXIT_CIRCUIT_OPEN, "circuit open: the origin's breaker refused the call, nothing sent"),
    (EXIT_BULKHEAD_FULL, "bulkhead full / no pooled connection in time, nothing sent"),
    (EXIT_RATE_LIMITED, "rate limited: no permit in time or paused after a 429, nothing sent"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
)

#: Exception class -> exit status, most specific first: ``CircuitOpenError`` is a
#: ``ConnectionError``, and a connect timeout is raised as both a ``TimeoutError``
#: and a ``ConnectionError`` (see :mod:`resilient_requests.errors`).
_EXIT_FOR: Tuple[Tuple[Type[BaseException], int], ...] = (
    (RateLimitedError, EXIT_RATE_LIMITED),
    (CircuitOpenError, EXIT_CIRCUIT_OPEN),
    (PoolTimeoutError, EXIT_BULKHEAD_FULL),
    (TimeoutError, EXIT_TIMEOUT),
    (ConnectionError, EXIT_CONNECTION),
    (ClientError, EXIT_HTTP_CLIENT),
    (ServerError, EXIT_HTTP_SERVER),
    # requests' own "this URL or header cannot be sent": the argument is wrong.
    (requests.exceptions.URLRequired, EXIT_USAGE),
    (requests.exceptions.MissingSchema, EXIT_USAGE),
    (requests.exceptions.InvalidSchema, EXIT_USAGE),
    (requests.exceptions.InvalidURL, EXIT_USAGE),
    (requests.exceptions.InvalidHeader, EXIT_USAGE),
)

_KIND = {
    EXIT_CIRCUIT_OPEN: "circuit open", EXIT_BULKHEAD_FULL: "bulkhead full", EXIT_RATE_LIMITED: "rate limited", EXIT_TIMEOUT: "timeout",
    EXIT_CONNECTION: "connection error", EXIT_HTTP_CLIENT: "HTTP client error",
    EXIT_HTTP_SERVER: "HTTP server error", EXIT_USAGE: "usage error", EXIT_OTHER: "error",
}

ENV_PREFIX = "RESILIENT_REQUESTS_"


def exit_code_for(error: BaseException) -> int:
    """The exit status for ``error``: the first class of :data:`_EXIT_FOR` it is
    an instance of, else :data:`EXIT_OTHER`. The library has already classified
    the failure (:mod:`resilient_requests.errors`); this only reads the class."""
    for cls, code in _EXIT_FOR:
        if isinstance(error, cls):
            return code
    return EXIT_OTHER


def _exit_codes_epilog() -> str:
    return "exit status:\n" + "\n".join(f"  {code:>3}  {text}" for code, text in EXIT_CODES)


# -- configuration -----------------------------------------------------------

def load_config(preset_name: Optional[str] = None, file: Optional[str] = None,
                environ: Optional[Mapping[str, str]] = None) -> Tuple[ClientConfig, str]:
    """The base configuration and a description of where it came from: the file
    alone if ``file`` is given, else the environment (``RESILIENT_REQUESTS_*``)
    with ``preset_name``, if given, as its preset. Raises ``ValueError``,
    ``TypeError``, ``OSError`` or ``RuntimeError`` for a bad source."""
    if file is not None:
        if preset_name is not None:
            raise ValueError("--preset and --config-file cannot be combined; put 'preset' in the file")
        return ClientConfig.from_file(file), f"file {file}"
    env: Dict[str, str] = dict(os.environ if environ is None else environ)
    if preset_name is not None:
        env[ENV_PREFIX + "PRESET"] = preset_name
    config = ClientConfig.from_env(ENV_PREFIX, env)
    base = env.get(ENV_PREFIX + "PRESET", "default")
    names = sorted(k for k in env if k.startswith(ENV_PREFIX) and k != ENV_PREFIX + "PRESET")
    where = f"preset {base}" + (" (--preset)" if preset_name is not None else "")
    where += f", environment: {', '.join(names)}" if names else ", no other RESILIENT_REQUESTS_* variables"
    return config, where


def tuned(config: ClientConfig, *, timeout: Optional[float] = None, connect_timeout: Optional[float] = None,
          deadline: Optional[float] = None, retries: Optional[int] = None) -> ClientConfig:
    """``config`` with the command line's overrides: ``timeout`` is the read
    timeout, ``deadline`` the total, ``retries`` the retries after the first
    attempt (``max_attempts = retries + 1``)."""
    timeouts: Dict[str, Any] = {}
    if timeout is not None:
        timeouts["read"] = timeout
    if connect_timeout is not None:
        timeouts["connect"] = connect_timeout
    if deadline is not None:
        timeouts["total"] = deadline
    changes: Dict[str, Any] = {}
    if timeouts:
        changes["timeout"] = dataclasses.replace(config.timeout, **timeouts)
    if retries is not None:
        changes["retry"] = dataclasses.replace(config.retry, max_attempts=retries + 1)
    return config.replace(**changes) if changes else config


_CREDENTIALS = re.compile(r"(//[^/@:]*:)[^/@]*@")


def _plain(value: Any) -> Any:
    """``value`` as JSON-able data, without copying objects it holds (``asdict`` would
    deep-copy, say, a Redis client) and without passwords in URLs."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (frozenset, set)):
        return sorted(value)
    if isinstance(value, str):
        return _CREDENTIALS.sub(r"\1***@", value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return f"<{type(value).__module__}.{type(value).__qualname__} object>"


def config_as_dict(config: ClientConfig) -> Dict[str, Any]:
    """``config`` as plain JSON-able values: status sets as sorted lists, passwords in
    URLs as ``***``, objects (e.g. a storage client) as ``<module.Class object>``."""
    return _plain(config)  # type: ignore[no-any-return]


def config_lines(config: ClientConfig) -> List[str]:
    """``config`` as aligned ``section.field  value`` lines."""
    flat: List[Tuple[str, str]] = []
    for key, value in config_as_dict(config).items():
        if isinstance(value, dict):
            for field, inner in value.items():
                flat.append((f"{key}.{field}", _show(inner)))
        else:
            flat.append((key, _show(value)))
    width = max(len(k) for k, _ in flat) + 2
    return [f"{k:<{width}}{v}" for k, v in flat]


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def _waits(retry: RetryConfig) -> str:
    return f"{_show(retry.min_wait)}-{_show(retry.max_wait)}"


#: The presets table's columns, in groups: (group, [(title, value of a config)]).
#: ``timeout.pool`` is left out: it is checked but not waited on (see ``TimeoutConfig``).
_PRESET_COLUMNS: List[Tuple[str, List[Tuple[str, Callable[[ClientConfig], Any]]]]] = [
    ("timeouts (s)", [
        ("connect", lambda c: c.timeout.connect),
        ("read", lambda c: c.timeout.read),
        ("write", lambda c: c.timeout.write),
        ("total", lambda c: c.timeout.total),
    ]),
    ("retries", [
        ("attempts", lambda c: c.retry.max_attempts),
        ("waits", lambda c: _waits(c.retry)),
        ("mult", lambda c: c.retry.multiplier),
    ]),
    ("breaker", [
        ("fails", lambda c: c.circuit_breaker.failure_threshold),
        ("open", lambda c: c.circuit_breaker.recovery_timeout),
    ]),
    ("bulkhead", [
        ("slots", lambda c: c.bulkhead.max_concurrency),
        ("wait", lambda c: c.bulkhead.acquisition_timeout),
    ]),
]


def presets_table() -> List[str]:
    """One row per preset, every number read from :func:`resilient_requests.preset`;
    fits 100 columns. The first line names the groups, the second the columns."""
    gap = "  "
    titles = ["preset"] + [title for _, group in _PRESET_COLUMNS for title, _ in group]
    rows = [[name] + [_show(get(preset(name))) for _, group in _PRESET_COLUMNS for _, get in group]
            for name in PRESET_NAMES]
    widths = [max(len(r[i]) for r in [titles, *rows]) for i in range(len(titles))]

    def line(cells: List[str]) -> str:
        first = f"{cells[0]:<{widths[0]}}"
        return gap.join([first] + [f"{c:>{w}}" for c, w in zip(cells[1:], widths[1:])]).rstrip()

    groups = " " * widths[0]
    column = 1
    for name, group in _PRESET_COLUMNS:
        span = sum(widths[column:column + len(group)]) + len(gap) * (len(group) - 1)
        groups += gap + f"{name:<{span}}"
        column += len(group)
    lines = [groups.rstrip(), line(titles), line(["-" * w for w in widths])]
    lines += [line(r) for r in rows]
    lines += [
        "",
        "timeouts: connect, read, write (each send of the request), total (the whole call; none: no bound)",
        "retries: attempts counts the first try; the wait before a retry starts at the first number",
        "  of 'waits' and grows x 'mult' each time, up to the second (jittered: a random share of it)",
        "breaker: opens after 'fails' failures in a row, stays open 'open' s before a trial call",
        "bulkhead: 'slots' calls in flight per dependency; a call waits up to 'wait' s for a slot",
        "Times are in seconds. Every setting of every preset: presets --json",
    ]
    return lines


# -- what went wrong, in the user's terms --------------------------------------

class CallRecord(Listener):
    """Keeps the end of the command's one call: the attempts it made and how long it took
    (the pipeline knows them; the exception it raises does not say)."""

    def __init__(self) -> None:
        self.finished: Optional[CallFinished] = None

    def call_finished(self, event: CallFinished) -> None:
        """The call ended."""
        self.finished = event


#: What happened, for each kind of failure :func:`resilient_requests.errors.classify`
#: names: ``{origin}`` (``scheme://host[:port]``), ``{host}``, ``{port}``, the
#: timeouts ``{connect}``/``{read}``/``{write}`` of the origin's config, and
#: ``{detail}``: what the operating system, TLS or the proxy said.
FAILURES: Mapping[str, str] = {
    "pool timeout": "no pooled connection to {origin} was free in time",
    "adapter retries exhausted": "{origin} kept failing and the mounted adapter's own retries gave up ({detail})",
    "certificate error": "the TLS certificate of {origin} could not be verified ({detail})",
    "TLS error": "the TLS connection to {origin} failed ({detail})",
    "proxy unreachable": "could not connect to the proxy on the way to {origin} ({detail})",
    "proxy connect timeout": "the proxy on the way to {origin} did not accept a connection within "
                             "{connect} (the connect timeout)",
    "tunnel refused": "the proxy refused to open a tunnel to {origin} ({detail})",
    "proxy error": "the connection through the proxy to {origin} failed ({detail})",
    "connect timeout": "{origin} did not accept a connection within {connect} "
                       "(the connect timeout; --connect-timeout sets it)",
    "name resolution failed": "could not resolve the host name {host} ({detail})",
    "connection refused": "could not connect to {host} port {port}: {detail}",
    "read timeout": "{origin} sent nothing for {read} (the read timeout; --timeout sets it)",
    "send timeout": "sending the request to {origin} stalled for {write} (the write timeout)",
    "body cut short": "{origin} closed the connection before the whole response arrived ({detail})",
    "connection dropped": "{origin} closed the connection without a complete answer ({detail})",
    "timeout": "{origin} timed out ({detail})",
}

_OWN_MODULES = ("urllib3", "requests", "resilient_requests")


def _detail(error: BaseException, fallback: str) -> str:
    """What the operating system, TLS or http.client said about ``error``: the first
    exception in its chain that is none of urllib3's, requests' or ours."""
    for cause in causes(error):  # a body cut short: urllib3's or http.client's IncompleteRead
        partial, expected = getattr(cause, "partial", None), getattr(cause, "expected", None)
        if isinstance(partial, bytes):
            partial = len(partial)
        if isinstance(partial, int) and isinstance(expected, int):
            return f"{partial} of {partial + expected} bytes arrived"
    for cause in causes(error):
        if type(cause).__module__.split(".")[0] in _OWN_MODULES:
            continue
        verify = getattr(cause, "verify_message", None)
        if verify:
            return str(verify)
        strerror = getattr(cause, "strerror", None)
        if isinstance(cause, OSError) and strerror and not isinstance(cause, ssl.SSLError):
            return str(strerror)
        text = str(cause)
        if text:
            return text
    return fallback


def _origin_parts(url: str) -> Tuple[str, str, int]:
    """``scheme://host[:port]`` (the port only if given), the host and the port of ``url``."""
    scheme, host, given = host_and_port(url)
    port = given or {"http": 80, "https": 443}.get(scheme, 0)
    return f"{scheme}://{host}" + (f":{given}" if given else ""), host, port


def _in_seconds(seconds: Optional[float]) -> str:
    return "no limit" if seconds is None else f"{seconds:g} s"


def _elapsed(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def _suggested_url(url: str) -> Optional[str]:
    """``url`` with the scheme it probably lacks or misspells, else ``None``."""
    if "://" not in url:
        return "http://" + url.lstrip("/")
    scheme, rest = url.split("://", 1)
    close = difflib.get_close_matches(scheme.lower(), ["http", "https"], n=1, cutoff=0.6)
    return f"{close[0]}://{rest}" if close else None


def _bad_url(error: BaseException, url: str) -> Optional[str]:
    """A usage error about the URL, with a hint; ``None`` if ``error`` is not one."""
    if isinstance(error, requests.exceptions.MissingSchema) or (
            isinstance(error, requests.exceptions.InvalidSchema) and "://" not in url):
        hint = _suggested_url(url)
        return f"{url!r} has no scheme; did you mean {hint}?"
    if isinstance(error, requests.exceptions.InvalidSchema):
        scheme = url.split("://", 1)[0]
        hint = _suggested_url(url)
        tail = f"; did you mean {hint}?" if hint else ""
        return f"{url!r}: {scheme}:// is not supported, only http:// and https://{tail}"
    if isinstance(error, requests.exceptions.URLRequired):
        return "no URL given"
    return None


def _tries(finished: Optional[CallFinished], noun: str = "attempt") -> str:
    """How many attempts the call made and for how long; or that nothing was sent."""
    if finished is None or finished.attempts == 0:
        return "nothing was sent"
    n = finished.attempts
    return f"{n} {noun}{'s' if n != 1 else ''} in {_elapsed(finished.elapsed)}"


def _not_retried(error: BaseException, config: ClientConfig, finished: Optional[CallFinished]) -> str:
    """Why a failure that a GET would have retried was not: the method is not idempotent."""
    if finished is None or finished.attempts != 1 or config.retry.max_attempts < 2:
        return ""
    if finished.method in IDEMPOTENT_METHODS:
        return ""
    request = getattr(error, "request", None)
    if request is not None and "Idempotency-Key" in request.headers:
        return ""
    response = getattr(error, "response", None)
    if response is not None and response.status_code in config.retry.retry_on_status:
        retryable = True
    else:
        retryable = classify(error).retry is RetryWhen.IDEMPOTENT
    if not retryable:
        return ""
    return (f" (a {finished.method} is not sent again once it may have reached the server; "
            "-H 'Idempotency-Key: <unique key>' allows it)")


def describe_failure(error: BaseException, url: str, config: ClientConfig,
                     finished: Optional[CallFinished] = None) -> str:
    """What went wrong with the call to ``url``, in the user's terms: the origin, what
    failed or timed out (and after how long), and the attempts made (``finished``,
    from the pipeline's :class:`~resilient_requests.events.CallFinished`). The kind
    comes from :func:`resilient_requests.errors.classify`, as everywhere else; no
    class of urllib3's or of ours is named."""
    bad_url = _bad_url(error, url)
    if bad_url is not None:
        return bad_url
    request = getattr(error, "request", None)
    target = getattr(request, "url", None) or url
    origin, host, port = _origin_parts(target)
    settings = config.policy_for(origin_of(target))[1]  # a dependency's own timeouts and retries
    tries = _tries(finished) + _not_retried(error, settings, finished)
    if isinstance(error, requests.TooManyRedirects):
        return (f"{url} redirected more than {DEFAULT_REDIRECT_LIMIT} times without a final "
                f"answer (a redirect loop?); {_tries(finished, 'request')}")
    if isinstance(error, (ClientError, ServerError)):
        return f"{error}; {tries}"
    if isinstance(error, DeadlineExceededError):
        total = settings.timeout.total
        if total is None or "bulkhead" in str(error):  # deadline= of the caller's; or while waiting for a slot
            return f"{error}; {tries}"
        return (f"{origin} had not answered when the deadline of {_in_seconds(total)} for the whole "
                f"call passed (--deadline sets it); {tries}")
    if isinstance(error, (RateLimitedError, ThrottledError)):
        return f"{error}; {tries}"
    if isinstance(error, CircuitOpenError):
        when = (f"next trial in {error.retry_after:.1f} s" if error.retry_after > 0
                else "its trial calls are in flight")
        return (f"the circuit breaker for {error.origin or origin} is open after recent failures "
                f"({when}); {tries}")
    verdict = classify(error)
    if isinstance(error, PoolTimeoutError) and verdict.name != "pool timeout":
        return f"{error} (calls to {origin}); {tries}"  # the bulkhead's own words
    if verdict is PASS_THROUGH:
        if isinstance(error, requests.exceptions.ContentDecodingError):
            return f"the answer from {origin} could not be decoded (its Content-Encoding is wrong); {tries}"
        text = _POOL_REPR.sub(r"\1:\2", str(error)) or type(error).__name__
        if isinstance(error, requests.exceptions.InvalidURL) and url not in text:
            text = f"invalid URL {url!r}: {text}"
        return text if exit_code_for(error) == EXIT_USAGE else f"{text}; {tries}"
    template = FAILURES.get(verdict.name, "{origin}: " + verdict.name + " ({detail})")
    timeouts = settings.timeout
    what = template.format(
        origin=origin, host=host, port=port, detail=_detail(error, verdict.name),
        connect=_in_seconds(timeouts.connect), read=_in_seconds(timeouts.read), write=_in_seconds(timeouts.write),
    )
    return f"{what}; {tries}"


#: urllib3's ``HTTPConnectionPool(host='h', port=80)`` (and our subclasses' names) in a message.
_POOL_REPR = re.compile(r"\b_?HTTPS?(?:Connection)?(?:Pool)?\(host='([^']*)', port=(\d+)\)")


# -- verbose output ----------------------------------------------------------

class VerboseListener(Listener):
    """``-v``: each failed attempt, each scheduled retry and its wait, breaker
    changes, fail-fast refusals and the end of the call, one ``* `` line each."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def _say(self, text: str) -> None:
        print(f"* {text}", file=self.stream, flush=True)

    def attempt_failed(self, event: AttemptFailed) -> None:
        """An attempt failed: its number and why."""
        why = event.reason if event.exception is None else _kind_of(event.exception)
        self._say(f"attempt {event.attempt} failed: {why}")

    def retry_scheduled(self, event: RetryScheduled) -> None:
        """A retry was scheduled: the wait before it."""
        self._say(f"retry: waiting {event.wait:.3f}s before attempt {event.attempt + 1}")

    def breaker_state_changed(self, event: BreakerStateChanged) -> None:
        """The origin's breaker changed state."""
        self._say(f"breaker {event.origin}: {event.old} -> {event.new}")

    def call_short_circuited(self, event: CallShortCircuited) -> None:
        """The call failed fast on an open breaker."""
        self._say(f"breaker {event.origin} is open: failed fast, next trial in {event.retry_after:.1f}s")

    def bulkhead_rejected(self, event: BulkheadRejected) -> None:
        """No bulkhead slot was free in time."""
        self._say(f"bulkhead full ({event.capacity} slots): nothing sent")

    def call_finished(self, event: CallFinished) -> None:
        """The call ended: status or exception, attempts, elapsed time."""
        result = (f"status {event.status}" if event.status is not None
                  else _kind_of(event.exception) if event.exception is not None else "no answer")
        self._say(f"finished: {result} after {event.attempts} attempt(s) in {event.elapsed:.3f}s "
                  f"({event.outcome})")


def _kind_of(error: BaseException) -> str:
    """The kind of failure ``error`` is, and what the system said: ``connection refused
    (Connection refused)``; no class names."""
    if isinstance(error, DeadlineExceededError):
        return "deadline exceeded"
    if isinstance(error, CircuitOpenError):
        return "circuit open"
    verdict = classify(error)
    if verdict is PASS_THROUGH:
        return _POOL_REPR.sub(r"\1:\2", str(error)) or verdict.name
    detail = _detail(error, "")
    return f"{verdict.name} ({detail})" if detail and detail.lower() != verdict.name else verdict.name


def _describe_call(config: ClientConfig) -> str:
    t, r = config.timeout, config.retry
    total = "none" if t.total is None else f"{t.total:g}s"
    return (f"timeouts connect {t.connect:g}s read {t.read:g}s, deadline {total}; "
            f"max_attempts {r.max_attempts}, waits {r.min_wait:g}-{r.max_wait:g}s; "
            f"breaker {config.circuit_breaker.failure_threshold} failures / "
            f"{config.circuit_breaker.recovery_timeout:g}s; bulkhead {config.bulkhead.max_concurrency}")


# -- the request commands ----------------------------------------------------

def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _header(text: str) -> Tuple[str, Union[str, bytes, None]]:
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name:
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    value = value.strip()
    if not value:
        return name, None  # "Name:" removes a default header, as in curl
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return name, value.encode("utf-8")  # sent as UTF-8 bytes, as curl does
    return name, value


def _read_data(text: str) -> bytes:
    """``-d``/``--json`` argument: ``@path`` reads the file, ``@-`` stdin, else the text."""
    if text.startswith("@"):
        path = text[1:]
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as handle:
            return handle.read()
    return text.encode("utf-8")


def _add_tuning(parser: argparse.ArgumentParser) -> None:
    """The options that choose and adjust the configuration."""
    source = parser.add_argument_group("configuration (base: RESILIENT_REQUESTS_* environment)")
    source.add_argument("--preset", choices=PRESET_NAMES,
                        help="the preset the environment's other variables override")
    source.add_argument("--config-file", metavar="PATH",
                        help="a .json or .toml config file instead of the environment")
    source.add_argument("--timeout", type=_positive, metavar="S",
                        help="read timeout: the longest wait for bytes from the server")
    source.add_argument("--connect-timeout", type=_positive, metavar="S", help="connect timeout")
    source.add_argument("--deadline", type=_positive, metavar="S",
                        help="bound on the whole call: every attempt, wait and the body")
    source.add_argument("--retries", type=_count, metavar="N",
                        help="retries after the first attempt (max_attempts = N + 1); 0 = one attempt")


def _configured(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Tuple[ClientConfig, str]:
    try:
        config, where = load_config(args.preset, args.config_file)
        config = tuned(config, timeout=args.timeout, connect_timeout=args.connect_timeout,
                       deadline=args.deadline, retries=args.retries)
    except (ValueError, TypeError, OSError, RuntimeError, ImportError) as error:
        parser.exit(EXIT_USAGE, f"{parser.prog}: configuration: {error}\n")
    return config, where


def _status_block(response: requests.Response) -> bytes:
    version = getattr(response.raw, "version", 11)
    proto = {9: "HTTP/0.9", 10: "HTTP/1.0", 11: "HTTP/1.1", 20: "HTTP/2"}.get(version, "HTTP/1.1")
    reason = response.reason if isinstance(response.reason, str) else (response.reason or b"").decode("latin-1")
    lines = [f"{proto} {response.status_code} {reason}".rstrip()]
    raw_headers = getattr(response.raw, "headers", None)
    items = list(raw_headers.items()) if raw_headers is not None else list(response.headers.items())
    lines += [f"{name}: {value}" for name, value in items]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def _verbose_exchange(response: requests.Response, stream: IO[str]) -> None:
    for hop in response.history:
        print(f"* redirect: {hop.status_code} {hop.url} -> {hop.headers.get('Location', '?')}", file=stream)
    request = response.request
    if request is not None:
        path = request.path_url
        print(f"> {request.method} {path}", file=stream)
        for name, value in request.headers.items():
            # requests types header values as str | bytes (types-requests: str).
            print(f"> {name}: {value}", file=stream)  # type: ignore[str-bytes-safe, unused-ignore]
    print(f"< {response.status_code} {response.reason}", file=stream)
    for name, value in response.headers.items():
        print(f"< {name}: {value}", file=stream)
    stream.flush()


def _run_request(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .session import ResilientSession

    prog = parser.prog
    err = sys.stderr
    headers: Dict[str, Union[str, bytes, None]] = {}
    data: Optional[bytes] = None
    try:
        if args.data is not None:
            data = _read_data(args.data)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif args.json is not None:
            data = _read_data(args.json)
            json.loads(data.decode("utf-8"))
            headers["Content-Type"] = "application/json"
            headers["Accept"] = "application/json"
    except OSError as error:
        parser.exit(EXIT_USAGE, f"{prog}: cannot read {args.data or args.json}: {error}\n")
    except ValueError as error:
        parser.exit(EXIT_USAGE, f"{prog}: --json is not valid JSON: {error}\n")
    for name, value in args.header or ():
        headers[name] = value
    config, where = _configured(parser, args)
    method = args.method.upper()
    if args.verbose:
        print(f"* {method} {args.url}", file=err)
        print(f"* config: {where}", file=err)
        print(f"* {_describe_call(config)}", file=err, flush=True)

    response: Optional[requests.Response] = None
    code = EXIT_OK
    record = CallRecord()
    with ResilientSession(config) as session:
        if args.verbose:
            session.add_listener(VerboseListener(err))
        session.add_listener(record)
        url = session.absolute_url(args.url)
        try:
            response = session.request(method, args.url, data=data, headers=headers)
        except requests.RequestException as error:
            code = exit_code_for(error)
            if isinstance(error, (ClientError, ServerError)):
                response = error.response  # the config has raise_for_status=True
            print(f"{prog}: {_KIND[code]}: {describe_failure(error, url, config, record.finished)}",
                  file=err, flush=True)
        if response is not None:
            if args.verbose:
                _verbose_exchange(response, err)
            failure = error_for_status(response)
            if failure is not None and code == EXIT_OK:
                code = exit_code_for(failure)
                print(f"{prog}: {_KIND[code]}: {describe_failure(failure, url, config, record.finished)}",
                      file=err, flush=True)
            written = _write_response(response, args, prog)
            if written != EXIT_OK and code == EXIT_OK:
                code = written
    return code


def _write_response(response: requests.Response, args: argparse.Namespace, prog: str) -> int:
    payload = (_status_block(response) if args.include else b"") + response.content
    if args.output is None or args.output == "-":
        out = sys.stdout.buffer
        out.write(payload)
        out.flush()
        return EXIT_OK
    try:
        with open(args.output, "wb") as handle:
            handle.write(payload)
    except OSError as error:
        print(f"{prog}: cannot write {args.output}: {error}", file=sys.stderr, flush=True)
        return EXIT_OTHER
    return EXIT_OK


def _add_request(commands: Any, method: str) -> None:
    parser = commands.add_parser(
        method,
        help=f"send one {method.upper()} through a ResilientSession and print the body",
        description=textwrap.fill(
            f"Send one {method.upper()} request through a ResilientSession (timeouts, retries, "
            "the origin's breaker, the bulkhead) and write the response body to stdout. POST "
            "(and other non-idempotent requests) are retried only when they never reached the "
            "server, or with an Idempotency-Key header.", width=79),
        epilog=_exit_codes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", metavar="URL")
    parser.add_argument("-H", "--header", action="append", type=_header, metavar="'NAME: VALUE'",
                        help="add a request header (repeatable); 'NAME:' removes a default one")
    body = parser.add_mutually_exclusive_group()
    body.add_argument("-d", "--data", metavar="DATA",
                      help="request body; @FILE reads a file, @- stdin "
                           "(Content-Type: application/x-www-form-urlencoded unless -H sets one)")
    body.add_argument("--json", metavar="JSON",
                      help="JSON request body (or @FILE), sent as is with "
                           "Content-Type and Accept: application/json")
    _add_tuning(parser)
    out = parser.add_argument_group("output")
    out.add_argument("-v", "--verbose", action="store_true",
                     help="on stderr: the config, each failed attempt, each retry's wait, breaker "
                          "changes, the end of the call, and the request and response headers")
    out.add_argument("-i", "--include", action="store_true",
                     help="write the status line and response headers before the body")
    out.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(run=lambda args: _run_request(parser, args), method=method)


# -- presets and config ------------------------------------------------------

def _add_presets(commands: Any) -> None:
    parser = commands.add_parser(
        "presets", help="the presets and their settings",
        description="Print every preset's timeouts, retries, breaker and bulkhead settings.",
    )
    parser.add_argument("--json", action="store_true", help="as JSON: {name: config}")

    def run(args: argparse.Namespace) -> int:
        if args.json:
            print(json.dumps({name: config_as_dict(preset(name)) for name in PRESET_NAMES}, indent=2))
        else:
            print("\n".join(presets_table()))
        return EXIT_OK

    parser.set_defaults(run=run)


def _add_config(commands: Any) -> None:
    parser = commands.add_parser(
        "config", help="the effective configuration (environment or a file)",
        description=textwrap.fill(
            "Print the configuration a request command would use: ClientConfig.from_env() "
            "(RESILIENT_REQUESTS_* variables), or ClientConfig.from_file(PATH) with --file "
            "(the environment is then not read), with the same overrides the request commands "
            "take.", width=79),
        epilog=_exit_codes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="as one JSON object")
    _add_tuning(parser)
    parser.add_argument("--file", dest="config_file", metavar="PATH", help="same as --config-file")

    def run(args: argparse.Namespace) -> int:
        config, where = _configured(parser, args)
        if args.json:
            print(json.dumps({"source": where, "config": config_as_dict(config)}, indent=2))
        else:
            print(f"# source: {where}")
            print("\n".join(config_lines(config)))
        return EXIT_OK

    parser.set_defaults(run=run)


# -- demo progress -----------------------------------------------------------

class DemoProgress:
    """A one-line progress indicator on a TTY ``stream`` while the demo runs.

    The demo's report goes through :meth:`wrap` (a text stream that clears the
    line before each write); a ``running <client> ...`` line starts a phase of
    about ``phase_seconds``, and the next line with text ends it. A ticker thread
    redraws the line every ``interval`` seconds. Nothing is drawn unless
    ``stream.isatty()``.
    """

    def __init__(self, stream: IO[str], phase_seconds: float, interval: float = 0.2, width: int = 30) -> None:
        self.stream = stream
        self.enabled = bool(getattr(stream, "isatty", lambda: False)())
        self.phase_seconds = phase_seconds
        self.interval = interval
        self.width = width
        self._lock = threading.Lock()
        self._phase: Optional[Tuple[str, float]] = None  # (label, started)
        self._drawn = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def wrap(self, out: IO[str]) -> IO[str]:
        """A text stream writing to ``out`` that keeps the progress line out of the way."""
        return _ProgressOut(self, out)  # type: ignore[return-value]

    def __enter__(self) -> "DemoProgress":
        if self.enabled:
            self._thread = threading.Thread(target=self._tick, name="demo-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._drawn = False

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                self._draw()

    def _draw(self) -> None:
        if self._phase is None:
            return
        label, started = self._phase
        elapsed = time.monotonic() - started
        share = min(elapsed / self.phase_seconds, 0.99) if self.phase_seconds > 0 else 0.99
        filled = int(share * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\rrunning {label} [{bar}] {elapsed:4.1f}s of ~{self.phase_seconds:.1f}s\033[K")
        self.stream.flush()
        self._drawn = True

    def saw(self, text: str) -> None:
        """Called with each piece of the report: start or end a phase."""
        stripped = text.strip()
        if stripped.startswith("running ") and stripped.endswith("..."):
            self._phase = (stripped[len("running "):-3].strip(), time.monotonic())
        elif stripped:
            self._phase = None


class _ProgressOut:
    """The demo's ``out``: clears the progress line, then writes."""

    def __init__(self, progress: DemoProgress, out: IO[str]) -> None:
        self._progress = progress
        self._out = out

    def write(self, text: str) -> int:
        progress = self._progress
        with progress._lock:
            progress._clear()
            written = self._out.write(text)
            self._out.flush()
            progress.saw(text)
        return written

    def flush(self) -> None:
        self._out.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)


def _add_demo(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="plain requests vs ResilientSession against a flaky local upstream",
        description="Run the same threaded batch of calls through plain requests and through "
                    "ResilientSession against a local upstream that is healthy, then down, then "
                    "healthy again, and print what each client saw. Everything stays on 127.0.0.1. "
                    "On a terminal, stderr shows a progress line while each client runs.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="every duration x0.25 and half the calls (about 12 s instead of 45 s)")
    parser.add_argument("--seed", type=int, default=1,
                        help="seed for the upstream's script of 503s and slow replies (default: 1)")
    parser.add_argument("--json", action="store_true",
                        help="also print the numbers as one JSON object on the last line")

    def run(args: argparse.Namespace) -> int:
        from .demo import make_plan
        from .demo import run as run_demo

        progress = DemoProgress(sys.stderr, make_plan(args.quick, args.seed).duration)
        if not progress.enabled:
            return run_demo(quick=args.quick, seed=args.seed, json_line=args.json)
        with progress:
            return run_demo(quick=args.quick, seed=args.seed, json_line=args.json,
                            out=progress.wrap(sys.stdout))

    parser.set_defaults(run=run)


def _add_requests(commands: Any) -> None:
    for method in ("get", "post", "put", "delete"):
        _add_request(commands, method)


#: Functions adding the commands, in the order ``--help`` lists them.
COMMANDS: List[Callable[[Any], None]] = [_add_requests, _add_presets, _add_config, _add_demo]


def description() -> str:
    """The top-level ``--help`` text after the usage line."""
    return textwrap.fill(
        "Requests with timeouts, retries, per-origin circuit breakers and a bulkhead, from the "
        "shell: one call (get/post/put/delete), the presets, the effective config, or the demo.",
        width=79)


def version() -> str:
    """What ``--version`` prints after the program's name: this library's version and
    those of what it runs on."""
    from . import __version__

    return (f"{__version__} (requests {getattr(requests, '__version__', '?')}, "
            f"urllib3 {getattr(urllib3, '__version__', '?')}, Python {platform.python_version()})")


def epilog() -> str:
    """The exit-status table for the top-level ``--help``."""
    return _exit_codes_epilog()
