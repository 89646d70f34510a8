"""The PNG plots: throughput against threads, and latency through the outage."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Dict, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from .outage import Run

__all__ = ["throughput", "outage_timeline"]

COLOURS = {
    "plain": "#444444",
    "urllib3-retry": "#1f77b4",
    "naive": "#d62728",
    "resilient": "#2ca02c",
    "resilient-fast": "#9467bd",
}
RESULT_COLOURS = {"ok": "#2ca02c", "failed": "#d62728", "rejected": "#ff7f0e"}


def _save(figure: "plt.Figure", path: str) -> str:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def throughput(
    medians: Mapping[int, Mapping[str, float]], threads: Sequence[int], path: str
) -> str:
    """Successful calls per second against thread count, one line per contender."""
    from .contenders import LABELS

    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    names = list(next(iter(medians.values())))
    for name in names:
        axes.plot(
            threads,
            [medians[t][name] for t in threads],
            marker="o",
            color=COLOURS.get(name),
            label=LABELS.get(name, name),
        )
    axes.plot(
        threads,
        [t / 0.02 for t in threads],
        linestyle=":",
        color="#999999",
        label="ideal (threads / 20 ms)",
    )
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xticks(list(threads), [str(t) for t in threads])
    axes.set_xlabel("caller threads")
    axes.set_ylabel("successful calls / s (median of rounds)")
    axes.set_title("Throughput against a 20 ms upstream")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    return _save(figure, path)


def outage_timeline(runs: Mapping[str, "Run"], labels: Dict[str, str], path: str) -> str:
    """Per contender: each call's latency at its start time, coloured by outcome,
    and the upstream's request rate, with the outage shaded."""
    figure, panels = plt.subplots(
        len(runs), 1, figsize=(9, 2.3 * len(runs)), sharex=True, squeeze=False
    )
    for axes, (name, run) in zip(panels[:, 0], runs.items()):
        _outage_panel(axes, run, labels.get(name, name))
    panels[-1, 0].set_xlabel("seconds since the outage began")
    figure.suptitle(
        "Caller latency (dots, left) and upstream requests/s (line, right) through the outage",
        y=1.0,
    )
    figure.tight_layout()
    return _save(figure, path)


def _outage_panel(axes: "plt.Axes", run: "Run", label: str) -> None:
    for result, colour in RESULT_COLOURS.items():
        calls = [c for c in run.calls if c.result == result]
        axes.scatter(
            [c.start - run.down for c in calls],
            [max(c.latency_ms, 0.01) for c in calls],
            s=2,
            color=colour,
            label=result,
            alpha=0.5,
            rasterized=True,
        )
    axes.axvspan(0, run.up - run.down, color="#d62728", alpha=0.08)
    axes.set_yscale("log")
    axes.set_ylabel("latency ms")
    axes.set_title(label, fontsize=9, loc="left")
    rate = axes.twinx()
    step = 0.1
    first, last = run.hits[0][0], run.hits[-1][0]
    grid = [first + step * i for i in range(int((last - first) / step))]
    rates = [(run.hits_at(t + step) - run.hits_at(t)) / step for t in grid]
    rate.step(
        [t + step - run.down for t in grid], rates, where="pre", color="#1f77b4", linewidth=0.8
    )
    rate.set_ylabel("upstream req/s", fontsize=8)
    rate.set_ylim(bottom=0)
    axes.legend(loc="upper left", fontsize=7, markerscale=4)
