"""The static checks, run as a developer would from the repository root: mypy (settings
in pyproject.toml's [tool.mypy]) and ruff (its [tool.ruff]).

They come with the `lint` extra (and `dev`, which the README's test command and
.ci/run install); where mypy or ruff is not installed (`pip install -e '.[test]'`)
their test is skipped."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

REPO = Path(__file__).resolve().parents[1]


def _check(args: List[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True,
        timeout=600, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"


def test_mypy_strict_passes() -> None:
    """`mypy --strict resilient_requests` finds no errors."""
    pytest.importorskip("mypy", reason="the gate needs mypy: pip install -e '.[lint]'")
    _check(["mypy", "--strict", "resilient_requests"])


def test_ruff_passes() -> None:
    """`ruff check` finds nothing in the package, the tests, the examples or the benchmarks."""
    pytest.importorskip("ruff", reason="the gate needs ruff: pip install -e '.[lint]'")
    _check(["ruff", "check", "resilient_requests", "tests", "examples", "bench"])
