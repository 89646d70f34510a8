"""Scenarios ``peers`` (what users would pick instead, side by side) and
``layers`` (the measurements behind issue 15's performance goals).

``peers``: plain ``requests.Session`` and nine contenders, all in one run,
interleaved round by round, each a ratio to plain requests measured in the
same rounds. Columns: the happy path (sequential keep-alive GETs), 16 threads
calling a route that answers after 20 ms, a port that refuses connections, and
import time over a bare interpreter.

==================== =====================================================================
``plain``            ``requests.Session`` (:mod:`bench.contenders`)
``urllib3-retry``    requests, ``HTTPAdapter(max_retries=Retry(total=2, backoff_factor=w/2,
                     status_forcelist=5xx))``
``stamina``          ``stamina.retry(on=RequestException, attempts=3, wait_initial=w,
                     wait_jitter=w, wait_max=60 w, timeout=None)`` around ``session.get``
``tenacity-pybreaker`` ``tenacity.retry(stop_after_attempt(3), wait_random_exponential(w),
                     RequestException)`` around ``pybreaker.CircuitBreaker(fail_max=5).call``
``circuitbreaker``   ``@circuit(failure_threshold=5, expected_exception=RequestException)``
                     around requests with ``Retry(total=2)`` (the library has no retry)
``pyresilience``     ``@resilient(retry=RetryConfig(max_attempts=3, delay=w),
                     circuit_breaker=CircuitBreakerConfig(failure_threshold=5))``
``httpx``            ``httpx.Client(transport=HTTPTransport(retries=2))`` (connect errors
                     only; waits 0, w/2, w)
``niquests``         ``niquests.Session(retries=Retry(total=2, …))``, in its own virtualenv
                     and process (:mod:`bench.peer_worker`)
``resilient``        ``ResilientSession()``
``resilient-fast``   ``ResilientSession(preset("fast_microservice"))``
==================== =====================================================================

Every contender makes at most 3 attempts, has connect/read timeouts of
(10, 30) s (the preset: its own 2/5 s), and where it has a breaker, one that
opens after 5 failures (the preset: 3). A 5xx raises inside the wrappers so
that their retry and breaker count it. ``w`` is the first backoff step: 1 s
(the defaults' ``min_wait``) except in the refused-port column, where every
contender's backoff is scaled alike to ``w = 0.01`` s, as scenario 3 does.

``layers``: ``ResilientSession()`` against plain requests on each of issue 15's
goals, each row with its goal, figure and verdict; ``--quick`` runs it in well
under a minute (see :data:`LAYERS_SIZES`).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

import resilient_requests as rr
from resilient_requests.testing import ok, status

from . import footprint, scenarios
from .contenders import Tuning, build
from .peer_worker import TIMEOUT, happy_batch, refused, throughput
from .plan import Plan
from .report import Goal, Section, Table, fmt, fmt_ratio
from .stats import interleaved, median, percentile, ratio
from .upstream import Upstream

__all__ = ["peers", "layers", "PEERS", "PEER_LABELS", "niquests_python"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NIQUESTS_VENV = os.path.join(ROOT, "bench", ".venv-niquests")
WORKER = os.path.join(ROOT, "bench", "peer_worker.py")

PEERS = (
    "plain",
    "urllib3-retry",
    "stamina",
    "tenacity-pybreaker",
    "circuitbreaker",
    "pyresilience",
    "httpx",
    "niquests",
    "resilient",
    "resilient-fast",
)
PEER_LABELS = {
    "plain": "requests.Session (plain)",
    "urllib3-retry": "requests + urllib3 Retry(total=2)",
    "stamina": "requests + stamina.retry",
    "tenacity-pybreaker": "requests + tenacity + pybreaker",
    "circuitbreaker": "requests + Retry(total=2) + circuitbreaker",
    "pyresilience": "requests + pyresilience",
    "httpx": "httpx (HTTPTransport(retries=2))",
    "niquests": "niquests (Retry(total=2))",
    "resilient": "ResilientSession()",
    "resilient-fast": "ResilientSession(fast_microservice)",
}
#: What each contender's import column imports (``None``: a fresh ``python -c``).
IMPORTS = {
    "plain": "import requests",
    "urllib3-retry": "import requests; from urllib3.util.retry import Retry",
    "stamina": "import requests, stamina",
    "tenacity-pybreaker": "import requests, tenacity, pybreaker",
    "circuitbreaker": "import requests, circuitbreaker",
    "pyresilience": "import requests, pyresilience",
    "httpx": "import httpx",
    "niquests": "import niquests",
    "resilient": "import resilient_requests",
    "resilient-fast": "import resilient_requests",
}
#: The refused-port column's first backoff step, for every contender alike.
REFUSED_WAIT = 0.01
_FIVE_XX = [500, 502, 503, 504]
T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    """How much each part of a scenario measures (the full run, or --quick)."""

    # happy path: rounds of `happy_batch` GETs per contender; at least `happy_min_rounds`,
    # then more until `happy_budget` seconds have passed, at most `happy_rounds`
    happy_rounds: int
    happy_batch: int
    happy_min_rounds: int = 0
    happy_budget: float = 0.0
    # threads: rounds of a `thread_window` after a `thread_warm` period
    thread_rounds: int = 0
    thread_warm: float = 0.0
    thread_window: float = 0.0
    # peers, refused port: rounds of `refused_calls` calls, a fresh client each
    refused_rounds: int = 0
    refused_calls: int = 0
    # layers (c): rounds of `refusal_batch` refused calls
    refusal_rounds: int = 0
    refusal_batch: int = 0
    # fresh interpreters per import measured
    import_rounds: int = 0


PEERS_SIZES = {
    "full": Sizes(
        happy_rounds=200,
        happy_batch=60,
        happy_min_rounds=30,
        happy_budget=40.0,
        thread_rounds=4,
        thread_warm=0.3,
        thread_window=1.5,
        refused_rounds=2,
        refused_calls=100,
        import_rounds=10,
    ),
    "quick": Sizes(
        happy_rounds=60,
        happy_batch=40,
        happy_min_rounds=6,
        happy_budget=8.0,
        thread_rounds=1,
        thread_warm=0.1,
        thread_window=0.4,
        refused_rounds=1,
        refused_calls=30,
        import_rounds=3,
    ),
}
LAYERS_SIZES = {
    "full": Sizes(
        happy_rounds=400,
        happy_batch=100,
        happy_min_rounds=40,
        happy_budget=60.0,
        thread_rounds=6,
        thread_warm=0.3,
        thread_window=1.5,
        refusal_rounds=20,
        refusal_batch=500,
        import_rounds=15,
    ),
    "quick": Sizes(
        happy_rounds=300,
        happy_batch=40,
        happy_min_rounds=10,
        happy_budget=12.0,
        thread_rounds=3,
        thread_warm=0.1,
        thread_window=0.3,
        refusal_rounds=5,
        refusal_batch=200,
        import_rounds=4,
    ),
}


def _sizes(table: Dict[str, Sizes], plan: Plan) -> Sizes:
    return table.get(plan.name, table["full"])


# -- the contenders ------------------------------------------------------------


@dataclass
class Peer:
    """A contender in this process: ``get(url)`` is what is timed."""

    name: str
    get: Callable[[str], Any]
    close: Callable[[], None]


def _session(threads: int, retries: Any = 0) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(10, threads), max_retries=retries)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _retry(wait: float) -> Retry:
    """3 attempts; urllib3 waits 0, then ``wait`` (its backoff factor is wait / 2)."""
    return Retry(total=2, backoff_factor=wait / 2, status_forcelist=_FIVE_XX)


def _once(session: Any) -> Callable[[str], Any]:
    """``session.get(url, timeout=TIMEOUT)``, a 5xx raised (retries and breakers count it)."""

    def get(url: str) -> Any:
        response = session.get(url, timeout=TIMEOUT)
        if response.status_code >= 500:
            response.raise_for_status()
        return response

    return get


def _build_stamina(threads: int, wait: float) -> Peer:
    import stamina

    session = _session(threads)
    get = stamina.retry(
        on=requests.RequestException,
        attempts=3,
        timeout=None,
        wait_initial=wait,
        wait_jitter=wait,
        wait_max=60 * wait,
    )(_once(session))
    return Peer("stamina", get, session.close)


def _build_tenacity(threads: int, wait: float) -> Peer:
    import pybreaker
    import tenacity

    session = _session(threads)
    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30.0)
    once = _once(session)

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_random_exponential(multiplier=wait, max=60 * wait),
        retry=tenacity.retry_if_exception_type(requests.RequestException),
        reraise=True,
    )
    def get(url: str) -> Any:
        return breaker.call(once, url)

    return Peer("tenacity-pybreaker", get, session.close)


def _build_circuitbreaker(threads: int, wait: float) -> Peer:
    from circuitbreaker import circuit

    session = _session(threads, _retry(wait))
    # ``@circuit`` keeps a breaker per decorated function, named after it in a
    # process-wide monitor: a name of its own per contender built.
    decorate = circuit(
        failure_threshold=5,
        recovery_timeout=30,
        expected_exception=requests.RequestException,
        name=f"bench-peers-{id(session)}",
    )
    return Peer("circuitbreaker", decorate(_once(session)), session.close)


def _build_pyresilience(threads: int, wait: float) -> Peer:
    import pyresilience

    session = _session(threads)
    decorate = pyresilience.resilient(
        retry=pyresilience.RetryConfig(
            max_attempts=3,
            delay=wait,
            backoff_factor=2.0,
            max_delay=60 * wait,
            jitter=True,
            retry_on=(requests.RequestException,),
        ),
        circuit_breaker=pyresilience.CircuitBreakerConfig(
            failure_threshold=5, recovery_timeout=30.0, error_types=(requests.RequestException,)
        ),
    )
    return Peer("pyresilience", decorate(_once(session)), session.close)


def _build_httpx(threads: int, wait: float) -> Peer:
    import httpx

    client = httpx.Client(
        timeout=httpx.Timeout(TIMEOUT[1], connect=TIMEOUT[0]),
        transport=httpx.HTTPTransport(
            retries=2,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=max(20, threads)),
        ),
    )
    return Peer("httpx", client.get, client.close)


def _build_urllib3(threads: int, wait: float) -> Peer:
    session = _session(threads, _retry(wait))

    def get(url: str) -> Any:
        return session.get(url, timeout=TIMEOUT)

    return Peer("urllib3-retry", get, session.close)


def _build_ours(name: str, threads: int, wait: float) -> Peer:
    """plain, resilient and resilient-fast as :mod:`bench.contenders` builds them."""
    tuning = Tuning(pool=max(10, threads), min_wait=None if wait == 1.0 else wait)
    client = build(name, tuning)
    return Peer(name, client.get, client.close)


LOCAL_BUILDERS: Dict[str, Callable[[int, float], Peer]] = {
    "urllib3-retry": _build_urllib3,
    "stamina": _build_stamina,
    "tenacity-pybreaker": _build_tenacity,
    "circuitbreaker": _build_circuitbreaker,
    "pyresilience": _build_pyresilience,
    "httpx": _build_httpx,
}


@contextmanager
def _httpx_backoff(factor: float) -> Iterator[None]:
    """httpcore's connect-retry backoff factor (a module constant, 0.5: waits
    0, 0.5, 1 s), set to ``factor`` while inside: the only way to scale it."""
    from httpcore._sync import connection

    saved = connection.RETRIES_BACKOFF_FACTOR
    connection.RETRIES_BACKOFF_FACTOR = factor
    try:
        yield
    finally:
        connection.RETRIES_BACKOFF_FACTOR = saved


# -- niquests: its own virtualenv and process ----------------------------------------


def niquests_python() -> Tuple[Optional[str], str]:
    """The interpreter of ``bench/.venv-niquests`` (made on first use with
    ``python -m venv`` and ``pip install niquests``), or None and why not."""
    python = os.path.join(NIQUESTS_VENV, "bin", "python")

    def run(*command: str, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)

    try:
        if (
            os.path.exists(python)
            and run(python, "-c", "import niquests", timeout=60).returncode == 0
        ):
            return python, "ready"
        print(
            f"[bench] making {NIQUESTS_VENV} (python -m venv; pip install niquests) …",
            file=sys.stderr,
            flush=True,
        )
        steps = (
            (sys.executable, "-m", "venv", "--clear", NIQUESTS_VENV),
            (python, "-m", "pip", "install", "--disable-pip-version-check", "-q", "niquests"),
            (python, "-c", "import niquests"),
        )
        for step in steps:
            done = run(*step, timeout=600)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
                return (
                    None,
                    f"`{' '.join(os.path.basename(p) for p in step[:4])}` failed: {tail[0]}",
                )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return python, "made for this run"


class Remote:
    """A contender served by ``bench/peer_worker.py`` in another interpreter."""

    def __init__(self, python: str, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [python, WORKER, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )

    def ask(self, **command: Any) -> Dict[str, Any]:
        """Send one command and wait for its answer (``RuntimeError`` for an error)."""
        with self._lock:
            assert self._process.stdin is not None and self._process.stdout is not None
            self._process.stdin.write(json.dumps(command) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} worker exited (code {self._process.poll()})")
        answer: Dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.name} worker: {answer['error']}")
        return answer

    def close(self) -> None:
        """Tell the worker to stop; kill it if it does not within 10 s."""
        try:
            assert self._process.stdin is not None
            self._process.stdin.write(json.dumps({"op": "stop"}) + "\n")
            self._process.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        if self._process.stdout is not None:
            self._process.stdout.close()


def _build(name: str, threads: int, wait: float) -> Peer:
    if name in LOCAL_BUILDERS:
        return LOCAL_BUILDERS[name](threads, wait)
    return _build_ours(name, threads, wait)


def _close_all(peers: Dict[str, Peer]) -> None:
    for peer in peers.values():
        peer.close()


@contextmanager
def _refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nothing else takes
    it) but not listening."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]
    finally:
        holder.close()


def _interleaved_within(
    names: Sequence[str], sizes: Sizes, run: Callable[[str, int], T]
) -> Dict[str, List[T]]:
    """:func:`~bench.stats.interleaved` (same rotation, garbage collected before
    each run) for at least ``happy_min_rounds`` rounds, then on while the time
    spent stays under ``happy_budget`` seconds, at most ``happy_rounds``: the
    rounds are small, so a loaded machine costs rounds, not minutes."""
    results: Dict[str, List[T]] = {name: [] for name in names}
    started = time.monotonic()
    for number in range(sizes.happy_rounds):
        if number >= sizes.happy_min_rounds and time.monotonic() - started > sizes.happy_budget:
            break
        shift = number % len(names)
        for name in list(names[shift:]) + list(names[:shift]):
            gc.collect()
            results[name].append(run(name, number))
    return results


def _paired(values: Dict[str, List[float]], baseline: str = "plain") -> Dict[str, float]:
    """Median over rounds of (a contender's figure / the baseline's in that round)."""
    return {
        name: median(ratio(v, b) for v, b in zip(series, values[baseline]))
        for name, series in values.items()
    }


def _differences(values: Dict[str, List[float]], baseline: str = "plain") -> Dict[str, float]:
    """Median over rounds of (a contender's figure − the baseline's in that round)."""
    return {
        name: median(v - b for v, b in zip(series, values[baseline]))
        for name, series in values.items()
    }


# -- the columns ---------------------------------------------------------------


def _happy_column(
    names: Sequence[str], url: str, sizes: Sizes, remote: Optional[Remote]
) -> Dict[str, List[Tuple[float, float]]]:
    """Per contender and round: (wall µs, CPU µs) per sequential keep-alive GET."""
    local = {name: _build(name, 1, 1.0) for name in names if name != "niquests"}
    try:
        for peer in local.values():
            for _ in range(50):
                peer.get(url)
        if remote is not None:
            remote.ask(op="happy", url=url, calls=0, warm_calls=50)

        def batch(name: str, _: int) -> Tuple[float, float]:
            if name == "niquests" and remote is not None:
                answer = remote.ask(op="happy", url=url, calls=sizes.happy_batch)
                return answer["wall"], answer["cpu"]
            return happy_batch(local[name].get, url, sizes.happy_batch)

        return _interleaved_within(names, sizes, batch)
    finally:
        _close_all(local)


def _thread_column(
    names: Sequence[str], url: str, threads: int, sizes: Sizes, remote: Optional[Remote]
) -> Dict[str, List[float]]:
    """Per contender and round: successful calls per second from ``threads`` threads."""
    local = {name: _build(name, threads, 1.0) for name in names if name != "niquests"}
    try:

        def run(name: str, _: int) -> float:
            if name == "niquests" and remote is not None:
                answer = remote.ask(
                    op="throughput",
                    url=url,
                    threads=threads,
                    warm=sizes.thread_warm,
                    window=sizes.thread_window,
                )
                return float(answer["per_second"])
            return throughput(local[name].get, url, threads, sizes.thread_warm, sizes.thread_window)

        return interleaved(names, sizes.thread_rounds, run)
    finally:
        _close_all(local)


def _refused_column(
    names: Sequence[str], url: str, sizes: Sizes, remote: Optional[Remote]
) -> Dict[str, List[Tuple[List[float], int]]]:
    """Per contender and round, a fresh client: (µs per call, connects) over
    ``refused_calls`` calls to a refusing port, every backoff scaled alike."""

    def run(name: str, _: int) -> Tuple[List[float], int]:
        if name == "niquests" and remote is not None:
            answer = remote.ask(
                op="refused", url=url, calls=sizes.refused_calls, min_wait=REFUSED_WAIT
            )
            return answer["samples"], int(answer["connects"])
        peer = _build(name, 1, REFUSED_WAIT)
        try:
            if name == "httpx":  # waits 0, w/2, w: urllib3's scale (backoff factor w/2)
                with _httpx_backoff(REFUSED_WAIT / 2):
                    return refused(peer.get, url, sizes.refused_calls)
            return refused(peer.get, url, sizes.refused_calls)
        finally:
            peer.close()

    return interleaved(names, sizes.refused_rounds, run)


def _import_env() -> Dict[str, str]:
    return footprint._environ()  # bytecode cached in the benchmark's own folder


def _run_ms(python: str, code: str) -> Tuple[float, float]:
    """(CPU ms, wall ms) of a fresh ``python -c code``: the child's user + system
    time (``RUSAGE_CHILDREN``, read around the run) and the wall time of the run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [python, "-c", code],
        cwd=ROOT,
        check=True,
        timeout=120,
        env=_import_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return cpu, wall


def _import_column(
    names: Sequence[str], sizes: Sizes, niquests: Optional[str]
) -> Dict[str, List[Tuple[float, float]]]:
    """Per contender and round: (CPU ms, wall ms) of ``python -c <its imports>``
    over ``-c pass`` run by the same interpreter in the same round."""
    runs: Dict[str, Tuple[str, str]] = {"(pass)": (sys.executable, "pass")}
    for name in names:
        if name == "niquests":
            if niquests is not None:
                runs["niquests"] = (niquests, IMPORTS["niquests"])
                runs["(pass, niquests)"] = (niquests, "pass")
        else:
            runs[name] = (sys.executable, IMPORTS[name])
    for python, code in runs.values():  # compile and cache the bytecode; warm the disk cache
        _run_ms(python, code)
    times = interleaved(list(runs), sizes.import_rounds, lambda key, _: _run_ms(*runs[key]))
    over: Dict[str, List[Tuple[float, float]]] = {}
    for name in runs:
        if name.startswith("("):
            continue
        bare = times["(pass, niquests)" if name == "niquests" else "(pass)"]
        over[name] = [(c - bc, w - bw) for (c, w), (bc, bw) in zip(times[name], bare)]
    return over


# -- scenario: peers -----------------------------------------------------------


def peers(upstream: Upstream, plan: Plan) -> Section:
    """Plain requests and its alternatives: happy path, 16 threads, a refused
    port, import time; one run, interleaved, ratios to plain requests."""
    sizes = _sizes(PEERS_SIZES, plan)
    upstream.route("/tiny", ok(b"ok"))
    upstream.route("/slow", ok(delay=0.02))
    niquests, why = niquests_python()
    names = [n for n in PEERS if n != "niquests" or niquests is not None]
    remote = Remote(niquests, "niquests") if niquests else None
    versions: Dict[str, str] = {}
    if remote is not None:
        try:
            versions = remote.ask(op="versions")["versions"]
        except (RuntimeError, OSError, ValueError) as exc:
            remote.close()
            remote, niquests, why = None, None, f"its worker process did not start: {exc}"
            names.remove("niquests")
    try:
        happy = _happy_column(names, upstream.url("/tiny"), sizes, remote)
        threads = _thread_column(names, upstream.url("/slow"), 16, sizes, remote)
        with _refusing_port() as port:
            refusals = _refused_column(names, f"http://127.0.0.1:{port}/x", sizes, remote)
    finally:
        if remote is not None:
            remote.close()
    imports = _import_column(names, sizes, niquests)

    wall = {name: [w for w, _ in rounds] for name, rounds in happy.items()}
    cpu = {name: [c for _, c in rounds] for name, rounds in happy.items()}
    happy_ratio, cpu_ratio, thread_ratio = _paired(wall), _paired(cpu), _paired(threads)
    rows = []
    for name in PEERS:
        if name not in wall:
            rows.append([PEER_LABELS[name]] + [f"n/a: {why}"] + ["n/a"] * 5)
            continue
        samples = [s for batch, _ in refusals[name] for s in batch]
        connects = sum(c for _, c in refusals[name])
        rows.append(
            [
                PEER_LABELS[name],
                f"{fmt_ratio(happy_ratio[name])} ({fmt(median(wall[name]), 0)} µs)",
                f"{fmt_ratio(cpu_ratio[name])} ({fmt(median(cpu[name]), 0)} µs)",
                f"{fmt_ratio(thread_ratio[name])} ({fmt(median(threads[name]), 0)}/s)",
                f"{fmt(percentile(samples, 50), 0)} / {fmt(percentile(samples, 99), 0)} µs",
                f"{fmt(connects)} for {fmt(len(samples))} calls",
                (
                    f"+{fmt(median(c for c, _ in imports[name]), 0)} ms "
                    f"(wall +{fmt(median(w for _, w in imports[name]), 0)} ms)"
                    if name in imports
                    else "n/a"
                ),
            ]
        )
    table = Table(
        [
            "contender",
            "happy path vs plain (median µs/GET)",
            "client CPU per GET vs plain (µs)",
            "16 threads × 20 ms vs plain (calls/s)",
            "refused port p50 / p99 per call",
            "connects",
            "import over bare python: CPU (wall)",
        ],
        rows,
    )
    others = [n for n in names if n not in ("plain", "resilient", "resilient-fast")]
    best = min(others, key=lambda n: happy_ratio[n])
    goals = [
        Goal(
            f"{PEER_LABELS[name]}: happy path vs the fastest peer (reported, no target)",
            None,
            f"{fmt_ratio(happy_ratio[name])} plain; fastest peer {PEER_LABELS[best]} "
            f"{fmt_ratio(happy_ratio[best])}",
        )
        for name in ("resilient", "resilient-fast")
    ]
    versions_note = ", ".join(f"{k} {v}" for k, v in versions.items())
    notes = [
        f"Environment: {len(os.environ)} variables (requests-based stacks scan them for proxies on "
        "every call; httpx reads them once per client; ResilientSession once per origin).",
        "Refused port: a loopback port bound but not listening (every connect is refused at "
        f"once); each round builds every contender afresh and makes {sizes.refused_calls} calls; "
        f"every backoff is scaled alike to a first step of {REFUSED_WAIT * 1000:g} ms, 1/100 of "
        "the defaults' (between the 3 attempts, urllib3 and niquests wait 0 then 10 ms; httpx 0 "
        "then 5 ms, its module constant `httpcore._sync.connection.RETRIES_BACKOFF_FACTOR` set "
        "for that column only; stamina 10 then 20 ms, each plus up to 10 ms of jitter; tenacity "
        "and ResilientSession a draw from [0, 10] then [0, 20] ms; pyresilience from [1, 10] "
        "then [2, 20] ms). "
        "Contenders without a breaker pay that backoff on every call; connects are counted by "
        "wrapping `socket.socket.connect` (the real one is called) in the measuring process.",
        "Client CPU: `time.thread_time` of the calling thread over the batch — the client's own "
        "work per GET, without the upstream's time that the wall figure includes.",
        "Import: the CPU time (user + system, of the child process) and wall time of a fresh "
        "`python -c '<the contender's imports>'` minus `-c pass` with the "
        f"same interpreter in the same round, median of {sizes.import_rounds} rounds; bytecode "
        "cached. pybreaker imports `redis` when it is installed (it is here).",
        "stamina logs each retry (its default instrumentation: a warning through `logging`, "
        "printed to stderr when logging is not configured) and counts it if prometheus_client is "
        "installed (it is here); pyresilience's own `TimeoutConfig` (a thread pool per call) is "
        "not used: requests' timeout is passed, as for the others.",
        "httpx is configured with `retries=2` (3 connect attempts, as every other contender's 3 "
        "attempts), not `retries=3` (4 attempts); it retries connect errors only, never a status.",
    ]
    if niquests is None:
        notes.append(f"niquests: not measured: {why}.")
    else:
        notes.append(
            f"niquests ({versions_note}) runs in `bench/.venv-niquests` ({why}), in a worker process "
            "(`bench/peer_worker.py`) driven over a pipe, interleaved with the others round by "
            "round: installing it replaces urllib3 with urllib3-future."
        )
    return Section(
        title="Peers: what users would pick instead",
        setup=(
            "Every contender in one run, interleaved round by round, each figure a median of "
            "per-round ratios to plain requests measured in the same round. Happy path: "
            f"{len(wall['plain'])} rounds × {sizes.happy_batch} keep-alive GETs of a 2-byte body. "
            f"Threads: 16 threads calling a route that answers after 20 ms, {sizes.thread_rounds} "
            f"round(s) of {sizes.thread_window:g} s after {sizes.thread_warm:g} s warm-up (each "
            "thread's rate from its first to last completion in the window, summed). Refused port: "
            f"{sizes.refused_rounds} round(s) × {sizes.refused_calls} calls, p50/p99 over all calls. "
            "Configuration of each contender: `bench/peers.py` (3 attempts, (10, 30) s timeouts, a "
            "breaker of 5 where there is one)."
        ),
        goals=goals,
        tables=[table],
        notes=notes,
    )


# -- scenario: layers ----------------------------------------------------------


def _layer_clients() -> Dict[str, Peer]:
    """plain and ResilientSession(), each with the default trust_env=True and with False."""
    clients: Dict[str, Peer] = {}
    for name in ("plain", "resilient"):
        for suffix, trust in (("", True), ("-noenv", False)):
            client = build(name)
            client.session.trust_env = trust
            clients[name + suffix] = Peer(name + suffix, client.get, client.close)
    return clients


def _happy_layers(url: str, sizes: Sizes) -> Dict[str, List[Tuple[float, float]]]:
    clients = _layer_clients()
    try:
        for peer in clients.values():
            for _ in range(100):
                peer.get(url)
        return _interleaved_within(
            list(clients),
            sizes,
            lambda name, _: happy_batch(clients[name].get, url, sizes.happy_batch),
        )
    finally:
        _close_all(clients)


def _timed(get: Callable[[str], Any], url: str, count: int, refusal: type) -> List[float]:
    """µs of each of ``count`` calls that raised ``refusal`` (others are left out)."""
    samples = []
    for _ in range(count):
        started = time.perf_counter_ns()
        try:
            get(url)
        except refusal:
            samples.append((time.perf_counter_ns() - started) / 1000)
        except Exception:
            pass
    return samples


def _local_refusals(upstream: Upstream, sizes: Sizes, kind: str) -> Dict[str, List[List[float]]]:
    """``throttled`` (adaptive throttling after the origin answered only 503s; the
    breaker made unable to open) or ``rate-limited`` (``RateLimitConfig(rate=1,
    per=3600)``, ``max_wait=0``): the refused calls' µs, per contender and round."""
    names = ("resilient", "resilient-fast")
    bases = {"resilient": rr.ClientConfig(), "resilient-fast": rr.preset("fast_microservice")}
    if kind == "throttled":
        upstream.route("/throttle-503", status(503))
        url, refusal = upstream.url("/throttle-503"), rr.ThrottledError
        configs = {
            name: base.replace(
                throttle=rr.ThrottleConfig(enabled=True),
                retry=dataclasses.replace(base.retry, max_attempts=1),
                circuit_breaker=rr.CircuitBreakerConfig(failure_threshold=10**9),
            )
            for name, base in bases.items()
        }
    else:
        upstream.route("/tiny", ok(b"ok"))
        url, refusal = upstream.url("/tiny"), rr.RateLimitedError
        configs = {
            name: base.replace(rate_limit=rr.RateLimitConfig(rate=1.0, per=3600.0, max_wait=0.0))
            for name, base in bases.items()
        }
    sessions = {
        name: rr.ResilientSession(config, isolated=True) for name, config in configs.items()
    }
    try:
        for name, session in sessions.items():  # until it refuses (nearly) every call
            for _ in range(400):
                try:
                    session.get(url)
                except rr.APIError:
                    pass
            if not _timed(session.get, url, 20, refusal):
                raise RuntimeError(f"{name}: no call was refused as {refusal.__name__}")
        return interleaved(
            names,
            sizes.refusal_rounds,
            lambda name, _: _timed(sessions[name].get, url, sizes.refusal_batch, refusal),
        )
    finally:
        for session in sessions.values():
            session.close()


_CLOCKED_IMPORT = (
    "import json, time\n"
    "cpu, wall = time.process_time(), time.perf_counter()\n"
    "import {module}\n"
    "print(json.dumps([(time.process_time() - cpu) * 1000, (time.perf_counter() - wall) * 1000]))"
)


def _clocked_import(module: str) -> Tuple[float, float]:
    """(CPU ms, wall ms) of ``import module`` in a fresh interpreter, timed inside it."""
    done = subprocess.run(
        [sys.executable, "-c", _CLOCKED_IMPORT.format(module=module)],
        cwd=ROOT,
        env=footprint._environ(),
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    cpu, wall = json.loads(done.stdout.strip().splitlines()[-1])
    return float(cpu), float(wall)


def _import_layers(rounds: int) -> Tuple[Dict[str, List[float]], Table]:
    """Per round, ms that ``import resilient_requests`` adds over ``import
    requests`` in fresh interpreters: by ``-X importtime`` (cumulative), and by
    the CPU and wall time of the import statement; and where the extra time goes
    (scenario 7's breakdown)."""
    modules = ("requests", "resilient_requests")
    for module in modules:
        footprint._wall(module)  # compile and cache the bytecode
    times = interleaved(modules, rounds, lambda module, _: footprint._importtime(module))
    clocks = interleaved(modules, rounds, lambda module, _: _clocked_import(module))
    added = {
        "importtime": [
            (ours["resilient_requests"][1] - theirs["requests"][1]) / 1000
            for ours, theirs in zip(times["resilient_requests"], times["requests"])
        ],
        "cpu": [o[0] - t[0] for o, t in zip(clocks["resilient_requests"], clocks["requests"])],
        "wall": [o[1] - t[1] for o, t in zip(clocks["resilient_requests"], clocks["requests"])],
        "requests cpu": [t[0] for t in clocks["requests"]],
    }
    return added, footprint._extra_modules(times["resilient_requests"], times["requests"])


def _row(what: str, goal: str, figure: str, met: Optional[bool]) -> List[str]:
    return [what, goal, figure, "–" if met is None else ("met" if met else "**not met**")]


def layers(upstream: Upstream, plan: Plan) -> Section:
    """Issue 15's goals, each against plain requests in the same run."""
    sizes = _sizes(LAYERS_SIZES, plan)
    upstream.route("/tiny", ok(b"ok"))
    upstream.route("/slow", ok(delay=0.02))
    rows: List[List[str]] = []
    goals: List[Goal] = []

    def judge(what: str, goal: str, figure: str, met: Optional[bool]) -> None:
        rows.append(_row(what, goal, figure, met))
        goals.append(Goal(f"{what}: {goal}", met, figure))

    spent: Dict[str, float] = {}
    mark = time.monotonic()

    def lap(part: str) -> None:
        nonlocal mark
        spent[part] = time.monotonic() - mark
        mark = time.monotonic()

    # (a) the happy path, with and without the environment
    happy = _happy_layers(upstream.url("/tiny"), sizes)
    wall = {name: [w for w, _ in rounds] for name, rounds in happy.items()}
    cpu = {name: [c for _, c in rounds] for name, rounds in happy.items()}
    happy_rows = []
    for ours, theirs, limit, label in (
        ("resilient-noenv", "plain-noenv", 1.03, "trust_env=False on both"),
        ("resilient", "plain", 0.80, "trust_env=True (the default) on both"),
    ):
        r = median(ratio(a, b) for a, b in zip(wall[ours], wall[theirs]))
        added = median(a - b for a, b in zip(wall[ours], wall[theirs]))
        cpu_r = median(ratio(a, b) for a, b in zip(cpu[ours], cpu[theirs]))
        cpu_added = median(a - b for a, b in zip(cpu[ours], cpu[theirs]))
        judge(
            f"(a) happy path, {label}: wall",
            f"≤ {limit:.2f}× plain",
            f"{r:.3f}× ({median(wall[ours]):.0f} vs {median(wall[theirs]):.0f} µs/GET, "
            f"{added:+.1f} µs)",
            round(r, 2) <= limit,
        )
        judge(
            f"(a) happy path, {label}: client CPU",
            f"≤ {limit:.2f}× plain",
            f"{cpu_r:.3f}× ({median(cpu[ours]):.0f} vs {median(cpu[theirs]):.0f} µs/GET, "
            f"{cpu_added:+.1f} µs)",
            round(cpu_r, 2) <= limit,
        )
        happy_rows.append(
            [
                label,
                fmt(median(wall[theirs]), 1),
                fmt(median(wall[ours]), 1),
                f"{r:.3f}×",
                f"{added:+.1f}",
                fmt(median(cpu[theirs]), 1),
                fmt(median(cpu[ours]), 1),
                f"{cpu_r:.3f}×",
                f"{cpu_added:+.1f}",
            ]
        )
    rounds = len(wall["plain"])
    lap("a")

    # (b) threads
    thread_rows = []
    for count in (1, 4, 16, 64):
        clients = {name: _build_ours(name, count, 1.0) for name in ("plain", "resilient")}
        try:
            rates = interleaved(
                list(clients),
                sizes.thread_rounds,
                lambda name, _, c=clients, n=count: throughput(
                    c[name].get, upstream.url("/slow"), n, sizes.thread_warm, sizes.thread_window
                ),
            )
        finally:
            _close_all(clients)
        r = median(ratio(a, b) for a, b in zip(rates["resilient"], rates["plain"]))
        judge(
            f"(b) {count} thread{'s' if count > 1 else ''} × 20 ms calls",
            "≥ 1.00× plain",
            f"{r:.3f}× ({median(rates['resilient']):,.1f} vs {median(rates['plain']):,.1f} calls/s)",
            round(r, 2) >= 1.00,
        )
        thread_rows.append(
            [
                str(count),
                fmt(median(rates["plain"]), 1),
                fmt(median(rates["resilient"]), 1),
                f"{r:.3f}×",
            ]
        )

    lap("b")

    # (c) refusals
    small = dataclasses.replace(
        plan, fast_rounds=sizes.refusal_rounds, fast_batch=sizes.refusal_batch
    )
    kinds = {
        "breaker open": scenarios._breaker_open(upstream, small),
        "bulkhead full": scenarios._bulkhead_full(upstream, small),
        "throttled (adaptive throttling)": _local_refusals(upstream, sizes, "throttled"),
        "rate limited (max_wait=0)": _local_refusals(upstream, sizes, "rate-limited"),
    }
    refusal_rows = []
    for kind, samples in kinds.items():
        for name in ("resilient", "resilient-fast"):
            flat = [s for batch in samples[name] for s in batch]
            p50, p99 = percentile(flat, 50), percentile(flat, 99)
            judge(
                f"(c) {kind}, {PEER_LABELS[name]}",
                "p50 ≤ 5 µs, p99 ≤ 20 µs",
                f"p50 {p50:.1f} µs, p99 {p99:.1f} µs ({len(flat):,} calls)",
                p50 <= 5.0 and p99 <= 20.0,
            )
            refusal_rows.append(
                [
                    kind,
                    PEER_LABELS[name],
                    fmt(len(flat)),
                    fmt(p50, 1),
                    fmt(p99, 1),
                    fmt(median(percentile(b, 99) for b in samples[name]), 1),
                    fmt(max(flat) if flat else float("nan"), 0),
                ]
            )

    lap("c")

    # (d) import
    added, breakdown = _import_layers(sizes.import_rounds)
    by_importtime, by_cpu = median(added["importtime"]), median(added["cpu"])
    judge(
        "(d) `import resilient_requests` over `import requests`: -X importtime",
        "≤ +30 ms",
        f"{by_importtime:+.1f} ms (cumulative; median of {sizes.import_rounds} pairs of fresh "
        "interpreters)",
        by_importtime <= 30.0,
    )
    judge(
        "(d) `import resilient_requests` over `import requests`: CPU time",
        "≤ +30 ms",
        f"{by_cpu:+.1f} ms (`import requests` alone: {median(added['requests cpu']):.1f} ms; wall "
        f"{median(added['wall']):+.1f} ms)",
        by_cpu <= 30.0,
    )

    lap("d")

    section = Section(
        title="Layers: issue 15's performance goals",
        setup=(
            "ResilientSession() against plain requests.Session in the same run, interleaved round by "
            "round; every ratio is the median of per-round ratios. (a) "
            f"{rounds} rounds × {sizes.happy_batch} sequential keep-alive GETs of a "
            "2-byte body per contender; trust_env set on the session after construction. (b) "
            f"threads calling a route that answers after 20 ms, {sizes.thread_rounds} round(s) of "
            f"{sizes.thread_window:g} s after {sizes.thread_warm:g} s warm-up. (c) calls refused "
            f"locally, {sizes.refusal_rounds} rounds × {sizes.refusal_batch} per contender, timed "
            "one by one from the caller's side; breaker open and bulkhead full as in scenario 3. "
            f"(d) fresh interpreters, {sizes.import_rounds} rounds of each of `-X importtime` and "
            "an import timed inside the interpreter (`time.process_time`, `time.perf_counter`); "
            "bytecode cached. Ratios are judged at the "
            "2 decimals the goals are stated in (0.995× meets ≥ 1.00×)."
        ),
        goals=goals,
        tables=[
            Table(["measurement", "goal", "figure", "verdict"], rows, caption="Goals"),
            Table(
                [
                    "trust_env",
                    "plain µs/GET",
                    "ResilientSession µs/GET",
                    "ratio",
                    "µs added",
                    "plain CPU µs",
                    "ResilientSession CPU µs",
                    "CPU ratio",
                    "CPU µs added",
                ],
                happy_rows,
                caption="(a) Happy path: wall and client-thread CPU per GET (medians of rounds; "
                "ratios and differences: medians of per-round comparisons)",
            ),
            Table(
                ["threads", "plain calls/s", "ResilientSession calls/s", "ratio"],
                thread_rows,
                caption="(b) Throughput, 20 ms calls",
            ),
            Table(
                [
                    "refusal",
                    "contender",
                    "calls",
                    "p50 µs",
                    "p99 µs",
                    "median of round p99s",
                    "max µs",
                ],
                refusal_rows,
                caption="(c) Refused calls",
            ),
            breakdown,
        ],
        notes=[
            f"Environment: {len(os.environ)} variables; plain requests scans them for proxy "
            "settings on every call with trust_env=True.",
            "Client CPU is `time.thread_time` of the calling thread: the client's own work per GET, "
            "without the upstream's. The wall figures include ~100-200 µs of the upstream's Python "
            "HTTP server, which dilutes every wall ratio. On a loaded machine the CPU ratio is the "
            "stable figure (±0.02 between runs at load 8-13 on 2 cores, where the wall ratio "
            "moved ±0.05); the wall ratio is the one scenario 1 reports. Likewise for imports: "
            "`-X importtime` is wall time (+34 to +99 ms in three quick runs at load 7-14), the "
            "import's CPU time moved by a few ms.",
            "Throttled: adaptive throttling (`ThrottleConfig(enabled=True)`) after the origin "
            "answered only 503s, one attempt per call and a breaker that cannot open; only the calls "
            "refused with ThrottledError are timed. Rate limited: `RateLimitConfig(rate=1, "
            "per=3600, max_wait=0)` after its one permit was spent.",
            "Seconds per part: " + ", ".join(f"({k}) {v:.1f}" for k, v in spent.items()) + ".",
        ],
    )
    print(
        "[bench] layers:\n" + section.tables[0].render() + "\n" + section.notes[-1],
        file=sys.stderr,
        flush=True,
    )
    return section
