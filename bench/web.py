"""Scenario: a hung dependency behind a threaded web app (real gunicorn, gthread 2 x 8).

Each variant of ``bench/web_app.py`` (how ``/checkout`` calls the dependency) is
served by its own ``gunicorn --worker-class gthread --workers 2 --threads 8``.
``clients`` threads call ``/checkout`` in a loop (plain ``requests``, a fresh
connection per call as nginx proxies by default, 10 s timeout, a short pause
between calls); ``/health`` (no I/O) is probed 5 times
a second on a fixed schedule, each probe on a fresh connection in a thread of its
own, so a slow probe never delays the next. The dependency is a route of the
bench's upstream (a ``FaultServer`` in its own process): it answers 200 after
5 ms, then hangs (``Hang``: no reply; a hung request is held until its client gives
up or for ``HANG_LIMIT`` s, then its connection is closed without a reply), then
answers again. Variants run one after the other, in the order of ``VARIANTS``.

Run on its own (prints the section's Markdown, writes the plot)::

    python -m bench.web [--quick] [--out DIR]

Every gunicorn, thread and (when run on its own) upstream it starts is stopped
before it returns, also on errors. Traffic goes only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Dict, List, Optional, Sequence

import matplotlib.pyplot as plt
import requests

import resilient_requests as rr
from resilient_requests.testing import Hang, ok

from . import plots  # matplotlib.use("Agg"): files only
from .plan import FULL, QUICK, Plan
from .report import Goal, Section, Table, fmt
from .stats import load_average, percentile, sleep_until
from .upstream import Upstream
from .web_app import DEPENDENCY_ENV, VARIANT_ENV, VARIANTS

__all__ = ["web_views", "WebPlan", "WEB_FULL", "WEB_QUICK", "main"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = "python -m bench.web"

LABELS = {
    "plain": "plain requests, no timeout",
    "plain_timeout": "plain requests, `timeout=5`",
    "defaults": "`ResilientSession()` (defaults)",
    "extension": "Flask extension, no configuration",
    "web": '`ResilientSession(preset("web"))`',
}
COLOURS = {
    "plain": "#444444",
    "plain_timeout": "#1f77b4",
    "defaults": "#d62728",
    "extension": "#2ca02c",
    "web": "#9467bd",
}

WORKERS, THREADS = 2, 8
HEALTHY = ok(b"paid", delay=0.005)
#: The longest the dependency holds a hung request (then it drops the connection).
HANG_LIMIT = 10.0
CLIENT_TIMEOUT = 10.0  # each /checkout call of the load
PROBE_EVERY = 0.2  # /health, 5 times a second
PROBE_TIMEOUT = 30.0
GRACE = 1.5  # after the last phase: calls and probes still unanswered then count as unanswered
BIN = 0.5  # s: the resolution of "back to >= 95 %"
BACK_SHARE = 0.95
HEALTH_GOAL = 0.5  # s: /health p99 while the dependency hangs
RECOVERY_SLACK = 4.0  # s beyond the web preset's recovery time (as tests/test_web_workers.py)
START_LIMIT = 30.0  # s for gunicorn to answer /health


@dataclass(frozen=True)
class WebPlan:
    """Sizes of this scenario (durations in seconds); picked by the bench plan's name."""

    clients: int  # threads calling /checkout
    think: float  # a client's pause between calls
    healthy: float
    hang: float
    after: float


WEB_FULL = WebPlan(clients=32, think=0.1, healthy=3.0, hang=15.0, after=15.0)
WEB_QUICK = WebPlan(clients=24, think=0.1, healthy=0.5, hang=4.0, after=6.5)


def web_plan(plan: Plan) -> WebPlan:
    return WEB_QUICK if plan.name == QUICK.name else WEB_FULL


# -- gunicorn ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Gunicorn:
    """``gunicorn --worker-class gthread --workers 2 --threads 8 'bench.web_app:make_app()'``
    for one variant; a context manager that always stops it."""

    def __init__(self, variant: str, dependency: str) -> None:
        self.variant = variant
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESILIENT_REQUESTS_")}
        env.update({VARIANT_ENV: variant, DEPENDENCY_ENV: dependency, "NO_PROXY": "127.0.0.1"})
        env.pop("HTTP_PROXY", None)
        env.pop("http_proxy", None)
        self._log: IO[bytes] = tempfile.TemporaryFile()
        self._final_log = ""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--worker-class", "gthread",
             "--workers", str(WORKERS), "--threads", str(THREADS),
             "--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "2",
             "--log-level", "warning", "bench.web_app:make_app()"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
        )

    def __enter__(self) -> "Gunicorn":
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_LIMIT
        for _ in range(int(START_LIMIT / 0.1) + 1):
            try:
                if requests.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn ({self.variant}) did not start: {self.log()[-2000:]}")

    def get(self, path: str) -> str:
        return requests.get(self.base + path, timeout=5).text

    def log(self) -> str:
        """What gunicorn wrote to stderr (all of it, once stopped)."""
        if self._log.closed:
            return self._final_log
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> None:
        """SIGTERM (the workers get 2 s to finish), then SIGKILL; idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if not self._log.closed:
            self._final_log = self.log()
            self._log.close()


# -- traffic ----------------------------------------------------------------------


@dataclass
class Call:
    """One /checkout call or /health probe (``time.monotonic()`` instants)."""

    start: float
    end: Optional[float] = None  # None: no answer by the end of the run
    status: int = 0  # 0: no answer (timeout, dropped connection, cut off)
    error: str = ""  # the exception, or the start of a non-200 answer's body

    def latency(self, cut: float) -> float:
        """Seconds taken; for one unanswered by ``cut``, the time it had waited by then."""
        return (self.end if self.end is not None else cut) - self.start

    @property
    def answered(self) -> bool:
        return self.end is not None and self.status != 0


def _timed_get(session: requests.Session, url: str, timeout: float, call: Call) -> None:
    try:
        response = session.get(url, timeout=timeout)
    except requests.RequestException as error:
        call.error = type(error).__name__
        call.end = time.monotonic()
        return
    call.status, call.end = response.status_code, time.monotonic()
    if response.status_code != 200:
        call.error = response.text[:80]


def _get(url: str, timeout: float, call: Call) -> None:
    """One GET on a fresh connection (as nginx proxies by default: no upstream keep-alive)."""
    with requests.Session() as session:
        session.trust_env = False
        _timed_get(session, url, timeout, call)


def _client(base: str, stop: threading.Event, stop_at: float, think: float, sink: List[Call]) -> None:
    for _ in range(int((stop_at - time.monotonic()) / think) + 10):
        if stop.is_set() or time.monotonic() >= stop_at:
            break
        call = Call(time.monotonic())
        sink.append(call)
        _get(base + "/checkout", CLIENT_TIMEOUT, call)
        stop.wait(think)


def _probe(base: str, call: Call) -> None:
    _get(base + "/health", PROBE_TIMEOUT, call)


def _prober(base: str, stop: threading.Event, began: float, stop_at: float, sink: List[Call],
            threads: List[threading.Thread]) -> None:
    for number in range(int((stop_at - began) / PROBE_EVERY) + 1):
        moment = began + number * PROBE_EVERY
        if moment >= stop_at or stop.wait(max(0.0, moment - time.monotonic())):
            break
        call = Call(time.monotonic())
        sink.append(call)
        thread = threading.Thread(target=_probe, args=(base, call), name="web-probe", daemon=True)
        threads.append(thread)
        thread.start()


@dataclass
class Run:
    """One variant through healthy, hang, back."""

    variant: str
    bulkhead: str
    checkouts: List[Call]
    probes: List[Call]
    began: float
    down: float
    up: float
    end: float  # the last phase ended: no call or probe started after it
    after: float  # s planned from up to end
    cut: float  # calls and probes unanswered by now count as unanswered
    hits: Dict[str, int] = field(default_factory=dict)  # the dependency's counter at began/down/up/end
    log_tail: str = ""


def _run(upstream: Upstream, variant: str, wplan: WebPlan) -> Run:
    path = f"/web/{variant}/pay"
    upstream.route(path, HEALTHY)
    checkouts: List[List[Call]] = [[] for _ in range(wplan.clients)]
    probes: List[Call] = []
    probe_threads: List[threading.Thread] = []
    stop = threading.Event()
    threads: List[threading.Thread] = []
    hits: Dict[str, int] = {}
    with Gunicorn(variant, upstream.url(path)) as server:
        try:
            bulkhead = server.get("/bulkhead")
            if server.get("/checkout") != "paid":
                raise RuntimeError(f"{variant}: /checkout does not work before the run")
            began = time.monotonic()
            stop_at = began + wplan.healthy + wplan.hang + wplan.after
            hits["began"] = upstream.hits(path)
            threads = [
                threading.Thread(target=_client, args=(server.base, stop, stop_at, wplan.think, sink),
                                 name="web-client", daemon=True)
                for sink in checkouts
            ]
            threads.append(threading.Thread(target=_prober, name="web-prober", daemon=True,
                                            args=(server.base, stop, began, stop_at, probes, probe_threads)))
            for thread in threads:
                thread.start()
            sleep_until(began + wplan.healthy)
            hits["down"] = upstream.hits(path)
            down = upstream.switch(path, Hang(limit=HANG_LIMIT))
            sleep_until(down + wplan.hang)
            hits["up"] = upstream.hits(path)
            up = upstream.switch(path, HEALTHY)
            sleep_until(stop_at)
            end = time.monotonic()
            hits["end"] = upstream.hits(path)
            stop.set()
            grace_until = end + GRACE
            for thread in threads + list(probe_threads):
                thread.join(timeout=max(0.0, grace_until - time.monotonic()))
            cut = time.monotonic()
        finally:
            stop.set()
            server.stop()  # whatever is still in flight fails now
            join_until = time.monotonic() + 10
            for thread in threads + list(probe_threads):
                thread.join(timeout=max(0.0, join_until - time.monotonic()))
        log = server.log()
    calls = sorted((c for sink in checkouts for c in sink), key=lambda c: c.start)
    for call in calls + probes:  # answers that came only because gunicorn stopped
        if call.end is None or call.end > cut:
            call.end, call.status, call.error = None, 0, call.error or "no answer by the end"
    return Run(variant, bulkhead, calls, sorted(probes, key=lambda c: c.start), began, down, up, end,
               wplan.after, cut, hits, "\n".join(log.strip().splitlines()[-5:]))


# -- figures ----------------------------------------------------------------------


@dataclass
class Figures:
    health_p50: float
    health_p99: float
    health_censored: bool  # the p99 is a lower bound: unanswered probes reached it
    health_unanswered: int
    health_probes: int
    healthy_p99: float  # /health before the hang
    hang_requests: int  # the dependency received while it hung
    checkout_hang: Dict[str, int]  # /checkout calls started during the hang, by outcome
    breaker_opened: Optional[float]  # s from the hang's start to the first answer "breaker open"
    shares: List[Optional[float]]  # per 1 s after the dependency is back: success share
    back_after: Optional[float]  # s after the dependency is back until every BIN is >= 95 %


OUTCOMES = ("200", "502", "503 bulkhead", "503 breaker", "no answer")


def _outcome(call: Call) -> str:
    """One of OUTCOMES (or another status): 503s by the exception the app caught."""
    if call.status == 503 and "PoolTimeoutError" in call.error:
        return "503 bulkhead"
    if call.status == 503 and "CircuitOpenError" in call.error:
        return "503 breaker"
    return str(call.status) if call.status else "no answer"


def _shares(run: Run, width: float) -> List[Optional[float]]:
    """Success share of the /checkout calls started in each ``width`` s after ``up``
    (None where no call started: every client was still waiting)."""
    count = int(run.after / width + 1e-9)  # whole bins only
    started: List[List[Call]] = [[] for _ in range(count)]
    for call in run.checkouts:
        if run.up <= call.start < run.up + count * width:
            started[int((call.start - run.up) / width)].append(call)
    return [sum(c.status == 200 for c in calls) / len(calls) if calls else None for calls in started]


def figures(run: Run) -> Figures:
    during = [p for p in run.probes if run.down <= p.start < run.up]
    latencies = sorted(p.latency(run.cut) for p in during)
    unanswered = [p for p in during if not (p.answered and p.status == 200)]
    # the p99 is a lower bound when an unanswered probe had waited at least as long
    p99 = percentile(latencies, 99)
    censored = any(p.end is None and p.latency(run.cut) >= p99 * 0.999 for p in unanswered)
    healthy = [p.latency(run.cut) for p in run.probes if p.start < run.down]
    outcomes: Dict[str, int] = {}
    for call in run.checkouts:
        if run.down <= call.start < run.up:
            outcomes[_outcome(call)] = outcomes.get(_outcome(call), 0) + 1
    refused = [c.end for c in run.checkouts
               if c.end is not None and c.end >= run.down and _outcome(c) == "503 breaker"]
    fine = _shares(run, BIN)
    low = [i for i, share in enumerate(fine) if share is None or share < BACK_SHARE]
    back_after: Optional[float] = 0.0  # every bin >= 95 %
    if low:  # after the last bin below 95 %; None if that is the run's last
        back_after = None if low[-1] == len(fine) - 1 else (low[-1] + 1) * BIN
    return Figures(
        health_p50=percentile(latencies, 50),
        health_p99=p99,
        health_censored=censored,
        health_unanswered=len(unanswered),
        health_probes=len(during),
        healthy_p99=percentile(healthy, 99),
        hang_requests=run.hits["up"] - run.hits["down"],
        checkout_hang=outcomes,
        breaker_opened=min(refused) - run.down if refused else None,
        shares=_shares(run, 1.0),
        back_after=back_after,
    )


def _seconds(value: float, lower_bound: bool = False) -> str:
    text = f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
    return ("≥ " if lower_bound else "") + text


def _back(value: Optional[float], wplan: WebPlan) -> str:
    if value is None:
        return f"not within {wplan.after:g} s"
    return "at once" if value == 0 else _seconds(value)


def _share(value: Optional[float]) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _recovery_timeout() -> float:
    return rr.preset("web").circuit_breaker.recovery_timeout


# -- the plot ---------------------------------------------------------------------


def timeline(runs: Sequence[Run], path: str) -> str:
    """Per variant: each /health probe's latency at its start (unanswered ones as
    crosses at the time they had waited), and /checkout's success share per 0.5 s
    (right axis), with the hang shaded."""
    figure, panels = plt.subplots(len(runs), 1, figsize=(9, 1.9 * len(runs)), sharex=True,
                                  sharey=True, squeeze=False)
    for axes, run in zip(panels[:, 0], runs):
        fine = _shares(run, BIN)
        answered = [p for p in run.probes if p.answered and p.status == 200]
        missing = [p for p in run.probes if not (p.answered and p.status == 200)]
        axes.axvspan(0, run.up - run.down, color="#d62728", alpha=0.08, label="dependency hangs")
        axes.axhline(HEALTH_GOAL, color="#999999", linestyle=":", linewidth=0.8)
        axes.scatter([p.start - run.down for p in answered], [max(p.latency(run.cut), 1e-3) for p in answered],
                     s=5, color=COLOURS[run.variant], label="/health answered")
        axes.scatter([p.start - run.down for p in missing], [max(p.latency(run.cut), 1e-3) for p in missing],
                     s=14, marker="x", color="#d62728", label="/health unanswered")
        axes.set_yscale("log")
        axes.set_ylim(1e-3, PROBE_TIMEOUT * 1.5)
        axes.set_ylabel("/health s", fontsize=8)
        axes.set_title(f"{LABELS[run.variant].replace('`', '')} (bulkhead {run.bulkhead})", fontsize=9, loc="left")
        share = axes.twinx()
        share.step([run.up - run.down + BIN * (i + 1) for i in range(len(fine))],
                   [100 * (s or 0.0) for s in fine], where="pre", color="#ff7f0e", linewidth=1.0,
                   label="/checkout success % (by start, per 0.5 s)")
        share.set_ylim(-5, 105)
        share.set_ylabel("/checkout ok %", fontsize=8)
        if axes is panels[0, 0]:
            handles, names = axes.get_legend_handles_labels()
            more, more_names = share.get_legend_handles_labels()
    panels[-1, 0].set_xlabel("seconds since the dependency began to hang")
    figure.suptitle(f"/health latency under gunicorn gthread {WORKERS}x{THREADS} while /checkout's "
                    "dependency hangs, and /checkout's recovery", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    figure.legend(handles + more, names + more_names, loc="upper center", ncol=4, fontsize=7,
                  markerscale=1.5, bbox_to_anchor=(0.5, 0.965), frameon=False)
    return plots._save(figure, path)


# -- the section ------------------------------------------------------------------


def web_views(upstream: Optional[Upstream], plan: Plan, plot_dir: str) -> Section:
    """Every variant through healthy, hang and back; the upstream is started here if None."""
    if upstream is None:
        with Upstream(lifetime=900) as own:
            return web_views(own, plan, plot_dir)
    wplan = web_plan(plan)
    runs: List[Run] = []
    started: Dict[str, float] = {}
    for variant in VARIANTS:
        print(f"[bench.web] {variant} …", file=sys.stderr, flush=True)
        started[variant] = time.monotonic()
        runs.append(_run(upstream, variant, wplan))
        started[variant] = time.monotonic() - started[variant]
    figs = {run.variant: figures(run) for run in runs}
    plot = timeline(runs, os.path.join(plot_dir, "web_health.png"))
    return _section(runs, figs, wplan, plot, started)


def _section(runs: List[Run], figs: Dict[str, Figures], wplan: WebPlan, plot: str,
             seconds: Dict[str, float]) -> Section:
    recovery = _recovery_timeout()
    headers = [
        "variant", "bulkhead slots per worker", "`/health` p50 / p99 while the dependency hangs",
        "`/health` probes unanswered (hang)",
        "`/checkout` calls started during the hang: " + " / ".join(OUTCOMES),
        "first breaker refusal, s into the hang",
        "requests the dependency received during the hang",
        f"`/checkout` back to ≥ {BACK_SHARE:.0%} success after",
    ]
    rows = []
    for run in runs:
        f = figs[run.variant]
        c = f.checkout_hang
        other = ", ".join(f"{n} × {k}" for k, n in sorted(c.items()) if k not in OUTCOMES)
        rows.append([
            LABELS[run.variant],
            run.bulkhead,
            f"{_seconds(f.health_p50)} / {_seconds(f.health_p99, f.health_censored)}",
            f"{f.health_unanswered} of {f.health_probes}",
            " / ".join(fmt(c.get(k, 0)) for k in OUTCOMES) + (f" (+ {other})" if other else ""),
            "–" if f.breaker_opened is None else f"{f.breaker_opened:.1f}",
            fmt(f.hang_requests),
            _back(f.back_after, wplan),
        ])
    seconds_count = max(len(f.shares) for f in figs.values())
    per_second = Table(
        ["variant"] + [f"{i + 1}" for i in range(seconds_count)],
        [[LABELS[run.variant]] + [_share(s) for s in figs[run.variant].shares] for run in runs],
        caption=("`/checkout` success share of the calls started in each second after the dependency is back "
                 "(– : no call started, every client was still waiting)"),
    )
    ext = figs["extension"]
    goals = [
        Goal(f"Flask extension, no configuration: `/health` p99 ≤ {HEALTH_GOAL:g} s and every probe answered "
             "while the dependency hangs",
             ext.health_p99 <= HEALTH_GOAL and ext.health_unanswered == 0,
             f"p99 {_seconds(ext.health_p99, ext.health_censored)}, {ext.health_unanswered} of "
             f"{ext.health_probes} unanswered"),
        Goal(f"Flask extension, no configuration: `/checkout` back to ≥ {BACK_SHARE:.0%} success within the "
             f"recovery time + {RECOVERY_SLACK:g} s ({recovery + RECOVERY_SLACK:g} s)",
             ext.back_after is not None and ext.back_after <= recovery + RECOVERY_SLACK,
             _back(ext.back_after, wplan)),
    ]
    odd = [f"{LABELS[r.variant]}: gunicorn said: `{r.log_tail}`" for r in runs if r.log_tail.strip()]
    return Section(
        title="13. Web views: a hung dependency behind gunicorn gthread",
        setup=(
            f"A Flask app (`bench/web_app.py`) under a real `gunicorn --worker-class gthread --workers {WORKERS} "
            f"--threads {THREADS}`, one gunicorn per variant, variants one after the other. `/checkout` calls the "
            f"dependency through the variant's client; `/health` does no I/O. {wplan.clients} client threads call "
            f"`/checkout` (plain requests, a fresh connection per call as nginx proxies by default, {CLIENT_TIMEOUT:g} s timeout, {wplan.think * 1000:g} ms "
            f"between calls); `/health` is probed every {PROBE_EVERY:g} s on a fixed schedule, each probe on a "
            f"fresh connection with a {PROBE_TIMEOUT:g} s timeout. The dependency (a route of the bench's "
            f"upstream, a `FaultServer` in its own process) answers 200 after 5 ms for {wplan.healthy:g} s, then "
            f"hangs for {wplan.hang:g} s (`Hang(limit={HANG_LIMIT:g})`: no reply; each hung request is dropped "
            f"without a reply after {HANG_LIMIT:g} s or when its client gives up), then answers again for "
            f"{wplan.after:g} s. Calls and probes not answered {GRACE:g} s after that count as unanswered "
            "(a p99 marked ≥ is a lower bound: those probes had waited that long and still had no answer). "
            "\"Back to ≥ 95 %\": from then on, every 0.5 s of calls started after the dependency is back "
            f"has ≥ 95 % answered 200. One round per variant (`{COMMAND}`)."
        ),
        goals=goals,
        tables=[Table(headers, rows), per_second],
        plots=[plot],
        notes=[
            "Plain requests with no timeout hold a worker thread as long as the dependency holds the request "
            f"({HANG_LIMIT:g} s here; for ever with one that never drops it); `timeout=5` holds it 5 s. Either "
            f"way all {WORKERS * THREADS} threads fill at once, and `/health` waits in gunicorn's queue behind "
            "`/checkout` calls — among them calls whose client has already given up, which gthread still runs. "
            "A gthread worker keeps accepting connections with every thread busy, so a probe can land on a "
            "stuck worker however free the other is.",
            "`ResilientSession()` with the defaults waits up to 30 s per read with 50 slots per dependency, "
            f"so its calls hold threads until the dependency drops them ({HANG_LIMIT:g} s here); only those "
            "failures open its breaker, which then stays open for its 30 s recovery time, well past the "
            "dependency's return.",
            "The web preset (extension, and `preset(\"web\")`): each attempt reads for at most 2 s, 4 slots "
            "per dependency and worker, a slot waited for 50 ms, a breaker open for 5 s after 5 failures. "
            "With 4 slots, the first 4 timed-out attempts do not reach the threshold of 5: the breaker opens "
            "with the retries' failures, about one deadline (4 s) into the hang. Until then a refused call "
            "holds one of the free threads for its 50 ms wait, which can lift `/health` by tens of ms in the "
            "first seconds of the hang; after it opens, refusals are immediate.",
            f"The extension with no configuration sizes the bulkhead to half the worker's threads "
            f"({THREADS} → {THREADS // 2}); `preset(\"web\")` built in code keeps the preset's own "
            f"{rr.preset('web').bulkhead.max_concurrency} slots, as nothing sizes it. With {THREADS} threads "
            "that is the same number, so those two rows differ only by noise; with `--threads 16` the "
            "extension would give 8 and the session in code would still have 4.",
            "Breakers and bulkheads are per worker process: each of the 2 workers opens and recovers its own, "
            "so recovery can show as about half the calls succeeding for a moment.",
            "Each variant ran "
            + ", ".join(f"{LABELS[v].replace('`', '')} {s:.0f} s" for v, s in seconds.items())
            + " (gunicorn start and stop included). `/health` p99 before the hang (the CPU's noise floor): "
            + ", ".join(f"{LABELS[r.variant].replace('`', '')} {_seconds(figs[r.variant].healthy_p99)}" for r in runs)
            + ".",
            *odd,
        ],
    )


# -- on its own -------------------------------------------------------------------


def _source_digest() -> str:
    """A short hash of resilient_requests/*.py (as ``python -m bench`` reports it)."""
    digest = hashlib.sha256()
    folder = os.path.join(ROOT, "resilient_requests")
    for path in sorted(glob.glob(os.path.join(folder, "**", "*.py"), recursive=True)):
        digest.update(path.encode())
        with open(path, "rb") as source:
            digest.update(source.read())
    return digest.hexdigest()[:12]


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, under a minute")
    parser.add_argument("--out", default=None, help="folder for plots/web_health.png (default: a temporary one)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    out = args.out or tempfile.mkdtemp(prefix="bench-web-")
    plot_dir = os.path.join(out, "bench", "plots") if os.path.abspath(out) == ROOT else os.path.join(out, "plots")
    # SIGTERM (and SIGINT, also where a shell ignores it) unwinds, so gunicorn and the upstream are stopped
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _interrupted)
    started, load, source = time.monotonic(), load_average(), _source_digest()
    section = web_views(None, plan, plot_dir)
    section.seconds = time.monotonic() - started
    section.load = f"{load:.2f} → {load_average():.2f} ({os.cpu_count()} cores)"
    after = _source_digest()
    section.notes.append(f"resilient_requests/ sources digest {source}"
                         + ("" if after == source else f" at the start, {after} at the end (changed during the run)"))
    print(section.render(base=out))
    print(f"[bench.web] plot: {section.plots[0]}; {section.seconds:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
