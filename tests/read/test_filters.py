"""Filters evaluated on merged rows: each operation, nulls (which meet no condition but IS
NULL), numbers across long and double, dictionary-encoded strings, and what the schema refuses."""

from __future__ import annotations

import pyarrow as pa
import pytest

from fusou.read.filters import MAX_IN_VALUES, Filter, Op, apply_filters, filter_violations
from fusou.read.merge import conform_to
from fusou.schema.model import FieldType, SchemaField, TableSchema

SCHEMA = TableSchema(
    "t",
    (
        SchemaField("t", FieldType.LONG),
        SchemaField("n", FieldType.LONG),
        SchemaField("x", FieldType.DOUBLE),
        SchemaField("s", FieldType.STRING),
        SchemaField("b", FieldType.BOOLEAN),
        SchemaField("raw", FieldType.BYTES),
        SchemaField("j", FieldType.JSON),
        SchemaField("nothing", FieldType.NULL),
    ),
    1,
)

ROWS = pa.table(
    {
        "t": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "n": pa.array([10, None, 30, 40, 50], pa.int64()),
        "x": pa.array([0.5, 1.5, None, 3.5, 4.5]),
        "s": pa.array(["a", "b", None, "a", "c"]).dictionary_encode(),
        "b": pa.array([True, False, None, True, False]),
        "raw": pa.array([b"\x00", None, b"z", b"", None]),
        "j": pa.array(['{"k":1}', None, "[1]", '{"k":1}', "2"]),
        "nothing": pa.nulls(5, pa.string()),
    }
)


def kept(*filters: Filter) -> list[int]:
    assert filter_violations(filters, SCHEMA) == []
    return [int(t) for t in apply_filters(ROWS, filters).column("t").to_pylist()]


@pytest.mark.parametrize(
    ("f", "want"),
    [
        (Filter("n", Op.EQ, (30,)), [3]),
        (Filter("n", Op.NE, (30,)), [1, 4, 5]),  # the null meets neither = nor !=
        (Filter("n", Op.LT, (40,)), [1, 3]),
        (Filter("n", Op.LE, (40.0,)), [1, 3, 4]),
        (Filter("n", Op.GT, (35.5,)), [4, 5]),  # a fraction against longs: compared as doubles
        (Filter("n", Op.GE, (50,)), [5]),
        (Filter("n", Op.IN, (10, 50, 99)), [1, 5]),
        (Filter("n", Op.IN, (10.0, 40.5)), [1]),
        (Filter("n", Op.IN, (1e19, 2.0**63, 50.0)), [5]),  # past longs: compared as doubles
        (Filter("n", Op.EQ, (1e19,)), []),
        (Filter("n", Op.IS_NULL), [2]),
        (Filter("n", Op.IS_NOT_NULL), [1, 3, 4, 5]),
        (Filter("x", Op.GT, (1,)), [2, 4, 5]),
        (Filter("s", Op.EQ, ("a",)), [1, 4]),
        (Filter("s", Op.IN, ("b", "c")), [2, 5]),
        (Filter("s", Op.GE, ("b",)), [2, 5]),
        (Filter("s", Op.IS_NULL), [3]),
        (Filter("b", Op.EQ, (True,)), [1, 4]),
        (Filter("b", Op.NE, (True,)), [2, 5]),
        (Filter("raw", Op.IS_NOT_NULL), [1, 3, 4]),
        (Filter("j", Op.EQ, ('{"k":1}',)), [1, 4]),
        (Filter("nothing", Op.EQ, ("a",)), []),
        (Filter("nothing", Op.IS_NULL), [1, 2, 3, 4, 5]),
        (Filter("t", Op.GE, (3,)), [3, 4, 5]),
    ],
    ids=str,
)
def test_each_operation(f: Filter, want: list[int]) -> None:
    assert kept(f) == want


def test_filters_are_a_conjunction_and_keep_the_order() -> None:
    assert kept(Filter("s", Op.EQ, ("a",)), Filter("n", Op.GT, (10,))) == [4]
    assert kept() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("f", "field", "problem"),
    [
        (Filter("nope", Op.EQ, (1,)), "filters[0].column", "unknown column 'nope'"),
        (Filter("n", Op.EQ, ("1",)), "filters[0].values[0]", "must be a finite number"),
        (Filter("n", Op.EQ, (float("nan"),)), "filters[0].values[0]", "must be a finite number"),
        (Filter("n", Op.EQ, (True,)), "filters[0].values[0]", "must be a finite number"),
        (Filter("s", Op.LT, (3,)), "filters[0].values[0]", "must be a string"),
        (Filter("b", Op.LT, (True,)), "filters[0].values[0]", "a boolean column takes"),
        (Filter("b", Op.EQ, (1,)), "filters[0].values[0]", "must be true or false"),
        (Filter("raw", Op.EQ, ("z",)), "filters[0].values[0]", "IS_NULL and IS_NOT_NULL only"),
        (Filter("n", Op.EQ, ()), "filters[0].values", "EQ takes one value"),
        (Filter("n", Op.EQ, (1, 2)), "filters[0].values", "EQ takes one value"),
        (Filter("n", Op.IN, ()), "filters[0].values", "IN takes 1 to"),
        (
            Filter("n", Op.IN, tuple(range(MAX_IN_VALUES + 1))),
            "filters[0].values",
            "IN takes 1 to",
        ),
        (Filter("n", Op.IS_NULL, (1,)), "filters[0].values", "IS_NULL takes no value"),
    ],
    ids=lambda v: str(v) if isinstance(v, Filter) else None,
)
def test_what_the_schema_refuses(f: Filter, field: str, problem: str) -> None:
    (violation,) = filter_violations([f], SCHEMA)
    assert violation.field == field and problem in violation.description


def test_too_many_filters() -> None:
    (violation,) = filter_violations([Filter("n", Op.IS_NULL)] * 65, SCHEMA)
    assert violation.field == "filters"


def test_longs_past_2_53_compare_with_fractions_and_widen_to_doubles() -> None:
    big = 2**53 + 1
    table = pa.table({"t": [1, 2], "n": pa.array([big, 3], pa.int64())})
    assert apply_filters(table, [Filter("n", Op.GT, (0.5,))]).num_rows == 2
    assert apply_filters(table, [Filter("n", Op.IN, (0.5, 3.0))]).column("n").to_pylist() == [3]
    widened = TableSchema(
        "t", (SchemaField("t", FieldType.LONG), SchemaField("n", FieldType.DOUBLE)), 2
    )
    with_meta = table.append_column("_fusou_seq", pa.array([1, 2], pa.int64())).append_column(
        "_fusou_ingested_at", pa.array([0, 0], pa.int64())
    )
    assert conform_to(with_meta, widened).column("n").to_pylist() == [float(big), 3.0]


def test_whole_numbers_beyond_the_longs_are_decided_outright() -> None:
    top = 2**63 - 1
    table = pa.table({"t": [1, 2, 3], "n": pa.array([top, -top - 1, None], pa.int64())})
    beyond = float(2**63)  # what 2**63 - 1 rounds to as a double: no long equals it

    def kept(op: Op, *values: float) -> list[int | None]:
        found: list[int | None] = (
            apply_filters(table, [Filter("n", op, values)]).column("n").to_pylist()
        )
        return found

    assert kept(Op.EQ, beyond) == []
    assert kept(Op.NE, beyond) == [top, -top - 1]
    assert kept(Op.LT, beyond) == [top, -top - 1]
    assert kept(Op.GE, beyond) == []
    assert kept(Op.GT, -beyond * 2) == [top, -top - 1]
    assert kept(Op.LE, -beyond * 2) == []
    assert kept(Op.IN, beyond, 0.5, float(top)) == []  # float(top) is 2**63 too
    assert kept(Op.IN, beyond, -(2.0**63)) == [-top - 1]
