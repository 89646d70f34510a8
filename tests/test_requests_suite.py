"""requests' own test suite, run with Session swapped for ResilientSession."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_requests_own_suite_passes_with_resilient_session():
    """requests' suite passes against ResilientSession, but for compat/known_differences.txt."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "compat" / "run_requests_suite.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    summary = [line for line in result.stdout.splitlines() if "passed" in line][-1:]
    assert result.returncode == 0, "\n".join([result.stdout[-4000:], result.stderr[-4000:]])
    assert summary and " failed" not in summary[0]
