"""Struct rows to normalized Arrow batches, and the rejections that name the row and field."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import struct_pb2

from fusou.api.struct_rows import batch_from_structs
from fusou.api.structs import structs
from fusou.errors import InvalidArgument
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


def _with_undefined_null(path: list[str]) -> Any:
    """A row {timestamp: 1, <path>: null} whose null is NullValue number 7 (undefined)."""
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
