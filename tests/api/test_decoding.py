"""Protobuf knowledge of the request door: undefined enum numbers are named, at any depth.
(Undecodable requests are refused end to end in tests/server/test_server.py.)"""

from __future__ import annotations

from fusou.api.compactor.v1 import compactor_pb2
from fusou.api.decoding import undefined_enum
from fusou.api.ingest.v1 import ingest_pb2


def test_an_undefined_enum_number_is_named_at_any_depth() -> None:
    # proto3 keeps an enum number its enum does not define; the door refuses it. No request
    # nests an enum yet, so a response type stands in for the walk through repeated messages.
    good = compactor_pb2.CompactResponse(
        datasets=[compactor_pb2.DatasetCompactResult(status=compactor_pb2.COMPACT_STATUS_PARTIAL)]
    )
    assert undefined_enum(good) is None
    bad = compactor_pb2.CompactResponse(
        datasets=[
            compactor_pb2.DatasetCompactResult(status=compactor_pb2.COMPACT_STATUS_COMPACTED),
            compactor_pb2.DatasetCompactResult(status=compactor_pb2.CompactStatus.ValueType(42)),
        ]
    )
    problem = undefined_enum(bad)
    assert problem is not None
    assert [v.field for v in problem.violations] == ["datasets[1].status"]
    assert "42 is not a value of fusou.compactor.v1.CompactStatus" in problem.message
    # Types that cannot hold an enum are not walked at all.
    assert undefined_enum(ingest_pb2.UploadRawRequest(chunk=b"x" * 1000)) is None
