"""An IngestRequest's bytes as the domain takes them: the header read in the main process, the
rows parsed (and checked) by a top-level function that pickles to the worker process."""

from __future__ import annotations

import pickle

import pyarrow as pa
import pytest

from fusou.api.ingest.raw_request import RawIngestRequest
from fusou.api.ingest.request import parse_rows
from fusou.api.ingest.v1 import ingest_pb2
from fusou.api.structs import structs
from fusou.errors import InvalidArgument
from fusou.ingest.prepare import ArrowStream, Limits
from fusou.ingest.request import IngestRequest
from fusou.records.batch import Batch
from fusou.records.wire_formats import arrow_ipc_bytes

LIMITS = Limits(max_rows=10, max_arrow_bytes=1 << 20)


def test_the_header_is_read_and_the_rows_stay_bytes() -> None:
    message = ingest_pb2.IngestRequest(
        dataset_id="d", table="t", request_id="r", rows=structs([{"timestamp": 1}])
    )
    data = message.SerializeToString()
    request = RawIngestRequest.FromString(data)
    assert request == IngestRequest("d", "t", "r", data, parse_rows)
    assert RawIngestRequest.of(message) == request
    assert pickle.loads(pickle.dumps(request.parse)) is parse_rows


def test_struct_rows_are_converted_and_an_arrow_stream_is_left_to_the_domain() -> None:
    rows = ingest_pb2.IngestRequest(rows=structs([{"timestamp": 1, "v": "x"}]))
    batch = parse_rows(rows.SerializeToString(), "timestamp", LIMITS)
    assert isinstance(batch, Batch) and batch.table.column("v").to_pylist() == ["x"]
    stream = arrow_ipc_bytes(pa.table({"timestamp": [1]}))
    arrow = ingest_pb2.IngestRequest(arrow_ipc=stream)
    assert parse_rows(arrow.SerializeToString(), "timestamp", LIMITS) == ArrowStream(stream)


@pytest.mark.parametrize(
    ("message", "fields"),
    [
        (ingest_pb2.IngestRequest(), ["rows"]),
        (
            ingest_pb2.IngestRequest(rows=structs([{"timestamp": 1}]), arrow_ipc=b"x"),
            ["rows"],
        ),
        (ingest_pb2.IngestRequest(rows=structs([{"timestamp": i} for i in range(11)])), ["rows"]),
        (ingest_pb2.IngestRequest(arrow_ipc=b"x" * ((1 << 20) + 1)), ["arrow_ipc"]),
    ],
    ids=["none", "both", "too many rows", "too many bytes"],
)
def test_the_payload_is_checked_naming_the_field(
    message: ingest_pb2.IngestRequest, fields: list[str]
) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_rows(message.SerializeToString(), "timestamp", LIMITS)
    assert [v.field for v in err.value.violations] == fields


def test_bytes_that_do_not_parse_name_the_field() -> None:
    # Field 4 (rows) holding bytes that are not a Struct.
    with pytest.raises(InvalidArgument) as err:
        parse_rows(b"\x22\x02\xff\xff", "timestamp", LIMITS)
    assert [v.field for v in err.value.violations] == ["rows[0]"]
