"""Merging hot and cold rows: one schema, one dedup rule, the range, time order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fusou.formats.avro_container import INGESTED_AT_FIELD, SEQ_FIELD
from fusou.records.batch import ARROW_TYPES
from fusou.records.dedup import dedup_keys
from fusou.schema.model import FieldType, TableSchema


def arrow_type(ftype: FieldType) -> pa.DataType:
    # A field that only ever held null reads as a null string column.
    return pa.string() if ftype is FieldType.NULL else ARROW_TYPES[ftype]


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
                col = (
                    pc.cast(col, target) if not pa.types.is_null(col.type) else pa.nulls(n, target)
                )
        else:
            col = pa.nulls(n, target)
        columns.append(col)
        fields.append(f.name)
    for meta in (SEQ_FIELD, INGESTED_AT_FIELD):
        columns.append(pc.cast(table.column(meta), pa.int64()))
        fields.append(meta)
    return pa.Table.from_arrays(columns, names=fields)


def merge(
    parts: Sequence[pa.Table],
    latest: TableSchema,
    key_fields: Sequence[str],
    start: int,
    end: int,
) -> tuple[pa.Table, int]:
    """Deduplicate (highest seq wins per key), keep [start, end), sort by time then seq.

    Returns the merged table (still with the metadata columns) and the number of duplicates
    removed.
    """
    if not parts:
        empty = conform_to(_empty(latest), latest)
        return empty, 0
    table = pa.concat_tables(parts).combine_chunks()
    time = table.column(latest.time_field)
    in_range = pc.and_(pc.greater_equal(time, start), pc.less(time, end))
    table = table.filter(in_range)
    n = table.num_rows
    duplicates = 0
    if n:
        types = {f.name: f.type for f in latest.fields}
        payload = table.drop_columns([SEQ_FIELD, INGESTED_AT_FIELD])
        keys = dedup_keys(payload, types, key_fields).view(np.uint64).reshape(n, 2)
        seqs = table.column(SEQ_FIELD).to_numpy()
        # Group equal keys with the highest seq first; keep the first row of each group.
        order = np.lexsort((-seqs, keys[:, 1], keys[:, 0]))
        k = keys[order]
        first = np.ones(n, dtype=bool)
        first[1:] = (k[1:] != k[:-1]).any(axis=1)
        keep = order[first]
        duplicates = n - len(keep)
        table = table.take(pa.array(keep))
        sort_keys = [(latest.time_field, "ascending"), (SEQ_FIELD, "ascending")]
        table = table.take(pc.sort_indices(table, sort_keys=sort_keys))
    return table, duplicates


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
