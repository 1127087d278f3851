"""Merging hot and cold rows: one schema, one dedup rule, the range, time order.

After every part is conformed to the table's latest schema (old fields widened, missing fields
null), two rows are duplicates exactly when their key columns are equal: the same relation the
stored dedup keys encode (nulls ignored, whole doubles equal to longs), so the merge can use
polars' multithreaded ``unique`` instead of hashing row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from fusou.formats.avro_container import INGESTED_AT_FIELD, SEQ_FIELD
from fusou.records.batch import ARROW_TYPES
from fusou.records.order import in_time_seq_order
from fusou.records.string_dictionaries import decode_dictionaries, is_string_like
from fusou.schema.model import FieldType, TableSchema

# The types ingest normalizes to, which are also what the decoder hands back (so conforming
# copies nothing), except that a field only ever null is stored, and read, as a nullable string.
_READ_TYPES: dict[FieldType, pa.DataType] = {**ARROW_TYPES, FieldType.NULL: pa.string()}


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
            if col.type != target and not (target == pa.string() and is_string_like(col.type)):
                # Long to double (the one widening) rounds longs past 2**53, as widening means.
                col = (
                    pa.nulls(n, target)
                    if pa.types.is_null(col.type)
                    else pc.cast(col, target, safe=False)
                )
        else:
            col = pa.nulls(n, target)
        columns.append(col)
        fields.append(f.name)
    for meta in (SEQ_FIELD, INGESTED_AT_FIELD):
        col = table.column(meta)
        columns.append(col if col.type == pa.int64() else pc.cast(col, pa.int64()))
        fields.append(meta)
    return pa.Table.from_arrays(columns, names=fields)


def column_numpy(column: pa.ChunkedArray) -> np.ndarray[Any, Any]:
    """A non-empty column as one numpy array, on the column's own memory where it can be."""
    chunks = [c.to_numpy(zero_copy_only=False) for c in column.chunks]
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def merge(
    parts: Sequence[pa.Table],
    latest: TableSchema,
    key_fields: Sequence[str],
    start: int | None,
    end: int | None,
) -> tuple[pa.Table, int]:
    """Keep [start, end) (everything when both are None), deduplicate (highest seq wins per key), sort by time then seq.

    Returns the merged table (still with the metadata columns) and the duplicates removed.

    Cheap in the common case: only parts that cross an edge of the range are filtered; parts
    already in (time, seq) order (cold blocks of one file, in plan order) are not sorted; and
    when the key includes the time (the whole-record key, or key fields naming it) duplicates
    share their time, so only rows whose time repeats go through polars' ``unique``.
    """
    parts = [p for p in parts if p.num_rows]
    if not parts:
        return _empty(latest), 0
    time = latest.time_field
    kept: list[pa.Table] = []
    kept_times: list[np.ndarray[Any, Any]] = []
    for p in parts:
        # numpy on the column's own memory: an Arrow kernel call per part costs more here.
        t = column_numpy(p.column(time))
        if start is None or end is None or (t.min() >= start and t.max() < end):
            kept.append(p)
            kept_times.append(t)
        else:
            inside = np.flatnonzero((t >= start) & (t < end))
            if len(inside) and inside[-1] - inside[0] + 1 == len(inside):
                # One run of rows (a time-ordered block cut by the range): a zero-copy slice.
                kept.append(p.slice(int(inside[0]), len(inside)))
            else:
                kept.append(p.take(pa.array(inside)))
            kept_times.append(t[inside])
    if any(not p.schema.equals(kept[0].schema) for p in kept[1:]):
        # Strings dictionary-encoded in some parts only (Parquet inputs next to Avro ones).
        kept = [decode_dictionaries(p) for p in kept]
    table = pa.concat_tables(kept)
    n = table.num_rows
    if not n:
        return table, 0
    times = np.concatenate(kept_times)
    seqs = column_numpy(table.column(SEQ_FIELD))
    if not in_time_seq_order(times, seqs, strict_seqs=True):
        order = np.lexsort((seqs, times))
        table = table.take(pa.array(order))
        times, seqs = times[order], seqs[order]
    if key_fields:
        keys = [k for k in key_fields if k in table.column_names]
        if not keys:
            # Declared key fields none of which the schema has: null in every row, one key.
            best = int(np.argmax(seqs))
            return table.slice(best, 1), n - 1
    else:
        keys = [f.name for f in latest.fields]
    if time in keys:
        # Duplicates share their time: only rows whose time repeats can be duplicates.
        tie = times[1:] == times[:-1]
        if not tie.any():
            return table, 0
        mark = np.zeros(n, dtype=bool)
        mark[1:] |= tie
        mark[:-1] |= tie
        candidates = np.flatnonzero(mark)
    else:
        candidates = np.arange(n)  # duplicates may lie far apart in time
    frame = pl.from_arrow(decode_dictionaries(table.take(pa.array(candidates))))
    assert isinstance(frame, pl.DataFrame)
    winners = (
        frame.with_row_index("_fusou_row")
        .sort(SEQ_FIELD, descending=True)
        .unique(subset=keys, keep="first")
        .get_column("_fusou_row")
        .to_numpy()
    )
    if len(winners) == len(candidates):
        return table, 0
    keep = np.ones(n, dtype=bool)
    keep[candidates] = False
    keep[candidates[winners]] = True
    return table.filter(pa.array(keep)), int(n - keep.sum())


def read_schema(latest: TableSchema) -> pa.Schema:
    """What ``conform_to`` and ``merge`` hand back: the latest fields, the seq, the ingest time."""
    fields = [pa.field(f.name, arrow_type(f.type)) for f in latest.fields]
    fields += [pa.field(SEQ_FIELD, pa.int64()), pa.field(INGESTED_AT_FIELD, pa.int64())]
    return pa.schema(fields)


def _empty(latest: TableSchema) -> pa.Table:
    return read_schema(latest).empty_table()


def project(table: pa.Table, latest: TableSchema, columns: Sequence[str], limit: int) -> pa.Table:
    """The requested columns (all when empty; the time field always) and at most ``limit`` rows."""
    names = list(columns) if columns else [f.name for f in latest.fields]
    if latest.time_field not in names:
        names.insert(0, latest.time_field)
    table = table.select(names)
    if limit:
        table = table.slice(0, limit)
    return table
