"""The protobuf API: generated code is current, ``buf lint`` passes, and the contract that DESIGN.md
and issue 2 fix (packages, RPC and message names, enum zero values, request fields) holds."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    FileDescriptor,
)

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN_SCRIPT = ROOT / "scripts" / "gen_protos.py"
REGENERATE = "run `python scripts/gen_protos.py` and commit the result"
SERVICE_DIRS = ("ingest", "archiver", "compactor", "reader")


def proto_sources() -> list[Path]:
    return sorted(PROTOS.rglob("*.proto"))


def module_name(proto: Path, suffix: str) -> str:
    """protos/fusou/x/v1/f.proto -> fusou.api.x.v1.f<suffix>: generated code is in the API layer."""
    relative = proto.relative_to(PROTOS).with_suffix("")
    return ".".join(("fusou", "api", *relative.parts[1:])) + suffix


def pb2(proto: Path) -> ModuleType:
    return importlib.import_module(module_name(proto, "_pb2"))


def file_descriptors() -> list[FileDescriptor]:
    return [pb2(proto).DESCRIPTOR for proto in proto_sources()]


def load_gen_protos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fusou_gen_protos", GEN_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# (a) The checked-in (or installed) generated code is what the generator makes today.
# ---------------------------------------------------------------------------------------------


def test_protos_exist_for_every_service() -> None:
    found = {proto.relative_to(PROTOS).parts[1] for proto in proto_sources()}
    assert set(SERVICE_DIRS) <= found, found


def test_every_proto_is_generated_and_importable() -> None:
    gen_protos = load_gen_protos()
    listed = {Path(p).resolve() for p in gen_protos.proto_files()}
    for proto in proto_sources():
        assert proto.resolve() in listed, (
            f"{proto.relative_to(ROOT)} is not picked up by scripts/gen_protos.py"
        )
        module = pb2(proto)
        assert module.DESCRIPTOR.name == proto.relative_to(PROTOS).as_posix()
        stub = Path(module.__file__ or "").with_suffix(".pyi")
        assert stub.is_file(), f"no typing stub {stub.name}; {REGENERATE}"
        if module.DESCRIPTOR.services_by_name:
            grpc_module = importlib.import_module(module_name(proto, "_pb2_grpc"))
            for service in module.DESCRIPTOR.services_by_name:
                assert hasattr(grpc_module, f"{service}Stub"), service
                assert hasattr(grpc_module, f"add_{service}Servicer_to_server"), service


def test_generated_code_is_not_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen_protos = load_gen_protos()
    # generate() prepends the venv's bin dir to PATH for the protoc plugins; undo that after.
    monkeypatch.setenv("PATH", os.environ.get("PATH", ""))
    out = tmp_path / "generated"
    written = [Path(p) for p in gen_protos.generate(out)]

    problems: list[str] = []
    compared = 0
    for proto in proto_sources():
        fresh_dir = out / gen_protos.api_path(proto.relative_to(PROTOS).parent)
        installed_dir = Path(pb2(proto).__file__ or "").parent
        fresh = {p.name for p in fresh_dir.iterdir() if "_pb2" in p.name}
        installed = {p.name for p in installed_dir.iterdir() if "_pb2" in p.name}
        assert fresh, f"the generator wrote nothing for {proto.name}"
        for name in sorted(fresh - installed):
            problems.append(f"missing: {installed_dir / name}")
        for name in sorted(installed - fresh):
            problems.append(f"left over (no longer generated): {installed_dir / name}")
        for name in sorted(fresh & installed):
            compared += 1
            if (fresh_dir / name).read_bytes() != (installed_dir / name).read_bytes():
                problems.append(f"stale: {installed_dir / name}")
    assert not problems, (
        "generated code is out of date; " + REGENERATE + ":\n" + "\n".join(problems)
    )
    # Stubs, messages and gRPC code for each file.
    assert compared >= 4 * len(SERVICE_DIRS)
    assert all(p.is_relative_to(out) for p in written)


def test_generated_code_and_dependency_floors_agree() -> None:
    # The generated modules refuse an older runtime, so the declared floors must match them.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]

    def floor(package: str, op: str = ">=") -> str:
        for requirement in requirements:
            found = re.fullmatch(
                rf"{re.escape(package)}\s*{re.escape(op)}\s*([\w.]+).*", requirement
            )
            if found:
                return found[1]
        raise AssertionError(f"no {package}{op}... requirement in pyproject.toml")

    for proto in proto_sources():
        source = Path(pb2(proto).__file__ or "").read_text()
        generated_protobuf = re.search(r"# Protobuf Python Version: ([\w.]+)", source)
        assert generated_protobuf, proto
        assert _version(floor("protobuf")) >= _version(generated_protobuf[1]), proto
        grpc_module = importlib.import_module(module_name(proto, "_pb2_grpc"))
        generated_grpc: str = grpc_module.GRPC_GENERATED_VERSION
        assert floor("grpcio") == generated_grpc, proto
        assert floor("grpcio-tools", "==") == generated_grpc, proto


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


# ---------------------------------------------------------------------------------------------
# (b) buf lint.
# ---------------------------------------------------------------------------------------------


def buf_binary() -> str:
    local = Path(sys.executable).parent / "buf"
    found = str(local) if local.is_file() else shutil.which("buf")
    if found is None:
        pytest.fail("buf is not installed (pip install buf-bin, a dev dependency)")
    return found


def run_buf_lint(cwd: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BUF_CACHE_DIR": str(tmp_path / "buf-cache")}
    return subprocess.run(
        [buf_binary(), "lint"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_buf_lint_passes(tmp_path: Path) -> None:
    done = run_buf_lint(PROTOS, tmp_path)
    assert done.returncode == 0, f"buf lint failed:\n{done.stdout}{done.stderr}"


def test_buf_lint_would_catch_a_violation(tmp_path: Path) -> None:
    # The lint configuration is effective: the same module plus one bad file fails.
    copy = tmp_path / "protos"
    shutil.copytree(PROTOS, copy)
    bad = copy / "fusou" / "ingest" / "v1" / "bad.proto"
    bad.write_text(
        'syntax = "proto3";\n\npackage fusou.ingest.v1;\n\nenum Colour {\n  RED = 0;\n}\n'
    )
    done = run_buf_lint(copy, tmp_path)
    assert done.returncode != 0
    assert "bad.proto" in done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------
# (c) The API contract, read from the descriptors.
# ---------------------------------------------------------------------------------------------


def _messages(file: FileDescriptor) -> Iterator[Descriptor]:
    def walk(message: Descriptor) -> Iterator[Descriptor]:
        yield message
        for nested in message.nested_types:
            yield from walk(nested)

    for message in file.message_types_by_name.values():
        yield from walk(message)


def _enums(file: FileDescriptor) -> Iterator[EnumDescriptor]:
    yield from file.enum_types_by_name.values()
    for message in _messages(file):
        yield from message.enum_types


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def test_every_package_is_fusou_service_v1() -> None:
    for proto in proto_sources():
        file = pb2(proto).DESCRIPTOR
        service_dir = proto.relative_to(PROTOS).parts[1]
        assert file.package == f"fusou.{service_dir}.v1", (proto, file.package)
        assert re.fullmatch(r"fusou\.[a-z]+\.v1", file.package), file.package
        for service in file.services_by_name.values():
            assert service.full_name == f"fusou.{service_dir}.v1.{service.name}"
            assert service.name.endswith("Service"), service.full_name


def test_every_rpc_has_its_own_request_and_response_messages() -> None:
    seen: set[str] = set()
    rpcs = 0
    for file in file_descriptors():
        for service in file.services_by_name.values():
            for method in service.methods:
                rpcs += 1
                request = f"{file.package}.{method.name}Request"
                response = f"{file.package}.{method.name}Response"
                assert method.input_type.full_name == request, method.full_name
                assert method.output_type.full_name == response, method.full_name
                assert request not in seen and response not in seen, method.full_name
                seen |= {request, response}
    assert rpcs >= 6


def test_every_enum_starts_with_an_unspecified_zero_value() -> None:
    enums = 0
    for file in file_descriptors():
        for enum in _enums(file):
            enums += 1
            zero = enum.values_by_number.get(0)
            assert zero is not None, f"{enum.full_name} has no zero value"
            assert zero.name.endswith("_UNSPECIFIED"), f"{enum.full_name}: {zero.name}"
            prefix = _upper_snake(enum.name) + "_"
            assert zero.name == prefix + "UNSPECIFIED", f"{enum.full_name}: {zero.name}"
            for value in enum.values:
                assert value.name.startswith(prefix), f"{enum.full_name}: {value.name}"
    assert enums >= 1


def _method(package: str, service: str, rpc: str) -> Any:
    for file in file_descriptors():
        if file.package == package and service in file.services_by_name:
            methods = file.services_by_name[service].methods_by_name
            assert rpc in methods, f"{package}.{service} has no {rpc}"
            return methods[rpc]
    raise AssertionError(f"no service {package}.{service}")


@pytest.mark.parametrize(
    ("package", "service", "rpc", "client_streaming", "server_streaming"),
    [
        ("fusou.ingest.v1", "IngestService", "Ingest", False, False),
        ("fusou.ingest.v1", "IngestService", "UploadRaw", True, False),
        ("fusou.archiver.v1", "ArchiverService", "Archive", False, False),
        ("fusou.compactor.v1", "CompactorService", "Compact", False, False),
        ("fusou.reader.v1", "ReaderService", "ReadRange", False, True),
        ("fusou.reader.v1", "ReaderService", "GetStats", False, False),
    ],
)
def test_the_rpcs_of_the_design_exist_with_their_shapes(
    package: str, service: str, rpc: str, client_streaming: bool, server_streaming: bool
) -> None:
    method = _method(package, service, rpc)
    assert method.client_streaming is client_streaming, method.full_name
    assert method.server_streaming is server_streaming, method.full_name


def _message(full_name: str) -> Descriptor:
    for file in file_descriptors():
        for message in _messages(file):
            if message.full_name == full_name:
                return message
    raise AssertionError(f"no message {full_name}")


Check = Callable[[FieldDescriptor], bool]


def scalar(kind: int) -> Check:
    return lambda f: f.type == kind and not f.is_repeated


def repeated(kind: int) -> Check:
    return lambda f: f.type == kind and f.is_repeated


def message(full_name: str, *, many: bool = False) -> Check:
    return lambda f: (
        f.type == FieldDescriptor.TYPE_MESSAGE
        and f.message_type is not None
        and f.message_type.full_name == full_name
        and f.is_repeated is many
    )


INTEGERS = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
}


@pytest.mark.parametrize(
    ("full_name", "expected"),
    [
        (
            "fusou.ingest.v1.IngestRequest",
            {
                "dataset_id": scalar(FieldDescriptor.TYPE_STRING),
                "table": scalar(FieldDescriptor.TYPE_STRING),
                "request_id": scalar(FieldDescriptor.TYPE_STRING),
                "rows": message("google.protobuf.Struct", many=True),
                "arrow_ipc": scalar(FieldDescriptor.TYPE_BYTES),
            },
        ),
        (
            "fusou.reader.v1.ReadRangeRequest",
            {
                "dataset_id": scalar(FieldDescriptor.TYPE_STRING),
                "table": scalar(FieldDescriptor.TYPE_STRING),
                "start_time": message("google.protobuf.Timestamp"),
                "end_time": message("google.protobuf.Timestamp"),
                "columns": repeated(FieldDescriptor.TYPE_STRING),
                "limit": lambda f: f.type in INTEGERS and not f.is_repeated,
                "format": lambda f: f.type == FieldDescriptor.TYPE_ENUM and not f.is_repeated,
            },
        ),
    ],
)
def test_request_fields(full_name: str, expected: dict[str, Check]) -> None:
    fields = _message(full_name).fields_by_name
    for name, check in expected.items():
        assert name in fields, f"{full_name} has no field {name}"
        field = fields[name]
        assert check(field), f"{full_name}.{name} has the wrong type ({field.type})"


def test_read_range_format_offers_json_and_arrow_ipc() -> None:
    enum = _message("fusou.reader.v1.ReadRangeRequest").fields_by_name["format"].enum_type
    assert enum is not None
    names = {value.name for value in enum.values}
    assert any(name.endswith("_JSON") for name in names), names
    assert any(name.endswith("_ARROW_IPC") for name in names), names
