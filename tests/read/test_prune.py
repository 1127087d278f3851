"""What a block's statistics say a filter may meet."""

from __future__ import annotations

import pytest

from fusou.read.filters import Filter, Op
from fusou.read.prune import ABSENT, ColumnStats, may_match

STATS: dict[str, ColumnStats | None] = {
    "n": ColumnStats(rows=10, nulls=0, low=10, high=20),
    "same": ColumnStats(rows=10, nulls=0, low=5, high=5),
    "halves": ColumnStats(rows=10, nulls=0, low=0.5, high=0.5),
    "gappy": ColumnStats(rows=10, nulls=3, low="b", high="d"),
    "empty": ColumnStats(rows=10, nulls=10),
    "unknown": ColumnStats(rows=10, nulls=None),
    "nested": None,
    "raw": ColumnStats(rows=10, nulls=0, low=b"a", high=b"z"),
}


@pytest.mark.parametrize(
    ("f", "may"),
    [
        (Filter("n", Op.EQ, (15,)), True),
        (Filter("n", Op.EQ, (21,)), False),
        (Filter("n", Op.LT, (10,)), False),
        (Filter("n", Op.LE, (10,)), True),
        (Filter("n", Op.GT, (20,)), False),
        (Filter("n", Op.GE, (20.0,)), True),
        (Filter("n", Op.IN, (1, 2, 30)), False),
        (Filter("n", Op.IN, (1, 12)), True),
        (Filter("n", Op.NE, (15,)), True),
        (Filter("same", Op.NE, (5,)), False),
        (Filter("halves", Op.NE, (0.5,)), True),  # NaN, left out of the statistics, is != 0.5
        (Filter("n", Op.IS_NULL), False),
        (Filter("gappy", Op.IS_NULL), True),
        (Filter("gappy", Op.EQ, ("a",)), False),
        (Filter("empty", Op.EQ, (1,)), False),
        (Filter("empty", Op.IS_NOT_NULL), False),
        (Filter("empty", Op.IS_NULL), True),
        (Filter("unknown", Op.EQ, (1,)), True),
        (Filter("nested", Op.EQ, ("x",)), True),
        (Filter("raw", Op.EQ, ("q",)), True),  # bytes against a string: fetched
        (Filter("absent", Op.EQ, (1,)), False),  # the file lacks the column: all null
        (Filter("absent", Op.IS_NULL), True),
    ],
    ids=str,
)
def test_may_match(f: Filter, may: bool) -> None:
    assert may_match(f, STATS.get(f.column, ABSENT)) is may
