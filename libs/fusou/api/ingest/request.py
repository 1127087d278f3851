"""Reading an IngestRequest's rows, in the worker process: parse, check the payload, convert
Struct rows. ``parse_rows`` is the ``ParseRows`` the domain's ``prepare`` calls."""

from __future__ import annotations

from google.protobuf.message import DecodeError

from fusou.api.decoding import locate_decode_error
from fusou.api.ingest.v1 import ingest_pb2
from fusou.api.struct_rows import batch_from_structs
from fusou.errors import FieldViolation, InvalidArgument
from fusou.ingest.prepare import ArrowStream, Limits
from fusou.records.batch import Batch


def parse_request(data: bytes) -> ingest_pb2.IngestRequest:
    try:
        return ingest_pb2.IngestRequest.FromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise locate_decode_error(data, ingest_pb2.IngestRequest, exc) from None


def check_payload(request: ingest_pb2.IngestRequest, limits: Limits) -> None:
    violations: list[FieldViolation] = []
    has_rows, has_arrow = len(request.rows) > 0, len(request.arrow_ipc) > 0
    if has_rows and has_arrow:
        violations.append(FieldViolation("rows", "set either rows or arrow_ipc, not both"))
    elif not has_rows and not has_arrow:
        violations.append(FieldViolation("rows", "no rows: set rows or arrow_ipc"))
    if len(request.rows) > limits.max_rows:
        violations.append(
            FieldViolation(
                "rows", f"{len(request.rows)} rows is over the limit of {limits.max_rows}"
            )
        )
    if len(request.arrow_ipc) > limits.max_arrow_bytes:
        violations.append(
            FieldViolation(
                "arrow_ipc",
                f"{len(request.arrow_ipc)} bytes is over the limit of {limits.max_arrow_bytes}",
            )
        )
    if violations:
        raise InvalidArgument.many(violations)


def parse_rows(data: bytes, time_field: str, limits: Limits) -> Batch | ArrowStream:
    """A serialized IngestRequest's rows: Struct rows converted, an Arrow stream as sent."""
    request = parse_request(data)
    check_payload(request, limits)
    if request.rows:
        return batch_from_structs(request.rows, time_field, limits.rows)
    return ArrowStream(request.arrow_ipc)
