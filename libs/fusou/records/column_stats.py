"""Per-block column statistics for blocks whose format carries none (Avro): each column's null
count, and its min and max where a filter can compare them (longs, doubles, booleans, and
strings of at most ``MAX_STRING_BOUND`` characters). Kept in the catalog's block index as
compact JSON, so a read can leave out a block without fetching it.

A double's bounds leave NaN out: NaN meets no comparison but `!=`, which never prunes doubles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from fusou.schema.model import FieldType, TableSchema

# Longer bounds are not kept (nor bounds holding NUL): such a block is fetched whatever the
# filter.
MAX_STRING_BOUND = 64
_BOUNDED = {FieldType.LONG, FieldType.DOUBLE, FieldType.BOOLEAN, FieldType.STRING}


@dataclass(frozen=True)
class ColumnStats:
    """One column's statistics in one block (an Avro block, or a Parquet row group)."""

    rows: int
    nulls: int | None  # None: unknown
    low: Any = None  # None (with high): no bounds known
    high: Any = None


def _bounds(column: pa.ChunkedArray, ftype: FieldType) -> tuple[Any, Any]:
    if ftype is FieldType.DOUBLE:
        column = pc.filter(column, pc.invert(pc.is_nan(column)))
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    found = pc.min_max(column).as_py()
    low, high = found["min"], found["max"]
    if low is None or high is None:
        return None, None
    if ftype is FieldType.STRING and (
        max(len(low), len(high)) > MAX_STRING_BOUND or "\x00" in low or "\x00" in high
    ):
        return None, None  # jsonb holds no NUL character
    if ftype is FieldType.DOUBLE and (math.isinf(low) or math.isinf(high)):
        return None, None  # JSON has no infinity
    return low, high


def block_stats(table: pa.Table, schema: TableSchema) -> str:
    """The statistics of one block's rows (decoded under ``schema``), serialized. The time
    field is left out: the block index holds its bounds."""
    columns: dict[str, list[Any]] = {}
    for f in schema.fields:
        if f.name == schema.time_field or f.name not in table.column_names:
            continue
        column = table.column(f.name)
        entry: list[Any] = [column.null_count]
        if f.type in _BOUNDED and column.null_count < table.num_rows:
            low, high = _bounds(column, f.type)
            if low is not None:
                entry += [low, high]
        columns[f.name] = entry
    return orjson.dumps({"rows": table.num_rows, "columns": columns}).decode()


def parse_block_stats(data: str | bytes) -> Mapping[str, ColumnStats]:
    """The columns' statistics ``block_stats`` serialized (or some of its columns, in the same
    form); a column missing from the full form was not in the block's schema version."""
    raw = orjson.loads(data)
    rows = int(raw["rows"])
    return {
        name: ColumnStats(rows, int(entry[0]), *entry[1:3])
        for name, entry in raw["columns"].items()
    }
