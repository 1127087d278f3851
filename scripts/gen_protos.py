#!/usr/bin/env python3
"""Regenerate the Python code for the protobuf API: ``python scripts/gen_protos.py``.

Sources are ``protos/fusou/<service>/v1/*.proto`` (proto packages ``fusou.<service>.v1``, the
names on the wire). The Python modules go to the API layer, ``libs/fusou/api/<service>/v1/``
(``fusou.api.<service>.v1.<name>_pb2`` and ``_pb2_grpc``, with typing stubs), unless ``--out``
names another root, which is how the staleness test compares a fresh build with the checked-in
code. protoc names a module after its file's path, so the code is generated into a scratch
directory and moved under ``fusou/api/`` with its imports of sibling modules rewritten.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
# Where the generated modules live below an output root: fusou/<service>/v1 -> fusou/api/<service>/v1.
API_PACKAGE = Path("fusou", "api")
# References to a generated module by its protoc name, e.g. `from fusou.api.ingest.v1 import` and
# the builder's 'fusou.ingest.v1.ingest_pb2' (wire names such as '/fusou.ingest.v1.IngestService/'
# are not module references and stay).
_MODULE_REFERENCE = re.compile(r"(?<![\w./])fusou\.(?=\w+\.v1(?: import|\.\w+_pb2\b))")


def proto_files() -> list[Path]:
    return sorted(PROTOS.glob("fusou/*/v1/*.proto"))


def api_path(source: Path) -> Path:
    """Where a generated file goes below the output root: fusou/x/v1/f -> fusou/api/x/v1/f."""
    return API_PACKAGE.joinpath(*source.parts[1:])


def generate(out: Path) -> list[Path]:
    from grpc_tools import protoc

    # The mypy plugins are console scripts installed next to this interpreter.
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    include = str(resources.files("grpc_tools") / "_proto")
    sources = [str(p.relative_to(PROTOS)) for p in proto_files()]
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        args = [
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{include}",
            f"--python_out={scratch}",
            f"--grpc_python_out={scratch}",
            f"--mypy_out={scratch}",
            f"--mypy_grpc_out={scratch}",
            *sources,
        ]
        code = protoc.main(args)
        if code != 0:
            raise SystemExit(f"protoc failed with exit code {code}")
        for src in sources:
            generated_dir = Path(src).parent
            package_dir = out / api_path(generated_dir)
            package_dir.mkdir(parents=True, exist_ok=True)
            for generated in sorted((scratch / generated_dir).glob("*_pb2*")):
                text = _MODULE_REFERENCE.sub("fusou.api.", generated.read_text())
                (package_dir / generated.name).write_text(text)
            # Regular packages, so the modules import without sys.path changes.
            for d in (package_dir, package_dir.parent, out / API_PACKAGE):
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
