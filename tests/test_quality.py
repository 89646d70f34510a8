"""The static checks, run as a developer would from the repository root: mypy (settings
in pyproject.toml's [tool.mypy]) and ruff (its [tool.ruff])."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[1]


def _check(args: List[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True,
        timeout=600, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"


def test_mypy_strict_passes() -> None:
    """`mypy --strict resilient_requests` finds no errors."""
    _check(["mypy", "--strict", "resilient_requests"])


def test_ruff_passes() -> None:
    """`ruff check` finds nothing in the package, the tests, the examples or the benchmarks."""
    _check(["ruff", "check", "resilient_requests", "tests", "examples", "bench"])
