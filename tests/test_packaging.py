"""The distributions: the sdist carries what its own tests need and they pass from the
unpacked tree; the wheel is the package alone, typed.

Builds with `python -m build` (the `dev` extra); skipped where build is not installed.
Takes a few seconds: two isolated builds (the sdist, then the wheel from it) and a
small pytest run in a subprocess."""
from __future__ import annotations

import importlib.metadata as metadata
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Folders the sdist carries whole (MANIFEST.in's grafts), and single files it must have.
SHIPPED_DIRS = ["tests", "compat", "examples", "bench", "docs"]
SHIPPED_FILES = [
    "LICENSE", "README.md", "BENCHMARKS.md", "pyproject.toml", "setup.cfg", "setup.py",
    "MANIFEST.in", "resilient_requests/py.typed",
    # what the tests import or run besides the test modules themselves
    "tests/__init__.py", "tests/conftest.py", "tests/fault_matrix.py",
    "tests/shared_worker.py", "tests/web_app.py", "compat/run_requests_suite.py",
    "compat/resilient_compat.py", "compat/known_differences.txt",
]
#: Run from the unpacked sdist: conftest.py's fixtures, the package's pytest plugin
#: (fault_server) and examples/ in use; a few seconds in all.
SDIST_TESTS = [
    "tests/test_config.py",
    "tests/test_api.py",
    "tests/test_examples.py::test_gunicorn_conf_compiles_and_is_consistent",
    "tests/test_examples.py::test_every_example_is_tested",
]


def _run(args: List[str], cwd: Path, env: "Dict[str, str] | None" = None) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, (
        f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-6000:]}{done.stderr[-6000:]}"
    )
    return done.stdout


def _source_files(folder: str) -> List[str]:
    """Files under REPO/folder as the sdist should carry them: no caches, no byte code."""
    found = []
    for root, dirs, files in os.walk(REPO / folder):
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
        for name in files:
            if not name.endswith((".pyc", ".pyo")):
                found.append((Path(root) / name).relative_to(REPO).as_posix())
    return found


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """`python -m build`: the sdist, then the wheel built from that sdist."""
    try:  # (not importorskip: setuptools' build/ folder in a checkout imports as "build")
        metadata.version("build")
    except metadata.PackageNotFoundError:
        pytest.skip("needs build: pip install -e '.[dev]'")
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], cwd=out)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_the_sdist_carries_the_tests_and_what_they_use(dists: Dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    wanted = SHIPPED_FILES + (["mkdocs.yml"] if (REPO / "mkdocs.yml").exists() else [])
    missing = [name for name in wanted if name not in names]
    for folder in SHIPPED_DIRS:
        if (REPO / folder).is_dir():
            missing += [name for name in _source_files(folder) if name not in names]
    assert not missing, f"not in the sdist: {missing}"
    unwanted = [name for name in names if "__pycache__" in name or name.startswith("compat/.cache")]
    assert not unwanted, f"in the sdist but should not be: {unwanted}"


def test_the_sdists_own_tests_pass_from_the_unpacked_tree(
    dists: Dict[str, Path], tmp_path: Path
) -> None:
    with tarfile.open(dists["sdist"]) as tar:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp_path, **safe)  # type: ignore[arg-type, unused-ignore]
    (unpacked,) = tmp_path.iterdir()
    env = dict(os.environ, PYTHONPATH=str(unpacked))
    env.pop("PYTEST_ADDOPTS", None)
    # The package imported is the unpacked one, not this checkout.
    where = _run([sys.executable, "-c", "import resilient_requests; print(resilient_requests.__file__)"],
                 cwd=unpacked, env=env)
    assert Path(where.strip()).resolve().is_relative_to(unpacked.resolve()), where
    out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SDIST_TESTS],
               cwd=unpacked, env=env)
    assert " passed" in out and " failed" not in out and " skipped" not in out, out


def test_the_wheel_is_the_package_alone_and_typed(dists: Dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = wheel.namelist()
    assert "resilient_requests/py.typed" in names
    dist_info = next(name.split("/")[0] for name in names if ".dist-info/" in name)
    outside = [name for name in names if not name.startswith(("resilient_requests/", dist_info + "/"))]
    assert not outside, f"the wheel carries more than the package: {outside}"
    assert any(name.endswith("/LICENSE") for name in names if name.startswith(dist_info + "/"))
