"""Client input to normalized Arrow batches, and the rejections that name the field."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from fusou.errors import InvalidArgument
from fusou.records.batch import (
    batch_from_arrow,
    batch_from_arrow_ipc,
    batch_from_structs,
    is_normalized,
)
from fusou.records.wire_formats import arrow_ipc_bytes, structs
from fusou.schema.model import FieldType as F


def test_struct_numbers_become_long_when_whole_and_double_otherwise() -> None:
    b = batch_from_structs(
        structs(
            [{"timestamp": 1, "a": 2, "b": 2.5, "c": "x", "d": True, "e": {"k": [1]}, "f": None}]
        ),
        "timestamp",
    )
    assert b.types == {
        "timestamp": F.LONG,
        "a": F.LONG,
        "b": F.DOUBLE,
        "c": F.STRING,
        "d": F.BOOLEAN,
        "e": F.JSON,
        "f": F.NULL,
    }
    assert b.table.column("timestamp").to_pylist() == [1]
    assert b.table.column("e").to_pylist() == ['{"k":[1]}']


@pytest.mark.parametrize(
    ("rows", "field"),
    [
        ([{"x": 1}], "rows[0].timestamp"),
        ([{"timestamp": 1}, {"x": 1}], "rows[1].timestamp"),
        ([{"timestamp": "2024-01-01"}], "rows[0].timestamp"),
        ([{"timestamp": 1.5}], "rows[0].timestamp"),
        ([{"timestamp": None}], "rows[0].timestamp"),
        ([{"timestamp": 1, "v": 1}, {"timestamp": 2, "v": "s"}], "rows[1].v"),
        ([{"timestamp": 1, "bad-name": 1}], "rows[0].bad-name"),
        ([{"timestamp": 1, "_fusou_seq": 1}], "rows[0]._fusou_seq"),
    ],
)
def test_struct_rejections_name_the_row_and_field(rows: list[dict[str, Any]], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        batch_from_structs(structs(rows), "timestamp")
    assert err.value.violations[0].field == field


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


def _with_undefined_null(path: list[str]) -> Any:
    """A row {timestamp: 1, <path>: null} whose null is NullValue number 7 (undefined)."""
    from google.protobuf import struct_pb2

    row = struct_pb2.Struct()
    row.fields["timestamp"].number_value = 1
    value = row.fields[path[0]]
    for name in path[1:]:
        value = value.struct_value.fields[name]
    value.null_value = 7  # type: ignore[assignment]  # what a client can send on the wire
    return row


@pytest.mark.parametrize(
    ("path", "field"), [(["x"], "rows[0].x"), (["x", "y"], "rows[0].x")], ids=["top", "nested"]
)
def test_an_undefined_null_value_number_is_refused(path: list[str], field: str) -> None:
    # The enum check at the door does not see Ingest's rows (a worker parses them).
    with pytest.raises(InvalidArgument) as err:
        batch_from_structs([_with_undefined_null(path)], "timestamp")
    assert [v.field for v in err.value.violations] == [field]
    assert "google.protobuf.NullValue" in err.value.message
