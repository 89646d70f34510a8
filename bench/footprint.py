"""Scenarios 6 and 7: memory and leaks over many calls, and import time.

Both run in fresh interpreters so that nothing else the benchmark did shows up
in their figures. Scenario 6's child is this module::

    python -m bench.footprint memory NAME URL CALLS   # prints one JSON line
"""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Sequence, Tuple

from .report import Goal, Section, Table, fmt
from .stats import interleaved, median, open_fds, peak_rss_kib, rss_kib, thread_names

__all__ = ["memory", "import_time"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEMORY_CONTENDERS = ("plain", "resilient", "resilient-fast")
#: RSS growth after warm-up that still counts as flat.
FLAT_KIB = 2048


# -- 6. memory and leaks -----------------------------------------------------


def _memory_child(name: str, url: str, calls: int) -> Dict[str, Any]:
    """In the child: ``calls`` GETs through one session, /proc read along the way."""
    from .contenders import build

    before = {"threads": thread_names(), "fds": open_fds(), "rss": rss_kib()}
    client = build(name)
    warm = max(1000, calls // 20)
    every = max(1, calls // 50)
    samples: List[Tuple[int, int]] = []
    failures = 0
    for number in range(1, calls + 1):
        if client.get(url).status_code != 200:
            failures += 1
        if number >= warm and (number - warm) % every == 0:
            samples.append((number, rss_kib()))
    samples.append((calls, rss_kib()))
    cyclic = _cyclic_garbage(client, url, 200)
    for _ in range(20):  # ordinary calls again, so close() meets the usual state
        client.get(url)
    open_ = {"threads": thread_names(), "fds": open_fds(), "peak": peak_rss_kib()}
    client.close()
    # The deadline watchdog exits after 1 s idle, which starts when it next wakes
    # and finds only cancelled deadlines (at most 1 s later): wait up to 3 s.
    ends = time.monotonic() + 3.0
    while len(thread_names()) > len(before["threads"]) and time.monotonic() < ends:
        time.sleep(0.05)
    after = {"threads": thread_names(), "fds": open_fds()}
    gc.collect()
    collected = {"threads": thread_names(), "fds": open_fds()}
    return {
        "before": before,
        "open": open_,
        "after": after,
        "collected": collected,
        "samples": samples,
        "failures": failures,
        "cyclic": cyclic,
    }


def _cyclic_garbage(client: Any, url: str, calls: int) -> float:
    """Objects per call that only the cyclic garbage collector frees (reference
    cycles): counted with the collector paused around ``calls`` GETs."""
    gc.collect()
    gc.disable()
    try:
        for _ in range(calls):
            client.get(url)
    finally:
        found = gc.collect()
        gc.enable()
    return found / calls


def _slope_per_10k(samples: Sequence[Sequence[int]]) -> float:
    """KiB of RSS per 10,000 calls, least squares over the post-warm-up samples."""
    xs, ys = [s[0] for s in samples], [s[1] for s in samples]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return (
        sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread * 10_000
        if spread
        else 0.0
    )


def _cycle_note(cyclic: Dict[str, float]) -> List[str]:
    """What the cyclic-garbage column means, when the library leaves any."""
    ours = {name: n for name, n in cyclic.items() if name != "plain" and n >= 1}
    if not ours:
        return []
    return [
        f"ResilientSession leaves {max(ours.values()):.0f} objects per call that only the cyclic garbage "
        f"collector frees (plain requests: {cyclic.get('plain', 0):.0f}): the response, its urllib3 "
        "response and socket file, the prepared request and more sit in a reference cycle "
        "(`_Hop.last` → `Outcome`, `Outcome.attempts` → `_Hop`, made in `pipeline._Hop.attempt`). "
        "Memory stays bounded, but it is reclaimed by GC passes rather than on the last reference, "
        "and the last response's socket can stay open after `close()` until the next collection "
        "(the fds column before and after `gc.collect()`)."
    ]


def _run_child(name: str, url: str, calls: int) -> Dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.footprint", "memory", name, url, str(calls)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=max(120, calls * 0.005),
    )
    if completed.returncode != 0:
        raise RuntimeError(f"memory child {name} failed: {completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def memory(url: str, calls: int) -> Section:
    """RSS, threads and fds around ``calls`` GETs, a fresh process per contender."""
    from .contenders import LABELS

    rows, goals, cyclic = [], [], {}
    for name in MEMORY_CONTENDERS:
        result = _run_child(name, url, calls)
        cyclic[name] = result["cyclic"]
        first, last = result["samples"][0][1], result["samples"][-1][1]
        growth, slope = last - first, _slope_per_10k(result["samples"])
        before, after, collected = result["before"], result["after"], result["collected"]
        leaked = set(collected["threads"]) - set(before["threads"])
        rows.append(
            [
                LABELS[name],
                fmt(calls),
                fmt(before["rss"] / 1024, 1),
                fmt(first / 1024, 1),
                fmt(result["open"]["peak"] / 1024, 1),
                f"{growth:+,} KiB",
                f"{slope:+,.0f} KiB",
                f"{len(before['threads'])} → {len(result['open']['threads'])} → {len(after['threads'])} "
                f"→ {len(collected['threads'])}",
                f"{before['fds']} → {result['open']['fds']} → {after['fds']} → {collected['fds']}",
                fmt(result["cyclic"], 1),
                fmt(result["failures"]),
            ]
        )
        if name != "plain":
            goals.append(
                Goal(
                    f"{LABELS[name]}: RSS flat after warm-up (≤ {FLAT_KIB // 1024} MiB growth), "
                    "no thread or fd left once closed",
                    growth <= FLAT_KIB and not leaked and collected["fds"] <= before["fds"],
                    f"{growth:+,} KiB; threads {len(before['threads'])}→{len(collected['threads'])}, "
                    f"fds {before['fds']}→{after['fds']} after close(), →{collected['fds']} after gc",
                )
            )
    headers = [
        "contender",
        "calls",
        "RSS before MiB",
        "RSS after warm-up MiB",
        "peak RSS MiB",
        "growth after warm-up",
        "slope per 10k calls",
        "threads before → open → closed → gc",
        "fds before → open → closed → gc",
        "objects per call left to the cyclic GC",
        "failed",
    ]
    return Section(
        title="6. Memory and leaks",
        setup=(
            f"{calls:,} keep-alive GETs through one session, each contender in a fresh interpreter "
            "(`python -m bench.footprint memory …`). RSS from /proc/self/status (VmRSS, peak VmHWM), "
            "sampled 50 times after a warm-up of max(1,000, 5%) calls; threads from "
            "`threading.enumerate()`, fds from /proc/self/fd, read before the session is made, after the "
            "last call, after `close()` (once the thread count is back, or 3 s), and after a `gc.collect()`."
        ),
        goals=goals,
        tables=[Table(headers, rows)],
        notes=[
            "fast_microservice sets a total deadline, so its calls start the deadline watchdog thread; "
            "it exits 1-2 s after the last deadline (1 s idle, counted from its next wake-up).",
            *_cycle_note(cyclic),
        ],
    )


# -- 7. import time ----------------------------------------------------------

MODULES = ("pass", "requests", "resilient_requests")
_IMPORTTIME = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def _code(module: str) -> str:
    return "pass" if module == "pass" else f"import {module}"


def _environ() -> Dict[str, str]:
    """The children's environment: bytecode cached (in a folder of our own), as
    in any installed copy. This workplace sets PYTHONDONTWRITEBYTECODE, which
    would make every run compile resilient_requests from source."""
    environ = dict(os.environ)
    environ.pop("PYTHONDONTWRITEBYTECODE", None)
    environ["PYTHONPYCACHEPREFIX"] = _PYCACHE
    return environ


_PYCACHE = os.path.join(tempfile.gettempdir(), "bench-import-pycache")


def _wall(module: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _code(module)], cwd=ROOT, check=True, timeout=60, env=_environ()
    )
    return (time.perf_counter() - started) * 1000


def _importtime(module: str) -> Dict[str, Tuple[int, int, str]]:
    """``-X importtime``: {module: (self µs, cumulative µs, the module that imported it)}."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _code(module)],
        env=_environ(),
        cwd=ROOT,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    lines = [
        (len(m.group(3)), m.group(4), int(m.group(1)), int(m.group(2)))
        for m in _IMPORTTIME.finditer(completed.stderr)
    ]
    table = {}
    for index, (depth, name, own, cumulative) in enumerate(lines):
        # Lines come children first: the importer is the next line less indented.
        parent = next((other for d, other, _, _ in lines[index + 1 :] if d < depth), "-")
        table[name] = (own, cumulative, parent)
    return table


#: Subtrees worth naming in the breakdown even when their own time is small.
SUBTREES = (
    "resilient_requests.retry",
    "backoff",
    "asyncio",
    "redis",
    "pybreaker",
    "dataclasses",
    "inspect",
    "resilient_requests.config",
    "resilient_requests.breaker",
    "resilient_requests.pipeline",
)


def _extra_modules(
    ours: List[Dict[str, Tuple[int, int, str]]], theirs: List[Dict[str, Tuple[int, int, str]]]
) -> Table:
    """Modules that ``import resilient_requests`` loads and ``import requests`` does not:
    the largest by own time, plus the named subtrees; medians over the runs."""
    seen_by_requests = set().union(*theirs)
    names = set().union(*ours) - seen_by_requests

    def med(name: str, index: int) -> float:
        return median(run[name][index] for run in ours if name in run) / 1000

    top = sorted(names, key=lambda name: -med(name, 0))[:8]
    chosen = top + [name for name in SUBTREES if name in names and name not in top]

    def importer(name: str) -> str:
        return next(run[name][2] for run in ours if name in run)

    rows = [
        [f"`{name}`", f"`{importer(name)}`", fmt(med(name, 0), 2), fmt(med(name, 1), 2)]
        for name in sorted(chosen, key=lambda name: -med(name, 1))
    ]
    return Table(
        [
            "module (loaded by resilient_requests, not by requests)",
            "imported by",
            "own ms",
            "cumulative ms",
        ],
        rows,
        caption="Where the extra time goes (`-X importtime`, medians; cumulative figures nest)",
    )


def import_time(rounds: int) -> Section:
    """Fresh-interpreter import cost of requests and of resilient_requests."""
    for module in MODULES:  # compile and cache the bytecode, warm the disk cache
        _wall(module)
    walls = interleaved(MODULES, rounds, lambda module, _: _wall(module))
    tables = interleaved(MODULES[1:], rounds, lambda module, _: _importtime(module))
    cumulative = {
        module: median(t.get(module, (0, 0))[1] / 1000 for t in runs)
        for module, runs in tables.items()
    }
    start = median(walls["pass"])
    rows = [
        [
            module if module != "pass" else "(interpreter only: `-c pass`)",
            fmt(median(walls[module]), 1),
            fmt(median(walls[module]) - start, 1),
            fmt(cumulative[module], 1) if module in cumulative else "–",
        ]
        for module in MODULES
    ]
    added = median(walls["resilient_requests"]) - median(walls["requests"])
    return Section(
        title="7. Import time",
        setup=(
            f"Fresh interpreters (`{os.path.basename(sys.executable)} -c 'import X'`), {rounds} interleaved "
            "rounds, medians. Wall time includes interpreter start-up, shown on its own in the first row; "
            "`-X importtime` gives the module's own cumulative figure. Bytecode is cached (in a "
            "folder of the benchmark's, `PYTHONPYCACHEPREFIX`) as in any installed copy; the first "
            "run of each, which compiles it, is not counted."
        ),
        goals=[
            Goal(
                "resilient_requests adds little over requests (no target set; reported)",
                None,
                f"+{added:.1f} ms wall, "
                f"+{cumulative['resilient_requests'] - cumulative['requests']:.1f} ms by -X importtime",
            )
        ],
        tables=[
            Table(
                ["module", "wall ms", "wall minus start-up ms", "-X importtime cumulative ms"], rows
            ),
            _extra_modules(tables["resilient_requests"], tables["requests"]),
        ],
        notes=_import_notes(tables["resilient_requests"]),
    )


def _import_notes(ours: List[Dict[str, Tuple[int, int, str]]]) -> List[str]:
    """What the breakdown shows, in words, from the measured runs."""
    first = ours[0]
    notes = []
    if "redis" in first:
        cost = median(run["redis"][1] for run in ours if "redis" in run) / 1000
        notes.append(
            f"`{first['redis'][2]}` imports `redis` (and with it `redis.asyncio` and `asyncio`) "
            f"whenever the redis package is installed, used or not: {cost:.0f} ms here. "
            "Without redis installed, `asyncio` still comes, with `backoff`."
        )
    elif "asyncio" in first:
        notes.append(
            f"`asyncio` is imported by `{first['asyncio'][2]}`; requests does not load it."
        )
    if "dataclasses" in first:
        notes.append(f"`dataclasses` (and `inspect`) come with `{first['dataclasses'][2]}`.")
    return notes


def main(argv: Sequence[str]) -> None:
    """The memory child: ``memory NAME URL CALLS``."""
    if len(argv) != 4 or argv[0] != "memory":
        raise SystemExit("usage: python -m bench.footprint memory NAME URL CALLS")
    print(json.dumps(_memory_child(argv[1], argv[2], int(argv[3]))))


if __name__ == "__main__":
    main(sys.argv[1:])
