"""The integration marker cannot rot: a test that reaches PostgreSQL or S3 through the suite's
fixtures without the marker stops the run at collection, naming it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

UNMARKED = """
async def test_unmarked_database(database_url: str) -> None:
    assert database_url
"""

MARKED = """
import pytest


@pytest.mark.integration
async def test_marked_database(database_url: str) -> None:
    assert database_url


def test_pure() -> None:
    assert True
"""


def _collect(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(root),
            "-o",
            "asyncio_mode=auto",
            *args,
            str(root / "tests"),
        ],
        capture_output=True,
        text=True,
        cwd=root,
        env=os.environ | {"PYTHONPATH": os.pathsep.join([str(TESTS.parent), *sys.path])},
        timeout=120,
        check=False,
    )


def _suite(root: Path, test_module: str) -> None:
    (root / "tests").mkdir()
    shutil.copy(TESTS / "conftest.py", root / "tests" / "conftest.py")
    (root / "tests" / "test_sample.py").write_text(test_module)


def test_an_unmarked_test_using_the_database_stops_the_run(tmp_path: Path) -> None:
    _suite(tmp_path, UNMARKED)
    for selection in (["-m", "not integration"], []):
        run = _collect(tmp_path, *selection)
        assert run.returncode != 0, run.stdout
        assert "not marked `integration`" in run.stderr, run.stderr
        assert "test_sample.py::test_unmarked_database" in run.stderr


def test_marked_tests_are_left_out_of_the_fast_loop(tmp_path: Path) -> None:
    _suite(tmp_path, MARKED)
    run = _collect(tmp_path, "-m", "not integration")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_sample.py::test_pure" in run.stdout
    assert "test_marked_database" not in run.stdout
