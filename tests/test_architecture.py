"""What may import what: the import contracts in pyproject.toml ([tool.importlinter]) hold, they
cover every package, and they do catch a domain module importing the wire or an import cycle."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "libs" / "fusou"
# The packages that may speak the wire or wire the app together; everything else is domain.
# The dashboard is presentation over HTTP: it stands beside the API layer, outside the domain.
OUTSIDE_DOMAIN = {"api", "server", "services", "cli", "testing", "app", "dashboard"}


def _config() -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "importlinter"
    ]
    return config


def _contract(contract_id: str) -> dict[str, Any]:
    contracts: list[dict[str, Any]] = _config()["contracts"]
    return next(c for c in contracts if c["id"] == contract_id)


def lint_imports(root: Path, libs: Path) -> subprocess.CompletedProcess[str]:
    """import-linter on the package under ``libs``, with the contracts of ``root``'s pyproject."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(libs), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; "
            "sys.exit(lint_imports_command())",
            "--no-cache",
            "--config",
            str(root / "pyproject.toml"),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_import_contracts_hold() -> None:
    result = lint_imports(ROOT, ROOT / "libs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout
    assert f"{len(_config()['contracts'])} kept, 0 broken" in result.stdout


def test_every_package_is_domain_or_named_outside_it() -> None:
    # A new package must be placed on purpose: in the domain contract, or named as wire/app.
    top_level = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.is_file() and p.suffix == ".py" and p.stem != "__init__")
        or (p.is_dir() and (p / "__init__.py").exists())
    }
    domain = {m.removeprefix("fusou.") for m in _contract("domain-without-wire")["source_modules"]}
    assert top_level - OUTSIDE_DOMAIN == domain
    assert {"api", "server", "services", "cli"} <= top_level


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        ("archive/blocks.py", "import grpc", "fusou.archive is not allowed to import grpc"),
        (
            "read/merge.py",
            "from google.protobuf import struct_pb2",
            "fusou.read is not allowed to import google",
        ),
        (
            "catalog/files.py",
            "import fusou.api.reader.v1.reader_pb2",
            "fusou.catalog is not allowed to import fusou.api",
        ),
        (
            "server/readiness.py",
            "import fusou.services",
            "fusou.server is not allowed to import fusou.services",
        ),
        ("clock.py", "import fusou.runtime", "No cycles are allowed in fusou"),
    ],
)
def test_the_contracts_catch_a_wrong_import(
    tmp_path: Path, module: str, line: str, expected: str
) -> None:
    libs = tmp_path / "libs"
    # The link libs/fusou/services is followed: the copy holds the services as files.
    shutil.copytree(PACKAGE, libs / "fusou", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = libs / "fusou" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(tmp_path, libs)
    assert result.returncode != 0, result.stdout
    assert expected in " ".join(result.stdout.split()), result.stdout


def test_the_wheel_installs_one_top_level_package(tmp_path: Path) -> None:
    # Built from a copy (the build writes build/ and *.egg-info beside the sources), with the
    # link libs/fusou/services kept a link, as a checkout has it.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("libs", "services"):
        shutil.copytree(
            ROOT / name,
            source / name,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
        )
    assert (source / "libs" / "fusou" / "services").is_symlink()
    out = tmp_path / "wheel"
    # The venv's setuptools when it has one (Python 3.12+ venvs do not): no download then.
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q"]
    subprocess.run(
        [*command, "-w", str(out), str(source)], check=True, capture_output=True, timeout=300
    )
    (wheel,) = out.glob("fusou-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level = archive.read(next(n for n in names if n.endswith("top_level.txt")))
    assert top_level.decode().split() == ["fusou"]
    assert {n.split("/")[0] for n in names} == {"fusou", wheel.name.split("-py")[0] + ".dist-info"}
    for expected in (
        "fusou/services/ingest/main.py",
        "fusou/services/reader/servicer.py",
        "fusou/app.py",
        "fusou/api/ingest/v1/ingest_pb2.py",
        "fusou/api/ingest/v1/ingest_pb2.pyi",
        "fusou/py.typed",
    ):
        assert expected in names, expected
