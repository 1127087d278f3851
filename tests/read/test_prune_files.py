"""Pruning on real Parquet footers: statistics that cannot be trusted as bounds (timestamps the
reader truncates, NaN left out of double bounds, values past Python's dates) fetch the block
instead of leaving it out, and an unrelated column never fails a read."""

from __future__ import annotations

import io
import math

import pyarrow as pa
import pyarrow.parquet as pq

from fusou.formats.parquet_file import footer_of
from fusou.read.files import BlockRef, FileRef
from fusou.read.filters import Filter, Op
from fusou.read.prune import prune
from fusou.schema.model import FieldType, SchemaField, TableSchema

# What the tests' filters are judged under (a column it lacks counts as a long or string: only
# doubles change how bounds compare).
SCHEMA = TableSchema("t", (SchemaField("t", FieldType.LONG), SchemaField("x", FieldType.DOUBLE)), 1)


def _block(table: pa.Table, min_time: int = 0, max_time: int = 0) -> BlockRef:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    data = sink.getvalue()
    ref = FileRef(1, "k", footer_of(data), 1, True, 0, len(data), None, None)
    return BlockRef(ref, 4, len(data) - 4, 0, min_time, max_time)


def test_timestamps_other_than_the_time_field_are_not_bounds() -> None:
    # 1000.6 ms reads as 1000 (truncated); a rounded bound (1001) would leave it out.
    t = pa.table({"t": [1], "seen": pa.array([1_000_600], pa.timestamp("us"))})
    assert prune([_block(t)], [Filter("seen", Op.LE, (1000,))], SCHEMA) == ([_block(t)], 0)


def test_the_time_field_is_judged_by_the_block_index() -> None:
    t = pa.table({"t": pa.array([1_000_600], pa.timestamp("us"))})
    block = _block(t, min_time=1000, max_time=1000)
    assert prune([block], [Filter("t", Op.EQ, (1000,))], SCHEMA)[1] == 0
    assert prune([block], [Filter("t", Op.GT, (1000,))], SCHEMA)[1] == 1


def test_nan_is_not_equal_to_anything() -> None:
    t = pa.table({"t": [1, 2], "x": [math.nan, 10.0]})
    block = _block(t)
    assert prune([block], [Filter("x", Op.NE, (10.0,))], SCHEMA)[1] == 0
    assert prune([block], [Filter("x", Op.GT, (10.0,))], SCHEMA)[1] == 1


def test_a_column_past_python_dates_fails_nothing() -> None:
    far = pa.array([400_000_000_000], pa.timestamp("s"))  # year ~14,600
    t = pa.table({"t": [1], "w": far, "hp": [5]})
    block = _block(t)
    assert prune([block], [Filter("hp", Op.EQ, (6,))], SCHEMA)[1] == 1
    assert prune([block], [Filter("w", Op.EQ, (1,))], SCHEMA)[1] == 0


def test_long_bounds_of_a_column_read_as_doubles_compare_as_doubles() -> None:
    # 2**53 + 1 reads as 2**53 once the column is a double: the exact bound would leave it out.
    block = _block(pa.table({"t": [1], "x": pa.array([2**53 + 1], pa.int64())}))
    assert prune([block], [Filter("x", Op.EQ, (float(2**53),))], SCHEMA)[1] == 0
    assert prune([block], [Filter("x", Op.GT, (float(2**54),))], SCHEMA)[1] == 1
