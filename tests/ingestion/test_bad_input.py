"""Every rejected request answers INVALID_ARGUMENT naming the field and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pyarrow as pa
import pytest

from fusou.config import Settings
from fusou.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.records.wire_formats import arrow_ipc_bytes as arrow_ipc
from fusou.records.wire_formats import structs
from fusou.testing import running_services
from tests.ingestion.helpers import snapshot, violation_fields

GOOD_ROW = {"timestamp": 1_700_000_000_000, "hp": 1}
LIMIT = 100


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[ingest_pb2_grpc.IngestServiceAsyncStub]:
    async with (
        running_services(settings.replace(ingest_max_rows=LIMIT, ingest_max_bytes=64 * 1024)) as s,
        grpc.aio.insecure_channel(s.target) as channel,
    ):
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        # Something already there, so "unchanged" is checked against a non-empty state.
        await stub.Ingest(_req(request_id="seed"))
        yield stub


def _req(**overrides: Any) -> ingest_pb2.IngestRequest:
    fields: dict[str, Any] = {"dataset_id": "u1", "table": "battle", "rows": structs([GOOD_ROW])}
    fields.update(overrides)
    return ingest_pb2.IngestRequest(**fields)


CASES: list[tuple[str, dict[str, Any], str]] = [
    ("missing dataset", {"dataset_id": ""}, "dataset_id"),
    ("missing table", {"table": ""}, "table"),
    ("parent segment", {"dataset_id": "../x"}, "dataset_id"),
    ("dot dot inside", {"table": "a..b"}, "table"),
    ("slash", {"table": "a/b"}, "table"),
    ("backslash", {"dataset_id": "a\\b"}, "dataset_id"),
    ("too long", {"dataset_id": "d" * 300}, "dataset_id"),
    ("leading dot", {"table": ".hidden"}, "table"),
    ("missing time field", {"rows": structs([{"hp": 1}])}, "rows[0].timestamp"),
    ("time field in a later row", {"rows": structs([GOOD_ROW, {"hp": 2}])}, "rows[1].timestamp"),
    ("string time", {"rows": structs([{"timestamp": "yesterday"}])}, "rows[0].timestamp"),
    ("fractional time", {"rows": structs([{"timestamp": 1.5}])}, "rows[0].timestamp"),
    ("null time", {"rows": structs([{"timestamp": None}])}, "rows[0].timestamp"),
    ("object time", {"rows": structs([{"timestamp": {"ms": 1}}])}, "rows[0].timestamp"),
    (
        "mixed types in a batch",
        {"rows": structs([GOOD_ROW, {"timestamp": 2, "hp": "x"}])},
        "rows[1].hp",
    ),
    ("bad field name", {"rows": structs([{"timestamp": 1, "a b": 1}])}, "rows[0].a b"),
    ("rows and arrow", {"arrow_ipc": arrow_ipc(pa.table({"timestamp": [1]}))}, "rows"),
    ("neither", {"rows": []}, "rows"),
    ("corrupt arrow", {"rows": [], "arrow_ipc": b"\x00garbage\xff" * 10}, "arrow_ipc"),
    (
        "truncated arrow",
        {"rows": [], "arrow_ipc": arrow_ipc(pa.table({"timestamp": [1, 2]}))[:40]},
        "arrow_ipc",
    ),
    (
        "arrow without time",
        {"rows": [], "arrow_ipc": arrow_ipc(pa.table({"x": [1]}))},
        "arrow_ipc.timestamp",
    ),
    ("over the row limit", {"rows": structs([GOOD_ROW] * (LIMIT + 1))}, "rows"),
    (
        "arrow over the row limit",
        {"rows": [], "arrow_ipc": arrow_ipc(pa.table({"timestamp": list(range(LIMIT + 1))}))},
        "arrow_ipc",
    ),
    (
        "arrow over the byte limit",
        {"rows": [], "arrow_ipc": arrow_ipc(pa.table({"timestamp": [1], "s": ["x" * 70_000]}))},
        "arrow_ipc",
    ),
    ("request id too long", {"request_id": "r" * 300}, "request_id"),
]


@pytest.mark.parametrize(("overrides", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_rejected_and_nothing_changes(
    limited: ingest_pb2_grpc.IngestServiceAsyncStub,
    database_url: str,
    overrides: dict[str, Any],
    field: str,
) -> None:
    before = await snapshot(database_url)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await limited.Ingest(_req(**overrides))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violation_fields(err.value)
    assert await snapshot(database_url) == before


async def test_a_row_that_is_not_an_object(
    limited: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str, settings: Settings
) -> None:
    # grpcurl cannot even send this; a hand-built message whose rows[1] is not a Struct can.
    good = _req().SerializeToString()
    bad_struct = b"\x0a\x03abc"  # a map entry whose bytes do not parse
    payload = good + b"\x22" + bytes([len(bad_struct)]) + bad_struct
    before = await snapshot(database_url)
    async with running_services(settings) as s, grpc.aio.insecure_channel(s.target) as channel:
        call = channel.unary_unary(
            "/fusou.ingest.v1.IngestService/Ingest",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(payload)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation_fields(err.value) == ["rows[1]"]
    assert await snapshot(database_url) == before


async def test_a_rejected_first_batch_creates_no_table(
    limited: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str
) -> None:
    before = await snapshot(database_url)
    with pytest.raises(grpc.aio.AioRpcError):
        await limited.Ingest(
            _req(dataset_id="fresh", rows=structs([{"timestamp": 1}, {"timestamp": "x"}]))
        )
    after = await snapshot(database_url)
    assert after == before
    assert not any(row[0] == "fresh" for row in after["fusou_datasets"])
