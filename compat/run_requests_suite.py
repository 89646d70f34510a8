"""Run requests' own test suite against resilient_requests.ResilientSession.

    python compat/run_requests_suite.py            # patched: requests.Session is ResilientSession
    python compat/run_requests_suite.py --plain    # baseline: requests as it is
    python compat/run_requests_suite.py -- -k redirect -x   # extra pytest arguments

Steps: fetch the sdist of the *installed* requests into compat/.cache/, take its
tests/, install the test requirements it declares (if missing), and run pytest
with our plugin (resilient_compat.py), which swaps the session class, guards
against off-loopback traffic, and applies off_loopback.txt (deselected),
environment_skips.txt (skipped) and known_differences.txt (strict xfail,
patched mode only). Exits with pytest's status, or 1 if the guard blocked
anything.
"""
from __future__ import annotations

import argparse
import importlib.metadata as metadata
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from packaging.requirements import Requirement

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
# Not needed to run the suite here (coverage), or must not be touched (requests itself).
SKIP_REQUIREMENTS = {"requests", "pytest-cov", "wheel"}
SUMMARY = re.compile(r"^=*\s*(\d+ (passed|failed|error|errors|skipped|deselected|xfailed|xpassed)\b.*) in [\d.]+s")


def fetch_sdist(version: str) -> Path:
    """compat/.cache/requests-VERSION.tar.gz, downloaded once."""
    sdist = CACHE / f"requests-{version}.tar.gz"
    if not sdist.exists():
        CACHE.mkdir(exist_ok=True)
        # Like .pytest_cache: the cache ignores itself (git, and so ruff too).
        (CACHE / ".gitignore").write_text("# written by compat/run_requests_suite.py\n*\n")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"requests=={version}", "-d", str(CACHE)],
            check=True,
        )
    return sdist


def extract_tests(sdist: Path, version: str) -> Path:
    """compat/.cache/requests-VERSION/ holding the sdist's tests/, its
    requirements-dev.txt (three tests upload it from the working directory)
    and our pytest.ini."""
    root = CACHE / f"requests-{version}"
    if not (root / "tests").is_dir() or not (root / "requirements-dev.txt").exists():
        top = f"requests-{version}/"
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # no links, no ../
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers()
                       if m.name.startswith(top + "tests/") or m.name == top + "requirements-dev.txt"]
            tar.extractall(CACHE, members=members, **safe)
    # Our own ini next to tests/: stops pytest from reading /work/main's
    # pyproject (filterwarnings=error) or requests' (--doctest-modules).
    (root / "pytest.ini").write_text("[pytest]\n# written by compat/run_requests_suite.py\n")
    return root


def sdist_file(sdist: Path, version: str, name: str) -> str | None:
    with tarfile.open(sdist) as tar:
        try:
            member = tar.extractfile(f"requests-{version}/{name}")
        except KeyError:
            return None
        return member.read().decode() if member else None


def test_requirements(sdist: Path, version: str) -> list[str]:
    """The suite's requirements as the sdist declares them: pyproject's
    [dependency-groups] test, else requirements-dev.txt; requests[socks] -> PySocks."""
    specs: list[str] = []
    optional: dict = {}
    pyproject = sdist_file(sdist, version, "pyproject.toml")
    if tomllib and pyproject:
        data = tomllib.loads(pyproject)
        specs = list(data.get("dependency-groups", {}).get("test", []))
        optional = data.get("project", {}).get("optional-dependencies", {})
    dev = sdist_file(sdist, version, "requirements-dev.txt")
    if not specs and dev:
        specs = [line.split("#")[0].strip() for line in dev.splitlines()]
        specs = [s for s in specs if s and not s.startswith("-")]  # "-e .[socks]" is requests itself
        specs.append("PySocks")
    out: list[str] = []
    for spec in specs:
        req = Requirement(spec)
        if req.marker and not req.marker.evaluate():
            continue
        if req.name == "requests":
            for extra in req.extras:  # the extras' own requirements, not requests
                out += optional.get(extra, [])
        elif req.name.lower() not in SKIP_REQUIREMENTS:
            out.append(spec)
    return out


def missing(specs: list[str]) -> list[str]:
    result = []
    for spec in specs:
        req = Requirement(spec)
        try:
            if req.specifier.contains(metadata.version(req.name), prereleases=True):
                continue
        except metadata.PackageNotFoundError:
            pass
        result.append(spec)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plain", action="store_true", help="baseline: do not swap in ResilientSession")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()

    version = metadata.version("requests")
    sdist = fetch_sdist(version)
    root = extract_tests(sdist, version)
    need = missing(test_requirements(sdist, version))
    if need:
        print("installing the suite's requirements:", " ".join(need), flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *need], check=True)

    blocklog = CACHE / "blocked.log"
    blocklog.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env["RESILIENT_COMPAT_MODE"] = "plain" if args.plain else "patched"
    env["RESILIENT_COMPAT_BLOCKLOG"] = str(blocklog)
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):  # the suite clears them per test,
        env.pop(var, None)                                              # but not at import/collection
        env.pop(var.upper(), None)
    cmd = [sys.executable, "-m", "pytest", "-p", "resilient_compat", "-p", "no:cacheprovider",
           "-q", "-rfEsxX", "--tb=short", "--durations=10", "tests", *args.pytest_args]
    print(f"requests {version}, mode {env['RESILIENT_COMPAT_MODE']}: {' '.join(cmd[2:])}", flush=True)

    summary = "(no summary line)"
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        match = SUMMARY.match(line.strip())
        if match:
            summary = line.strip().strip("= ")
    status = proc.wait()

    if blocklog.exists():
        print("\nBLOCKED off-loopback attempts (add these tests to compat/off_loopback.txt):")
        print(blocklog.read_text(), end="")
        status = status or 1
    print(f"\nrequests {version} suite, {env['RESILIENT_COMPAT_MODE']}: {summary}")
    return status


if __name__ == "__main__":
    sys.exit(main())
