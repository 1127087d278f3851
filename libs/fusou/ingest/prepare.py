"""The CPU half of Ingest, run in a worker process: parse, convert, fit the schema, encode.

Everything here is a pure function of its arguments (bytes in, arrays out) so it can run in a
spawn-based process; the database work stays in the main process. Reading the request's bytes
is the wire's business: the API layer hands ``prepare`` a top-level (so picklable) function
that parses them (``ParseRows``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeAlias

from fusou.buffer.copy_format import BufferRows
from fusou.errors import InvalidArgument
from fusou.records.avro_datum import encode_datums
from fusou.records.batch import Batch, batch_from_arrow, conform, read_arrow_ipc
from fusou.records.columns import int64_values
from fusou.records.dedup import dedup_keys
from fusou.records.ipc_size import decoded_bytes, expanded_bytes
from fusou.records.limits import RowLimits
from fusou.schema.evolve import merge_batch_schema
from fusou.schema.model import FieldType, TableSchema


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


@dataclass(frozen=True, slots=True)
class ArrowStream:
    """A request's rows as an Arrow IPC stream, as sent: read and checked here."""

    data: bytes


# How the API layer reads a request's bytes: ``parse(data, time_field, limits)`` checks the
# request against ``limits`` and returns its rows, either converted to a batch (whose time field
# is ``time_field``) or as an Arrow stream still to read. A top-level function, so it pickles.
ParseRows: TypeAlias = Callable[[bytes, str, Limits], Batch | ArrowStream]


@lru_cache(maxsize=256)
def _schema(schema_json: str, version: int, time_field: str) -> TableSchema:
    if not schema_json:
        return TableSchema.initial(time_field)
    return TableSchema.from_avro(json.loads(schema_json), version)


def read_arrow_stream(stream: ArrowStream, time_field: str, limits: Limits) -> Batch:
    """The stream's rows as a batch, refused past any of ``limits`` (as sent and as decoded)."""
    data = stream.data
    decoded = decoded_bytes(data, "arrow_ipc")
    if decoded > limits.max_arrow_bytes:
        raise InvalidArgument(
            "arrow_ipc",
            f"decodes to {decoded} bytes, over the limit of {limits.max_arrow_bytes} "
            "(FUSOU_INGEST_MAX_BYTES)",
        )
    table = read_arrow_ipc(data, limits.rows)
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


def prepare(
    parse: ParseRows, data: bytes, table: TableContext, limits: Limits, ingested_at: int
) -> Prepared:
    """Parse and check a request's rows (``parse`` reads ``data``) and encode them for the
    buffer."""
    rows = parse(data, table.time_field, limits)
    batch = rows if isinstance(rows, Batch) else read_arrow_stream(rows, table.time_field, limits)
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
