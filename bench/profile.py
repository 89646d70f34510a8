"""Where a call's microseconds go: cProfile of plain requests and ResilientSession
on the same keep-alive GET, own time grouped by the code it runs in."""

from __future__ import annotations

import cProfile
import pstats
from typing import Dict, List, Tuple

from .contenders import build
from .report import Table, fmt

__all__ = ["breakdown"]

# (substring of a code object's file name, area); the first match wins.
AREAS = (
    ("/resilient_requests/", "resilient_requests"),
    ("/pybreaker", "pybreaker"),
    ("/backoff/", "backoff"),
    ("/requests/", "requests"),
    ("/urllib3/", "urllib3"),
    ("/http/client.py", "http.client"),
    ("/email/", "email (header parsing)"),
    ("/socket.py", "socket, selectors, C calls"),
    ("/selectors.py", "socket, selectors, C calls"),
    ("~", "socket, selectors, C calls"),
    ("/threading.py", "threading"),
)
Key = Tuple[str, int, str]


def _area(filename: str) -> str:
    for fragment, area in AREAS:
        if fragment in filename:
            return area
    return "other stdlib"


def _profile(name: str, url: str, calls: int) -> pstats.Stats:
    client = build(name)
    try:
        for _ in range(50):  # connection, caches
            client.get(url)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            client.get(url)
        profiler.disable()
    finally:
        client.close()
    return pstats.Stats(profiler)


def _by_area(stats: pstats.Stats, calls: int) -> Dict[str, float]:
    areas: Dict[str, float] = {}
    for (filename, _, _), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        area = _area(filename)
        areas[area] = areas.get(area, 0.0) + own * 1e6 / calls
    return areas


def _top_own(
    stats: pstats.Stats, calls: int, areas: Tuple[str, ...], count: int
) -> List[Tuple[str, float, float]]:
    rows = []
    for (filename, line, function), (_, ncalls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if _area(filename) in areas:
            where = f"{filename.rsplit('/', 2)[-2]}/{filename.rsplit('/', 1)[-1]}:{line} {function}"
            rows.append((where, ncalls / calls, own * 1e6 / calls, cumulative * 1e6 / calls))
    rows.sort(key=lambda row: -row[2])
    return [(where, per, own) for where, per, own, _ in rows[:count]]


def _cumulative(stats: pstats.Stats, calls: int, function: str) -> float:
    return (
        sum(
            cumulative
            for (_, _, name), (_, _, _, cumulative, _) in stats.stats.items()  # type: ignore[attr-defined]
            if name == function
        )
        * 1e6
        / calls
    )


def breakdown(url: str, calls: int) -> List[Table]:
    """Two tables: own µs per GET by area for both clients, and the library's
    costliest functions. Figures are under the profiler (inflated ~2×)."""
    plain, ours = _profile("plain", url, calls), _profile("resilient", url, calls)
    plain_areas, our_areas = _by_area(plain, calls), _by_area(ours, calls)
    names = sorted(
        set(plain_areas) | set(our_areas),
        key=lambda a: -max(plain_areas.get(a, 0), our_areas.get(a, 0)),
    )
    rows = [
        [
            area,
            fmt(plain_areas.get(area, 0.0), 1),
            fmt(our_areas.get(area, 0.0), 1),
            fmt(our_areas.get(area, 0.0) - plain_areas.get(area, 0.0), 1, ""),
        ]
        for area in names
    ]
    rows.append(
        [
            "**total (profiled)**",
            fmt(sum(plain_areas.values()), 1),
            fmt(sum(our_areas.values()), 1),
            fmt(sum(our_areas.values()) - sum(plain_areas.values()), 1),
        ]
    )
    merge = "merge_environment_settings"
    rows.append(
        [
            f"of which `{merge}` (cumulative)",
            fmt(_cumulative(plain, calls, merge), 1),
            fmt(_cumulative(ours, calls, merge), 1),
            fmt(_cumulative(ours, calls, merge) - _cumulative(plain, calls, merge), 1),
        ]
    )
    areas = Table(
        ["code", "plain µs/GET", "ResilientSession µs/GET", "difference µs"],
        rows,
        caption=f"Own time per GET by area, cProfile over {calls:,} GETs each",
    )
    top = _top_own(ours, calls, ("resilient_requests", "pybreaker", "backoff"), 12)
    functions = Table(
        ["function (ResilientSession)", "calls per GET", "own µs/GET"],
        [[f"`{where}`", fmt(per, 1), fmt(own, 2)] for where, per, own in top],
        caption="The library's (and backoff's, pybreaker's) costliest functions, own time",
    )
    return [areas, functions]
