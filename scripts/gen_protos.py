#!/usr/bin/env python3
"""Regenerate the Python code for the protobuf API: ``python scripts/gen_protos.py``.

Sources are ``protos/fusou/<service>/v1/*.proto``; output goes to ``libs/`` (so the modules are
``fusou.<service>.v1.<name>_pb2`` and ``_pb2_grpc``, with typing stubs) unless ``--out`` names
another directory, which is how the staleness test compares a fresh build with the checked-in code.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def proto_files() -> list[Path]:
    return sorted(PROTOS.glob("fusou/*/v1/*.proto"))


def generate(out: Path) -> list[Path]:
    from grpc_tools import protoc

    out.mkdir(parents=True, exist_ok=True)
    # The mypy plugins are console scripts installed next to this interpreter.
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    include = str(resources.files("grpc_tools") / "_proto")
    sources = [str(p.relative_to(PROTOS)) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *sources,
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    written: list[Path] = []
    for src in sources:
        package_dir = out / Path(src).parent
        # Namespace-free packages so the modules import without sys.path changes.
        for d in (package_dir, package_dir.parent):
            init = d / "__init__.py"
            if not init.exists():
                init.write_text("")
        written.extend(sorted(package_dir.glob("*")))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "libs")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path.relative_to(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
