"""Client input to normalized Arrow batches, and the rejections that name the field.
(Struct rows: tests/api/test_struct_rows.py.)"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from fusou.errors import InvalidArgument
from fusou.records.batch import (
    Nested,
    batch_from_arrow,
    batch_from_arrow_ipc,
    batch_from_columns,
    is_normalized,
)
from fusou.records.limits import RowLimits
from fusou.records.wire_formats import arrow_ipc_bytes
from fusou.schema.model import FieldType as F


def test_arrow_types_are_normalized() -> None:
    t = pa.table(
        {
            "timestamp": pa.array([1_700_000_000_123_456], pa.timestamp("us")),
            "i8": pa.array([1], pa.int8()),
            "f32": pa.array([1.5], pa.float32()),
            "ls": pa.array(["a"], pa.large_string()),
            "dict": pa.array(["x"]).dictionary_encode(),
            "st": pa.array([{"a": 1}]),
            "bin": pa.array([b"\x00"], pa.large_binary()),
        }
    )
    b = batch_from_arrow_ipc(arrow_ipc_bytes(t), "timestamp")
    assert b.types == {
        "timestamp": F.LONG,
        "i8": F.LONG,
        "f32": F.DOUBLE,
        "ls": F.STRING,
        "dict": F.STRING,
        "st": F.JSON,
        "bin": F.BYTES,
    }
    assert b.table.column("timestamp").to_pylist() == [1_700_000_000_123]


@pytest.mark.parametrize(
    ("table", "field"),
    [
        (pa.table({"x": [1]}), "arrow_ipc.timestamp"),
        (pa.table({"timestamp": [1.0]}), "arrow_ipc.timestamp"),
        (pa.table({"timestamp": pa.array([1, None], pa.int64())}), "arrow_ipc.timestamp"),
        (pa.table({"timestamp": [1], "d": pa.array([1], pa.date32())}), "arrow_ipc.d"),
        (pa.table({"timestamp": [1], "u": pa.array([2**64 - 1], pa.uint64())}), "arrow_ipc.u"),
        (pa.table({"timestamp": pa.array([], pa.int64())}), "arrow_ipc"),
    ],
)
def test_arrow_rejections_name_the_column(table: pa.Table, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        batch_from_arrow(table, "timestamp")
    assert err.value.violations[0].field == field


def test_corrupt_ipc_is_rejected() -> None:
    data = arrow_ipc_bytes(pa.table({"timestamp": [1]}))
    for bad in (b"not arrow", data[: len(data) // 2], b"\xff" * 64):
        with pytest.raises(InvalidArgument) as err:
            batch_from_arrow_ipc(bad, "timestamp")
        assert err.value.violations[0].field == "arrow_ipc"


NORMAL = pa.table(
    {
        "t": pa.array([1, 2], pa.int64()),
        "f": pa.array([1.5, None]),
        "b": pa.array([True, False]),
        "s": pa.array(["x", None]),
        "raw": pa.array([b"\x00", b""]),
        "nothing": pa.nulls(2),
    }
)


def test_a_normalized_table_is_recognized_and_normalizing_keeps_it() -> None:
    assert is_normalized(NORMAL, "t")
    assert batch_from_arrow(NORMAL, "t").table.equals(NORMAL)
    coded = NORMAL.set_column(3, "s", NORMAL.column("s").dictionary_encode())
    assert not is_normalized(coded, "t")
    assert is_normalized(coded, "t", string_dictionaries=True)
    assert batch_from_arrow(coded, "t", string_dictionaries=True).table.equals(coded)


@pytest.mark.parametrize(
    "table",
    [
        NORMAL.set_column(0, "t", pa.array([1, 2], pa.int32())),
        NORMAL.set_column(0, "t", pa.array([1, None], pa.int64())),
        NORMAL.set_column(1, "f", pa.array([1.5, None], pa.float32())),
        NORMAL.set_column(3, "s", pa.array(["x", None], pa.large_string())),
        NORMAL.append_column("when", pa.array([1, 2], pa.timestamp("ms"))),
        NORMAL.append_column("nested", pa.array([{"a": 1}, {"a": 2}])),
        NORMAL.drop_columns(["t"]),
    ],
    ids=["int32 time", "null time", "float32", "large string", "timestamp", "struct", "no time"],
)
def test_tables_that_normalizing_would_change_are_not_normalized(table: pa.Table) -> None:
    assert not is_normalized(table, "t", string_dictionaries=True)


def test_columns_of_python_values_are_typed_and_a_bad_name_asks_for_its_row() -> None:
    asked: list[str] = []

    def row_of(name: str) -> int:
        asked.append(name)
        return 1

    columns: dict[str, list[Any]] = {
        "v": [2.5, None],
        "timestamp": [1.0, 2.0],
        "n": [Nested({"b": 1, "a": [1]}), None],
    }
    b = batch_from_columns(columns, 2, "timestamp", RowLimits(), row_of)
    assert b.table.column_names == ["timestamp", "v", "n"]
    assert b.types == {"timestamp": F.LONG, "v": F.DOUBLE, "n": F.JSON}
    assert b.table.column("n").to_pylist() == ['{"a":[1],"b":1}', None]
    assert asked == []
    with pytest.raises(InvalidArgument) as err:
        batch_from_columns(
            {**columns, "bad-name": [None, 1.0]}, 2, "timestamp", RowLimits(), row_of
        )
    assert [v.field for v in err.value.violations] == ["rows[1].bad-name"]
    assert asked == ["bad-name"]
    with pytest.raises(InvalidArgument) as err:
        batch_from_columns({}, 0, "timestamp", RowLimits(), row_of)
    assert [v.field for v in err.value.violations] == ["rows"]
