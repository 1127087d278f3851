"""Column statistics of Avro blocks: bounds a filter can trust, or none."""

from __future__ import annotations

import math

import pyarrow as pa

from fusou.records.column_stats import (
    MAX_STRING_BOUND,
    ColumnStats,
    block_stats,
    parse_block_stats,
)
from fusou.schema.model import FieldType, SchemaField, TableSchema

SCHEMA = TableSchema(
    "t",
    (
        SchemaField("t", FieldType.LONG),
        SchemaField("n", FieldType.LONG),
        SchemaField("x", FieldType.DOUBLE),
        SchemaField("s", FieldType.STRING),
        SchemaField("b", FieldType.BOOLEAN),
        SchemaField("j", FieldType.JSON),
        SchemaField("gone", FieldType.LONG),
    ),
    1,
)


def _stats(**columns: pa.Array) -> dict[str, ColumnStats]:
    table = pa.table({"t": pa.array([1, 2, 3], pa.int64()), **columns})
    return dict(parse_block_stats(block_stats(table, SCHEMA)))


def test_bounds_and_null_counts_of_each_kind() -> None:
    stats = _stats(
        n=pa.array([5, None, -2], pa.int64()),
        x=pa.array([1.5, math.nan, -0.5]),
        s=pa.array(["b", "a", None]).dictionary_encode(),
        b=pa.array([True, True, None]),
        j=pa.array(['{"a":1}', None, "[]"]),
    )
    assert stats["n"] == ColumnStats(3, 1, -2, 5)
    assert stats["x"] == ColumnStats(3, 0, -0.5, 1.5)  # NaN left out of the bounds
    assert stats["s"] == ColumnStats(3, 1, "a", "b")
    assert stats["b"] == ColumnStats(3, 1, True, True)
    assert stats["j"] == ColumnStats(3, 1)  # JSON: null counts only
    assert "t" not in stats  # the block index holds the time field's bounds
    assert "gone" not in stats  # not in the block: null throughout, as its absence says


def test_columns_without_usable_bounds_keep_their_null_counts() -> None:
    stats = _stats(
        n=pa.nulls(3, pa.int64()),
        x=pa.array([math.nan, math.nan, None]),
        s=pa.array(["a", "z" * (MAX_STRING_BOUND + 1), "m"]),
    )
    assert stats["n"] == ColumnStats(3, 3)
    assert stats["x"] == ColumnStats(3, 1)
    assert stats["s"] == ColumnStats(3, 0)


def test_infinite_doubles_leave_no_bounds() -> None:
    assert _stats(x=pa.array([-math.inf, 0.0, 1.0]))["x"] == ColumnStats(3, 0)


def test_strings_holding_nul_leave_no_bounds() -> None:
    # jsonb holds no NUL: such bounds would fail the block's registration.
    assert _stats(s=pa.array(["a\x00b", "c", None]))["s"] == ColumnStats(3, 1)
