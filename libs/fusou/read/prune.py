"""Leaving out, before fetching them, the blocks whose statistics say no row can meet a read's
filters.

The statistics are the row groups' min, max and null counts in the Parquet footers the
catalog keeps (raw fragments and compacted files), the statistics the archiver kept in the
block index for Avro blocks, and the bounds of the time field the block index holds. Pruning must not change which version of a key wins, since filters apply after the
dedup rule: a block left out could hold the newest version of a key whose older version, in a
fetched block, would then win. So a read prunes by a filter only when every version of a key
meets it alike: on any column of a table without key fields (its duplicates are identical
records), on the key fields of a table with them.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from fusou.catalog.tables import TableInfo
from fusou.formats.parquet_file import metadata_of, row_group_at
from fusou.read.files import BlockRef
from fusou.read.filters import Filter, Op
from fusou.records.column_stats import ColumnStats, parse_block_stats

__all__ = ["ABSENT", "UNKNOWN", "ColumnStats", "column_stats", "may_match", "prunable", "prune"]
from fusou.schema.model import FieldType, TableSchema

# Types whose Parquet statistics compare with a filter's operand as the filter does (JSON is
# nested in raw fragments and compared as text by filters; bytes take only null tests).
_COMPARABLE = {FieldType.LONG, FieldType.DOUBLE, FieldType.STRING, FieldType.BOOLEAN}


def prunable(filters: Sequence[Filter], info: TableInfo) -> list[Filter]:
    """The filters blocks may be left out by (see the module's docstring)."""
    out = []
    for f in filters:
        field = info.latest.get(f.column)
        if field is None or (info.key_fields and f.column not in info.key_fields):
            continue
        if field.type in _COMPARABLE or f.op in (Op.IS_NULL, Op.IS_NOT_NULL):
            out.append(f)
    return out


# What a column's statistics are when nothing is known of them: the block may match.
UNKNOWN = None
# A filtered column the block's file does not hold: null in every row of the block.
ABSENT = "absent"


def _usable(value: Any) -> bool:
    # Timestamps other than the time field: the reader truncates them to milliseconds, and a
    # rounded bound could exclude a row; NaN bounds (older writers) bound nothing.
    if isinstance(value, dt.datetime | dt.date | bytes):
        return False
    return not (isinstance(value, float) and math.isnan(value))


@lru_cache(maxsize=512)
def _columns_of(footer: bytes) -> dict[str, int | None]:
    """Top-level column -> its leaf's index in the row groups (None: stored nested)."""
    meta = metadata_of(footer)
    leaves = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    return {name: leaves.get(name) for name in meta.schema.to_arrow_schema().names}


@lru_cache(maxsize=8192)
def column_stats(footer: bytes, index: int, column: str) -> ColumnStats | str | None:
    """The statistics of ``column`` in row group ``index`` of the file whose footer is
    ``footer``: ABSENT when the file lacks the column, UNKNOWN when nothing usable is known
    (nested, no statistics, or statistics that do not decode)."""
    leaf = _columns_of(footer).get(column, -1)
    if leaf == -1:
        return ABSENT
    if leaf is None:
        return UNKNOWN
    try:
        group = metadata_of(footer).row_group(index)
        s = group.column(leaf).statistics
        if s is None:
            return UNKNOWN
        nulls = s.null_count if s.has_null_count else None
        if s.has_min_max and _usable(s.min) and _usable(s.max):
            return ColumnStats(group.num_rows, nulls, s.min, s.max)
        return ColumnStats(group.num_rows, nulls)
    except (ValueError, OverflowError, TypeError, ArithmeticError):
        return UNKNOWN  # a value out of Python's ranges (a date past year 9999, say)


def _may_compare(f: Filter, low: Any, high: Any) -> bool:
    if f.op is Op.EQ:
        return bool(low <= f.values[0] <= high)
    if f.op is Op.NE:
        # NaN is left out of double statistics, and NaN != x holds: fetch.
        return isinstance(low, float) or not low == high == f.values[0]
    if f.op is Op.LT:
        return bool(low < f.values[0])
    if f.op is Op.LE:
        return bool(low <= f.values[0])
    if f.op is Op.GT:
        return bool(high > f.values[0])
    if f.op is Op.GE:
        return bool(high >= f.values[0])
    return any(low <= v <= high for v in f.values)  # IN


def may_match(f: Filter, s: ColumnStats | str | None) -> bool:
    """Whether some row of a block whose statistics of ``f.column`` are ``s`` may meet it."""
    if s == ABSENT:
        return f.op is Op.IS_NULL
    if not isinstance(s, ColumnStats):
        return True
    if f.op is Op.IS_NULL:
        return s.nulls is None or s.nulls > 0
    all_null = s.nulls is not None and s.nulls >= s.rows
    if f.op is Op.IS_NOT_NULL or all_null:
        return not all_null
    if s.low is None or s.high is None:
        return True
    try:
        return _may_compare(f, s.low, s.high)
    except TypeError:
        return True  # statistics of another kind than the operand: fetch it


def prune(
    blocks: Sequence[BlockRef], filters: Sequence[Filter], latest: TableSchema
) -> tuple[list[BlockRef], int]:
    """The blocks some row of which may meet every filter, and how many were left out. The time
    field is judged by the block index's bounds (what the reader itself stores as the rows'
    milliseconds), other columns by Parquet statistics or the block index's statistics of
    Avro blocks (blocks archived before those were kept have none: fetched)."""
    if not filters:
        return list(blocks), 0
    doubles = {f.name for f in latest.fields if f.type is FieldType.DOUBLE}
    kept: list[BlockRef] = []
    for b in blocks:
        avro = None
        if not b.file.parquet and b.column_stats is not None:
            avro = parse_block_stats(b.column_stats)
        if all(
            _block_may_match(b, avro, f, latest.time_field, f.column in doubles) for f in filters
        ):
            kept.append(b)
    return kept, len(blocks) - len(kept)


def _as_read(s: ColumnStats | str | None, double: bool) -> ColumnStats | str | None:
    """Statistics as the reader's values compare: a long column widened to double since is
    read as doubles, whose rounding moves values only as far as their bounds' own rounding."""
    if not double or not isinstance(s, ColumnStats) or s.low is None or s.high is None:
        return s
    if isinstance(s.low, bool) or isinstance(s.high, bool):
        return ColumnStats(s.rows, s.nulls)
    return ColumnStats(s.rows, s.nulls, float(s.low), float(s.high))


def _block_may_match(
    b: BlockRef,
    avro: Mapping[str, ColumnStats] | None,
    f: Filter,
    time_field: str,
    double: bool,
) -> bool:
    """Whether a row of ``b`` may meet ``f``; ``avro``: the statistics of an Avro block's
    filtered columns (None: it has none)."""
    if f.column == time_field:
        if b.min_time is None or b.max_time is None:
            return True
        return may_match(f, ColumnStats(1, 0, b.min_time, b.max_time))
    if not b.file.parquet:
        if avro is None:
            return True
        found = avro.get(f.column)
        if found is None:
            return may_match(f, ABSENT)  # not in the block's schema version: null throughout
        return may_match(f, _as_read(found, double))
    group = row_group_at(b.file.header, b.first_row or 0)
    return may_match(f, _as_read(column_stats(b.file.header, group, f.column), double))
