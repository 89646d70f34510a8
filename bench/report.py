"""What a scenario hands back (:class:`Section`) and BENCHMARKS.md made of them."""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from typing import List, Optional, Sequence

__all__ = ["Goal", "Table", "Section", "render", "environment", "fmt", "fmt_ratio"]

PACKAGES = ("resilient_requests", "requests", "urllib3", "pybreaker", "backoff", "matplotlib",
            "stamina", "tenacity", "circuitbreaker", "pyresilience", "httpx")


@dataclass
class Goal:
    """A target and whether the run met it (``None``: not measured)."""

    text: str
    met: Optional[bool]
    figure: str

    def render(self) -> str:
        mark = "–" if self.met is None else ("✓" if self.met else "✗")
        return f"{mark} {self.text}: {self.figure}"


@dataclass
class Table:
    """A Markdown table with an optional caption above it."""

    headers: Sequence[str]
    rows: List[Sequence[str]]
    caption: str = ""

    def render(self) -> str:
        lines = [f"*{self.caption}*", ""] if self.caption else []
        lines.append("| " + " | ".join(self.headers) + " |")
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in self.rows)
        return "\n".join(lines)


@dataclass
class Section:
    """One scenario's results."""

    title: str
    setup: str
    goals: List[Goal] = field(default_factory=list)
    tables: List[Table] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    plots: List[str] = field(default_factory=list)  # file paths
    seconds: float = 0.0
    load: str = ""

    def render(self, base: str = ".") -> str:
        """Markdown; plot links relative to ``base``, the report's folder."""
        parts = [f"## {self.title}", "", self.setup, ""]
        if self.goals:
            parts += ["**Goals**", ""] + [f"- {goal.render()}" for goal in self.goals] + [""]
        for table in self.tables:
            parts += [table.render(), ""]
        for plot in self.plots:
            parts += [f"![{self.title}]({os.path.relpath(plot, base)})", ""]
        parts += [f"- {note}" for note in self.notes]
        parts += [f"- Ran {self.seconds:.0f} s; load average {self.load}.", ""]
        return "\n".join(parts)


def environment() -> List[str]:
    """Lines describing the machine and the software."""
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    return [
        f"Machine: {os.cpu_count()} cores ({_cpu_model()}), {platform.system()} {platform.release()}",
        f"Python: {platform.python_implementation()} {platform.python_version()}",
        f"Libraries: {', '.join(versions)}",
    ]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def render(header: Sequence[str], sections: Sequence[Section], base: str = ".") -> str:
    """The whole report; plot links relative to ``base``."""
    summary = Table(
        ["scenario", "goal", "met"],
        [
            [section.title, goal.text + f" ({goal.figure})", goal.render()[0]]
            for section in sections
            for goal in section.goals
        ],
    )
    body = [*header, "", "## Summary", "", summary.render(), ""]
    body += [section.render(base) for section in sections]
    return "\n".join(body).rstrip() + "\n"


def fmt(value: float, digits: int = 0, unit: str = "") -> str:
    """A number with thousands separators, or "n/a"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def fmt_ratio(value: float) -> str:
    """``0.97×``, or "n/a"."""
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.2f}×" if value >= 0.1 else f"{value:.3f}×"
