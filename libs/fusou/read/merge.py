"""Merging hot and cold rows: one schema, one dedup rule, the range, time order.

After every part is conformed to the table's latest schema (old fields widened, missing fields
null), two rows are duplicates exactly when their key columns are equal: the same relation the
stored dedup keys encode (nulls ignored, whole doubles equal to longs), so the merge can use
polars' multithreaded ``unique`` instead of hashing row by row.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from fusou.formats.avro_container import INGESTED_AT_FIELD, SEQ_FIELD
from fusou.schema.model import FieldType, TableSchema

# polars hands back 64-bit offsets; keeping them avoids copying every string column.
_READ_TYPES: dict[FieldType, pa.DataType] = {
    FieldType.NULL: pa.large_string(),
    FieldType.BOOLEAN: pa.bool_(),
    FieldType.LONG: pa.int64(),
    FieldType.DOUBLE: pa.float64(),
    FieldType.STRING: pa.large_string(),
    FieldType.BYTES: pa.large_binary(),
    FieldType.JSON: pa.large_string(),
}


def arrow_type(ftype: FieldType) -> pa.DataType:
    return _READ_TYPES[ftype]


def conform_to(table: pa.Table, latest: TableSchema) -> pa.Table:
    """Columns of ``latest`` (widened, missing ones null) plus the seq and ingest time."""
    n = table.num_rows
    names = set(table.column_names)
    columns: list[pa.Array | pa.ChunkedArray] = []
    fields: list[str] = []
    for f in latest.fields:
        target = arrow_type(f.type)
        if f.name in names:
            col = table.column(f.name)
            if col.type != target:
                col = pa.nulls(n, target) if pa.types.is_null(col.type) else pc.cast(col, target)
        else:
            col = pa.nulls(n, target)
        columns.append(col)
        fields.append(f.name)
    for meta in (SEQ_FIELD, INGESTED_AT_FIELD):
        col = table.column(meta)
        columns.append(col if col.type == pa.int64() else pc.cast(col, pa.int64()))
        fields.append(meta)
    return pa.Table.from_arrays(columns, names=fields)


def merge(
    parts: Sequence[pa.Table],
    latest: TableSchema,
    key_fields: Sequence[str],
    start: int,
    end: int,
) -> tuple[pa.Table, int]:
    """Keep [start, end), deduplicate (highest seq wins per key), sort by time then seq.

    Returns the merged table (still with the metadata columns) and the duplicates removed.
    """
    table = pa.concat_tables(parts) if parts else _empty(latest)
    time = latest.time_field
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.filter((pl.col(time) >= start) & (pl.col(time) < end))
    before = frame.height
    keys = (
        [k for k in key_fields if k in frame.columns]
        if key_fields
        else [f.name for f in latest.fields]
    )
    if before and not keys:
        # Declared key fields none of which the schema has: null in every row, one key.
        frame = frame.sort(SEQ_FIELD, descending=True).head(1)
    elif before:
        frame = frame.sort(SEQ_FIELD, descending=True).unique(
            subset=keys, keep="first", maintain_order=False
        )
        frame = frame.sort([time, SEQ_FIELD])
    return frame.to_arrow(), before - frame.height


def _empty(latest: TableSchema) -> pa.Table:
    arrays = [pa.array([], arrow_type(f.type)) for f in latest.fields]
    names = [f.name for f in latest.fields]
    arrays += [pa.array([], pa.int64()), pa.array([], pa.int64())]
    names += [SEQ_FIELD, INGESTED_AT_FIELD]
    return pa.Table.from_arrays(arrays, names=names)


def project(table: pa.Table, latest: TableSchema, columns: Sequence[str], limit: int) -> pa.Table:
    """The requested columns (all when empty; the time field always) and at most ``limit`` rows."""
    names = list(columns) if columns else [f.name for f in latest.fields]
    if latest.time_field not in names:
        names.insert(0, latest.time_field)
    table = table.select(names)
    if limit:
        table = table.slice(0, limit)
    return table
