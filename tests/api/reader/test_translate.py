"""ReadRangeRequest to the Reader's read, without a server: the times and their rounding."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from fusou.api.reader.translate import read_request
from fusou.api.reader.v1 import reader_pb2
from fusou.errors import InvalidArgument


def test_times_round_up_to_milliseconds_and_columns_keep_their_first_order() -> None:
    read = read_request(
        reader_pb2.ReadRangeRequest(
            dataset_id="d",
            table="t",
            start_time=Timestamp(seconds=1, nanos=1),
            end_time=Timestamp(seconds=2, nanos=2_000_000),
            columns=["b", "a", "b"],
            limit=7,
        )
    )
    assert (read.dataset_id, read.table, read.start, read.end) == ("d", "t", 1001, 2002)
    assert list(read.columns) == ["b", "a"] and read.limit == 7 and read.ordered


def test_a_sub_millisecond_range_is_ordered_by_its_nanoseconds() -> None:
    within = read_request(
        reader_pb2.ReadRangeRequest(
            start_time=Timestamp(seconds=1, nanos=1), end_time=Timestamp(seconds=1, nanos=2)
        )
    )
    assert within.start == within.end == 1001 and within.ordered
    reversed_ = read_request(
        reader_pb2.ReadRangeRequest(
            start_time=Timestamp(seconds=1, nanos=2), end_time=Timestamp(seconds=1, nanos=1)
        )
    )
    assert not reversed_.ordered


def test_missing_and_unplaceable_times_name_their_fields() -> None:
    with pytest.raises(InvalidArgument) as refused:
        read_request(reader_pb2.ReadRangeRequest(end_time=Timestamp(nanos=-1)))
    assert [v.field for v in refused.value.violations] == ["start_time", "end_time.nanos"]
