"""``python -m resilient_requests demo --quick``, run as a user would: in a subprocess."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

REPO = Path(__file__).resolve().parents[1]

# Warnings are errors in the child too, and -X dev shows ResourceWarnings
# (unclosed sockets) that would otherwise be dropped silently.
PYTHON = [sys.executable, "-X", "dev", "-W", "error"]


def _run(*args: str, timeout: float) -> "subprocess.CompletedProcess[str]":
    # cwd=REPO: "-m" imports the package from this checkout, whatever is installed.
    return subprocess.run(
        [*PYTHON, "-m", "resilient_requests", *args], cwd=REPO, capture_output=True,
        text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def quick_demo() -> "subprocess.CompletedProcess[str]":
    """One run of ``demo --quick --json`` shared by the tests of this module."""
    return _run("demo", "--quick", "--json", "--seed", "1", timeout=60)


@pytest.fixture(scope="module")
def numbers(quick_demo: "subprocess.CompletedProcess[str]") -> Dict[str, Any]:
    """The JSON object on the last line of the quick run's output."""
    assert quick_demo.returncode == 0, quick_demo.stderr
    last = quick_demo.stdout.strip().splitlines()[-1]
    return json.loads(last)  # type: ignore[no-any-return]


def _table(stdout: str, title: str = "In detail") -> List[str]:
    """The lines of the table whose header starts with ``title``."""
    lines = stdout.splitlines()
    header = title.split() + ["plain", "requests", "ResilientSession"]
    start = next(i for i, line in enumerate(lines) if line.split() == header)
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    return lines[start:end]


def _value(table: List[str], label: str, column: int) -> str:
    """The ``column``-th value (0: plain, 1: ResilientSession) of the row ``label``;
    the two columns are right-aligned at 16 and 19 characters after the labels."""
    row = next(line for line in table if line.startswith(label))
    end_of_labels = len(table[0]) - 35
    return row[end_of_labels:end_of_labels + 16].strip() if column == 0 else row[end_of_labels + 16:].strip()


def test_quick_demo_exits_0_without_tracebacks_or_warnings(quick_demo: "subprocess.CompletedProcess[str]") -> None:
    """The quick demo ends by itself with status 0 and nothing on stderr."""
    assert quick_demo.returncode == 0, quick_demo.stderr
    assert quick_demo.stderr == ""
    assert "Traceback" not in quick_demo.stdout


def test_quick_demo_prints_the_table(quick_demo: "subprocess.CompletedProcess[str]") -> None:
    """The side-by-side table has its header and every row, each with two values."""
    table = _table(quick_demo.stdout)
    assert "plain requests" in table[0] and "ResilientSession" in table[0]
    labels = [
        "calls", "succeeded", "  on time", "  late", "failed (error after trying)", "failed fast (no network I/O)",
        "requests the upstream received", "during the outage", "latency p50 (s)",
        "latency p99 (s)", "breaker transitions", "wall time (s)",
    ]
    for label in labels:
        rows = [line for line in table if line.lstrip().startswith(label.strip())]
        assert rows, f"no row {label!r} in:\n" + "\n".join(table)
        assert len(rows[0][len(label):].split()) >= 2, rows[0]


def test_quick_demo_leads_with_the_short_table(quick_demo: "subprocess.CompletedProcess[str]",
                                               numbers: Dict[str, Any]) -> None:
    """The first thing after the runs is a short table of what to take away: threads kept
    free, requests spared during the outage, p99, and "succeeded" split into on time and
    late; its numbers are the run's. Nothing but the intro and the progress lines before it."""
    out = quick_demo.stdout
    lines = out.splitlines()
    short = _table(out, "In short")
    assert len(short) <= 10
    first = lines.index(short[0])
    assert [line for line in lines[:first] if line.startswith("running ")] == [
        "running plain requests ...", "running ResilientSession ..."]
    assert first < 12 and "ClientConfig(" not in "\n".join(lines[:first])
    assert out.index("In short") < out.index("In detail") < out.index("How it was run")
    plain, resilient = numbers["plain"], numbers["resilient"]
    assert _value(short, "threads free during the outage", 0) == f"{plain['fewest_threads_free_in_outage']} of 16"
    assert _value(short, "threads free during the outage", 1) == \
        f"{resilient['fewest_threads_free_in_outage']} of 16"
    p_out = plain["upstream_requests_by_phase"]["outage"]
    r_out = resilient["upstream_requests_by_phase"]["outage"]
    assert _value(short, "requests sent while the upstream was down", 0) == str(p_out)
    assert _value(short, "requests sent while the upstream was down", 1) == f"{r_out} ({p_out - r_out} spared)"
    assert _value(short, "latency p99", 0) == f"{plain['p99_s']:.2f} s"
    for client, column in ((plain, 0), (resilient, 1)):
        assert _value(short, "succeeded on time", column) == str(client["succeeded_on_time"])
        assert _value(short, "succeeded late", column) == str(client["succeeded_late"])


def test_quick_demo_explains_on_time_and_late(quick_demo: "subprocess.CompletedProcess[str]",
                                              numbers: Dict[str, Any]) -> None:
    """Right after the short table, "succeeded" is explained: on time vs late, and why
    plain requests' answers came late."""
    out = " ".join(quick_demo.stdout.split())
    explained = out[out.index("In short"):out.index("In detail")]
    assert '"Succeeded" means an answer came back at all; on time means within 0.5 s' in explained
    assert f"{numbers['plain']['succeeded_late']} of them late" in explained
    assert "waited for a thread" in explained


def test_quick_demo_ends_with_where_to_go_next(quick_demo: "subprocess.CompletedProcess[str]") -> None:
    """The report ends (before the --json line) with the pages to read next."""
    lines = quick_demo.stdout.rstrip().splitlines()[:-1]  # the JSON line
    start = lines.index("Where to go next:")
    steps = " ".join(lines[start:])
    for page in ("docs/index.md", "docs/guides/web-apps.md", "docs/guides/rate-limited-apis.md"):
        assert page in steps
    assert all(line.startswith("  ") for line in lines[start + 1:] if line)
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)


def test_quick_demo_numbers_add_up(numbers: Dict[str, Any]) -> None:
    """On time + late = succeeded; plain requests' threads were all held in the outage,
    ResilientSession kept some free."""
    for client in ("plain", "resilient"):
        n = numbers[client]
        assert n["succeeded_on_time"] + n["succeeded_late"] == n["succeeded"]
    assert numbers["plain"]["fewest_threads_free_in_outage"] == 0
    assert numbers["resilient"]["fewest_threads_free_in_outage"] >= 1
    assert numbers["resilient"]["longest_wait_for_a_thread_s"] < numbers["plain"]["longest_wait_for_a_thread_s"]


def test_quick_demo_prints_config_and_legacy_timeout(quick_demo: "subprocess.CompletedProcess[str]") -> None:
    """The output names the plain client's timeout and the ResilientSession's config: only
    what differs from the defaults, in a few lines."""
    out = " ".join(quick_demo.stdout.split())  # the prose is wrapped
    assert "session.get(url, timeout=1.25)" in out
    assert "legacy script" in out
    for name in ("TimeoutConfig(", "RetryConfig(", "CircuitBreakerConfig(", "BulkheadConfig("):
        assert name in out
    assert "HedgeConfig(" not in out and "LoggingConfig(" not in out  # defaults, left out
    lines = quick_demo.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "ClientConfig(")
    end = next(i for i in range(start, len(lines)) if lines[i].strip().startswith(")"))
    assert end - start <= 8


def test_quick_demo_keeps_library_log_off_the_output(quick_demo: "subprocess.CompletedProcess[str]") -> None:
    """The library's retry and breaker log lines are captured, not printed."""
    assert "retrying GET" not in quick_demo.stdout
    assert "circuit closed -> open for" not in quick_demo.stdout
    assert "retrying" not in quick_demo.stderr


def test_resilient_client_fails_fast_and_opens_the_breaker(numbers: Dict[str, Any]) -> None:
    """ResilientSession fails some calls fast and its breaker opens during the outage."""
    resilient = numbers["resilient"]
    assert resilient["failed_fast"] >= 1
    assert resilient["failed_fast"] == resilient["circuit_open"] + resilient["bulkhead_full"]
    assert resilient["breaker_opened"] >= 1
    outage_start, outage_end = numbers["phases"]["outage"]
    opened = [t["at_s"] for t in resilient["breaker_transitions"] if t["to"] == "open"]
    assert outage_start <= opened[0] <= outage_end


def test_resilient_breaker_closes_again_in_recovery(numbers: Dict[str, Any]) -> None:
    """The recovery is seen within the run: the breaker's last transition closes it."""
    last = numbers["resilient"]["breaker_transitions"][-1]
    assert (last["from"], last["to"]) == ("half-open", "closed")
    assert last["at_s"] >= numbers["phases"]["recovery"][0]


def test_resilient_client_spares_the_upstream_during_the_outage(numbers: Dict[str, Any]) -> None:
    """The upstream gets fewer requests from ResilientSession during the outage than from plain requests."""
    plain = numbers["plain"]["upstream_requests_by_phase"]["outage"]
    resilient = numbers["resilient"]["upstream_requests_by_phase"]["outage"]
    assert resilient < plain


def test_plain_client_has_no_fail_fast_and_every_call_is_counted(numbers: Dict[str, Any]) -> None:
    """Plain requests never fails fast, and every call of both clients has one outcome."""
    assert numbers["plain"]["failed_fast"] == 0
    for client in ("plain", "resilient"):
        n = numbers[client]
        assert n["succeeded"] + n["failed"] + n["failed_fast"] == n["calls"] > 0


def test_quick_demo_ends_within_its_budget(numbers: Dict[str, Any]) -> None:
    """Each client's quick run takes well under the ~15 s budget of the whole command."""
    for client in ("plain", "resilient"):
        assert numbers[client]["wall_s"] < 7.0


def test_help_lists_the_demo_command() -> None:
    """``--help`` exits 0 and lists the demo subcommand."""
    done = _run("--help", timeout=30)
    assert done.returncode == 0, done.stderr
    assert "demo" in done.stdout


def test_a_command_is_required() -> None:
    """Without a subcommand the command line prints usage and exits 2."""
    done = _run(timeout=30)
    assert done.returncode == 2
    assert "usage:" in done.stderr
