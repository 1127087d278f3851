"""Leaving out, before fetching them, the blocks whose statistics say no row can meet a read's
filters.

The statistics are the row groups' min, max and null counts in the Parquet footers the
catalog keeps (raw fragments and compacted files), and for Avro blocks the bounds of the time
field the block index holds (their other columns have no statistics: such blocks are fetched). Pruning must not change which version of a key wins, since filters apply after the
dedup rule: a block left out could hold the newest version of a key whose older version, in a
fetched block, would then win. So a read prunes by a filter only when every version of a key
meets it alike: on any column of a table without key fields (its duplicates are identical
records), on the key fields of a table with them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fusou.catalog.tables import TableInfo
from fusou.formats.parquet_file import metadata_of, row_group_at
from fusou.read.files import BlockRef
from fusou.read.filters import Filter, Op
from fusou.schema.model import FieldType


@dataclass(frozen=True)
class ColumnStats:
    rows: int
    nulls: int | None  # None: unknown
    low: Any = None  # None (with high): no min/max known
    high: Any = None


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


def _plain(value: Any) -> Any:
    # Timestamps (the time field of compacted files) compare as FUSOU's epoch milliseconds.
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return round(aware.timestamp() * 1000)
    return value


@lru_cache(maxsize=512)
def _top_level(footer: bytes) -> frozenset[str]:
    return frozenset(metadata_of(footer).schema.to_arrow_schema().names)


@lru_cache(maxsize=4096)
def row_group_stats(footer: bytes, index: int) -> dict[str, ColumnStats | None]:
    """The statistics of row group ``index`` of the file whose footer is ``footer``, by column;
    None for a column stored nested (a struct or a list: nothing to compare)."""
    group = metadata_of(footer).row_group(index)
    out: dict[str, ColumnStats | None] = dict.fromkeys(_top_level(footer))
    for c in range(group.num_columns):
        column = group.column(c)
        s = column.statistics
        if s is None:
            out[column.path_in_schema] = ColumnStats(group.num_rows, None)
            continue
        nulls = s.null_count if s.has_null_count else None
        if s.has_min_max:
            out[column.path_in_schema] = ColumnStats(
                group.num_rows, nulls, _plain(s.min), _plain(s.max)
            )
        else:
            out[column.path_in_schema] = ColumnStats(group.num_rows, nulls)
    return out


def _may_compare(f: Filter, low: Any, high: Any) -> bool:
    if f.op is Op.EQ:
        return bool(low <= f.values[0] <= high)
    if f.op is Op.NE:
        return not low == high == f.values[0]
    if f.op is Op.LT:
        return bool(low < f.values[0])
    if f.op is Op.LE:
        return bool(low <= f.values[0])
    if f.op is Op.GT:
        return bool(high > f.values[0])
    if f.op is Op.GE:
        return bool(high >= f.values[0])
    return any(low <= v <= high for v in f.values)  # IN


def may_match(f: Filter, stats: dict[str, ColumnStats | None]) -> bool:
    """Whether some row of a block with ``stats`` may meet ``f``."""
    if f.column not in stats:
        return f.op is Op.IS_NULL  # the block's file lacks the column: null in every row
    s = stats[f.column]
    if s is None:
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
        return True  # statistics of another kind than the operand (bytes, say): fetch it


def prune(
    blocks: Sequence[BlockRef], filters: Sequence[Filter], time_field: str
) -> tuple[list[BlockRef], int]:
    """The blocks some row of which may meet every filter, and how many were left out. Avro
    blocks are judged by the time field alone, whose bounds the block index holds."""
    if not filters:
        return list(blocks), 0
    on_time = [f for f in filters if f.column == time_field]
    kept: list[BlockRef] = []
    for b in blocks:
        if b.file.parquet:
            stats = row_group_stats(b.file.header, row_group_at(b.file.header, b.first_row or 0))
            if not all(may_match(f, stats) for f in filters):
                continue
        elif on_time and b.min_time is not None and b.max_time is not None:
            # Rows have a time always; the count only has to exceed the (zero) nulls.
            bounds: dict[str, ColumnStats | None] = {
                time_field: ColumnStats(1, 0, b.min_time, b.max_time)
            }
            if not all(may_match(f, bounds) for f in on_time):
                continue
        kept.append(b)
    return kept, len(blocks) - len(kept)
