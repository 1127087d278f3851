"""ReadRangeRequest filters to the Reader's: operations, operands, and what no filter can be."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2

from fusou.api.reader.translate import read_filters
from fusou.api.reader.v1 import reader_pb2
from fusou.errors import InvalidArgument
from fusou.read.filters import Filter, Op


def test_operations_and_operands() -> None:
    filters = read_filters(
        [
            reader_pb2.Filter(
                column="hp", op=reader_pb2.FILTER_OP_GE, values=[struct_pb2.Value(number_value=40)]
            ),
            reader_pb2.Filter(
                column="ship",
                op=reader_pb2.FILTER_OP_IN,
                values=[struct_pb2.Value(string_value="a"), struct_pb2.Value(string_value="b")],
            ),
            reader_pb2.Filter(
                column="won", op=reader_pb2.FILTER_OP_NE, values=[struct_pb2.Value(bool_value=True)]
            ),
            reader_pb2.Filter(column="note", op=reader_pb2.FILTER_OP_IS_NULL),
        ]
    )
    assert filters == [
        Filter("hp", Op.GE, (40.0,)),
        Filter("ship", Op.IN, ("a", "b")),
        Filter("won", Op.NE, (True,)),
        Filter("note", Op.IS_NULL, ()),
    ]


def test_what_no_filter_can_be() -> None:
    with pytest.raises(InvalidArgument) as caught:
        read_filters(
            [
                reader_pb2.Filter(column="a"),
                reader_pb2.Filter(column="b", op=99),  # type: ignore[arg-type]
                reader_pb2.Filter(
                    column="c",
                    op=reader_pb2.FILTER_OP_EQ,
                    values=[struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)],
                ),
                reader_pb2.Filter(
                    column="d",
                    op=reader_pb2.FILTER_OP_EQ,
                    values=[struct_pb2.Value(list_value=struct_pb2.ListValue())],
                ),
            ]
        )
    got = {v.field: v.description for v in caught.value.violations}
    assert got["filters[0].op"] == "must be set"
    assert "not a FilterOp" in got["filters[1].op"]
    assert "FILTER_OP_IS_NULL" in got["filters[2].values[0]"]
    assert "a number, a string or a boolean" in got["filters[3].values[0]"]
