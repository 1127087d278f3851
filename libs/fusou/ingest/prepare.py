"""The CPU half of Ingest, run in a worker process: parse, convert, fit the schema, encode.

Everything here is a pure function of its arguments (bytes in, arrays out) so it can run in a
spawn-based process; the database work stays in the main process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

from google.protobuf.message import DecodeError

from fusou.api.ingest.v1 import ingest_pb2
from fusou.buffer.copy_format import BufferRows
from fusou.errors import FieldViolation, InvalidArgument
from fusou.records.avro_datum import encode_datums
from fusou.records.batch import Batch, batch_from_arrow, batch_from_structs, conform, read_arrow_ipc
from fusou.records.columns import int64_values
from fusou.records.dedup import dedup_keys
from fusou.records.ipc_size import decoded_bytes, expanded_bytes
from fusou.records.limits import RowLimits
from fusou.schema.evolve import merge_batch_schema
from fusou.schema.model import FieldType, TableSchema
from fusou.server.decoding import locate_decode_error


@dataclass(frozen=True)
class TableContext:
    """What the worker needs to know about the target table (its latest version)."""

    table_id: int  # 0 when the table does not exist yet
    time_field: str
    key_fields: tuple[str, ...]
    version: int
    schema_json: str  # the latest version's Avro schema; "" for version 0


@dataclass(frozen=True)
class Limits:
    max_rows: int
    max_arrow_bytes: int  # as sent, and again as decoded (a compressed stream inflates)
    rows: RowLimits = field(default_factory=RowLimits)


@dataclass(frozen=True)
class Prepared:
    """Either rows ready for the buffer, or the batch's types when the schema must grow."""

    rows: BufferRows | None
    grow_to: dict[str, FieldType] | None
    num_rows: int


@lru_cache(maxsize=256)
def _schema(schema_json: str, version: int, time_field: str) -> TableSchema:
    if not schema_json:
        return TableSchema.initial(time_field)
    return TableSchema.from_avro(json.loads(schema_json), version)


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


def convert(request: ingest_pb2.IngestRequest, time_field: str, limits: Limits) -> Batch:
    if request.rows:
        return batch_from_structs(request.rows, time_field, limits.rows)
    decoded = decoded_bytes(request.arrow_ipc, "arrow_ipc")
    if decoded > limits.max_arrow_bytes:
        raise InvalidArgument(
            "arrow_ipc",
            f"decodes to {decoded} bytes, over the limit of {limits.max_arrow_bytes} "
            "(FUSOU_INGEST_MAX_BYTES)",
        )
    table = read_arrow_ipc(request.arrow_ipc, limits.rows)
    # Dictionary columns are small as sent and decode to a copy of the value per row.
    expanded = expanded_bytes(table)
    if expanded > limits.max_arrow_bytes:
        raise InvalidArgument(
            "arrow_ipc",
            f"decodes to {expanded} bytes (dictionaries expanded), over the limit of "
            f"{limits.max_arrow_bytes} (FUSOU_INGEST_MAX_BYTES)",
        )
    batch = batch_from_arrow(table, time_field, field_prefix="arrow_ipc", limits=limits.rows)
    if batch.num_rows > limits.max_rows:
        raise InvalidArgument(
            "arrow_ipc", f"{batch.num_rows} rows is over the limit of {limits.max_rows}"
        )
    return batch


def prepare(data: bytes, table: TableContext, limits: Limits, ingested_at: int) -> Prepared:
    """Parse and check a serialized IngestRequest and encode its rows for the buffer."""
    request = parse_request(data)
    check_payload(request, limits)
    batch = convert(request, table.time_field, limits)
    latest = _schema(table.schema_json, table.version, table.time_field)
    # Raises on a conflicting type, or on a table grown past the field limit.
    merged = merge_batch_schema(latest, batch.types, max_fields=limits.rows.max_fields)
    if merged.changed or table.table_id == 0:
        return Prepared(None, dict(batch.types), batch.num_rows)
    return Prepared(encode_rows(batch, table, latest, ingested_at), None, batch.num_rows)


def encode_rows(
    batch: Batch, table: TableContext, schema: TableSchema, ingested_at: int
) -> BufferRows:
    types = {f.name: f.type for f in schema.fields}
    conformed = conform(batch, types, schema.names)
    return BufferRows(
        table_id=table.table_id,
        schema_version=schema.version,
        ingested_at=ingested_at,
        event_times=int64_values(conformed.column(schema.time_field).combine_chunks()),
        dedup_keys=dedup_keys(conformed, types, table.key_fields),
        records=encode_datums(conformed, schema),
    )
