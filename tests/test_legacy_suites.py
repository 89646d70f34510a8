"""A legacy app and its unchanged suites, one per mocking library, run as a user would.

tests/legacy_app/ holds the app (``shop.py``: ``import requests``, a module-level
session for one host and ``requests.get`` / ``requests.post`` for another) and three
suites written for plain requests: responses, requests-mock and ``unittest.mock``.
Each is run with pytester in a subprocess of its own (only our pytest plugin and
requests-mock's, as a suite would have them), three ways:

* plain requests: every test passes (the suites are sound);
* after the swap (``import resilient_requests as requests`` in the app), with the
  test mode on (``resilient_test_mode = true``): every test passes except the ones
  whose call counts change by design (listed below with the reason), and no test
  waits between attempts; with ``resilient_test_mode_retries = false`` as well,
  every test passes;
* with ``resilient_requests.install()`` instead of the swap: the ``mock.patch``
  suite passes unchanged.

A loopback guard in the suites' conftest turns a call that escapes its mock into a
``ConnectionError`` (the evidence for "the real request goes out").
"""
from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Set

import pytest

LEGACY = Path(__file__).resolve().parent / "legacy_app"
PLUGINS = ("-p", "resilient_requests.testing.pytest_plugin", "-p", "requests_mock.contrib._pytest_plugin")

#: Tests whose call counts change by design once calls are retried (test mode keeps retries on).
RETRIED: Dict[str, Dict[str, str]] = {
    "responses": {
        "test_get_user_server_error_is_asked_once": "a GET answered 500 is asked 3 times",
        "test_payments_health_is_checked_once": "a GET whose connection failed is sent again",
        "test_balance_fails_then_recovers": "the retry absorbs the one 503: the first call returns the 200",
    },
    "requests_mock": {
        "test_get_user_server_error_is_asked_once": "a GET answered 500 is asked 3 times",
        "test_payments_health_is_checked_once": "a GET whose connect timed out is sent again",
    },
    "mock_patch": {},
}

#: Tests that patch ``requests.get`` / ``requests.post``: after the import swap the app calls
#: ``resilient_requests.get``, so the patch misses it (patch ``shop.requests.get``, or use install()).
PATCHES_REQUESTS = {
    "test_balance", "test_balance_url", "test_charge", "test_charge_declined", "test_payments_up",
    "test_payments_down",
}

#: Each suite's size (an unchanged small suite per mocking library).
SIZES = {"responses": 14, "requests_mock": 14, "mock_patch": 12}


@dataclass
class Run:
    outcomes: Dict[str, str]  # test name -> "passed" / "failed" / "error" / "skipped"
    seconds: Dict[str, float]  # test name -> setup + call + teardown
    output: str

    def failed(self) -> Set[str]:
        return {name for name, outcome in self.outcomes.items() if outcome != "passed"}


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, suite: str, mode: str,
         ini: str = "") -> Run:
    """The suite next to the app, with ``conftest_<mode>.py`` as its conftest, run in a subprocess."""
    for name in ("shop.py", "guard.py"):
        (pytester.path / name).write_text((LEGACY / name).read_text(encoding="utf-8"), encoding="utf-8")
    (pytester.path / "conftest.py").write_text((LEGACY / f"conftest_{mode}.py").read_text(encoding="utf-8"),
                                               encoding="utf-8")
    (pytester.path / "test_shop.py").write_text((LEGACY / f"suite_{suite}.py").read_text(encoding="utf-8"),
                                                encoding="utf-8")
    pytester.makeini("[pytest]\n" + ini)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # this venv's other plugins cost seconds
    report = pytester.path / "report.xml"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *PLUGINS, f"--junit-xml={report}",
                                           timeout=120)
    outcomes: Dict[str, str] = {}
    seconds: Dict[str, float] = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        name = case.get("name", "")
        kinds = {child.tag for child in case}
        outcomes[name] = ("failed" if "failure" in kinds else "error" if "error" in kinds
                          else "skipped" if "skipped" in kinds else "passed")
        seconds[name] = float(case.get("time", "0"))
    assert len(outcomes) == SIZES[suite], result.outlines[-20:]
    return Run(outcomes, seconds, "\n".join(result.outlines))


TEST_MODE = "resilient_test_mode = true\n"


@pytest.mark.parametrize("suite", sorted(SIZES))
def test_plain_then_after_the_swap_only_the_intended_call_counts_change(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, suite: str) -> None:
    """With plain requests every test passes (the suite is sound). After the swap, with the
    test mode on, exactly the listed tests fail, each for its reason, and the suite takes
    about as long as with plain requests (no test waits between attempts)."""
    plain = _run(pytester, monkeypatch, suite, "plain")
    assert plain.failed() == set(), plain.output
    swapped = _run(pytester, monkeypatch, suite, "swap", TEST_MODE)
    misses = PATCHES_REQUESTS if suite == "mock_patch" else set()
    assert swapped.failed() == set(RETRIED[suite]) | misses, swapped.output
    assert all(swapped.outcomes[name] == "failed" for name in swapped.failed()), swapped.output
    if suite == "responses":
        assert "assert 3 == 1" in swapped.output  # three calls where the test expected one
        assert "DID NOT RAISE" in swapped.output  # the 503 was retried into the 200
    if misses:
        # The patch missed: the app's call really went out (and the suite's guard stopped it).
        assert "no name lookups off loopback ('payments.example.com')" in swapped.output
    for name, seconds in swapped.seconds.items():
        assert seconds < 0.5, f"{name} took {seconds:.2f} s: did it wait between attempts?"
    assert sum(swapped.seconds.values()) < sum(plain.seconds.values()) + 1.5


@pytest.mark.parametrize("suite", ["responses", "requests_mock"])
def test_after_the_swap_with_retries_off_every_test_passes(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, suite: str) -> None:
    """``resilient_test_mode_retries = false``: one attempt per call, the old counts hold."""
    run = _run(pytester, monkeypatch, suite, "swap", TEST_MODE + "resilient_test_mode_retries = false\n")
    assert run.failed() == set(), run.output


def test_with_install_the_mock_patch_suite_passes_unchanged(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """No import changed: ``patch("requests.get")`` replaces what the app calls, and the
    app's module-level session (made after install()) is resilient."""
    run = _run(pytester, monkeypatch, "mock_patch", "install", TEST_MODE)
    assert run.failed() == set(), run.output


def test_with_install_the_responses_suite_keeps_its_intended_differences_only(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """responses patches the adapter class: install() changes nothing but the retried counts."""
    run = _run(pytester, monkeypatch, "responses", "install", TEST_MODE)
    assert run.failed() == set(RETRIED["responses"]), run.output


def test_with_install_the_requests_mock_suite_keeps_its_intended_differences_only(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """requests-mock's ``Mocker()`` patches ``requests.Session`` as it finds it: under
    install() that is the installed class, which ``requests.get`` should use too."""
    run = _run(pytester, monkeypatch, "requests_mock", "install", TEST_MODE)
    assert run.failed() == set(RETRIED["requests_mock"]), run.output
