"""requests' own test suite, run with Session swapped for ResilientSession.

It takes about as long as the rest of our suite and mostly waits on its own
loopback servers, so it starts in a process of its own as soon as pytest has
collected this test (see ``start`` below and conftest.py), runs beside the
other tests, and the test here collects its result.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 900  # seconds

_running: Optional[Tuple["subprocess.Popen[bytes]", IO[bytes]]] = None


def start() -> None:
    """Start requests' suite in the background (once)."""
    global _running
    if _running is None:
        output = tempfile.TemporaryFile()
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "compat" / "run_requests_suite.py")],
            cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        _running = (process, output)


def stop() -> None:
    """End the background run if it is still going (the session is over)."""
    global _running
    if _running is not None:
        process, output = _running
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        output.close()
        _running = None


def test_requests_own_suite_passes_with_resilient_session():
    """requests' suite passes against ResilientSession, but for compat/known_differences.txt."""
    start()
    assert _running is not None
    process, output = _running
    returncode = process.wait(timeout=LIMIT)
    output.seek(0)
    text = output.read().decode(errors="replace")
    summary = [line for line in text.splitlines() if "passed" in line][-1:]
    assert returncode == 0, text[-8000:]
    assert summary and " failed" not in summary[0]
