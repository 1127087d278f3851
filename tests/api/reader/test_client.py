"""Arrow messages framed by hand by the server, read in place by the client, and everything
else through protobuf."""

from __future__ import annotations

import pyarrow as pa
import pytest

from fusou.api.reader.answers import arrow_ipc_message
from fusou.api.reader.client import arrow_of, parse_response, stats_of
from fusou.api.reader.v1 import reader_pb2

ARROW_FIELD = reader_pb2.ReadRangeResponse.DESCRIPTOR.fields_by_name["arrow_ipc"].number


@pytest.mark.parametrize("rows", [0, 1, 300, 70_000])  # lengths of 1, 2 and 3 varint bytes
def test_hand_framed_arrow_messages_are_valid_protobuf(rows: int) -> None:
    table = pa.table({"t": pa.array(range(rows), pa.int64()), "s": [f"r{i}" for i in range(rows)]})
    raw = arrow_ipc_message(table, ARROW_FIELD)
    parsed = reader_pb2.ReadRangeResponse.FromString(raw)
    assert pa.ipc.open_stream(parsed.arrow_ipc).read_all().equals(table)
    assert parsed.SerializeToString() == raw  # the same bytes protobuf itself would write
    fast = parse_response(raw)
    assert isinstance(fast, pa.Table) and fast.equals(table)
    assert arrow_of(fast) is fast and stats_of(fast) is None


def test_other_messages_go_through_protobuf() -> None:
    stats = reader_pb2.ReadRangeResponse(stats=reader_pb2.ReadStats(rows_returned=3, hot_rows=3))
    parsed = parse_response(stats.SerializeToString())
    assert isinstance(parsed, reader_pb2.ReadRangeResponse)
    assert arrow_of(parsed) is None
    got = stats_of(parsed)
    assert got is not None and got.rows_returned == 3
    # Arrow together with another field is not the hand-framed shape: protobuf parses it.
    table = pa.table({"t": [1, 2]})
    payload = reader_pb2.ReadRangeResponse.FromString(arrow_ipc_message(table, ARROW_FIELD))
    both = reader_pb2.ReadRangeResponse(
        arrow_ipc=payload.arrow_ipc, stats=reader_pb2.ReadStats(rows_returned=2)
    )
    parsed = parse_response(both.SerializeToString())
    assert isinstance(parsed, reader_pb2.ReadRangeResponse)
    part = arrow_of(parsed)
    assert part is not None and part.equals(table)
