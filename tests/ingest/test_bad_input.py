"""Every rejected request answers INVALID_ARGUMENT naming the field and changes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pytest

from fusou.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.api.structs import structs
from fusou.config import Settings
from fusou.records.wire_formats import arrow_ipc_bytes as arrow_ipc
from fusou.schema.time_bounds import MAX_TIME_MS, MIN_TIME_MS
from fusou.testing import running_services
from tests.ingest.helpers import snapshot, violation_fields
from tests.upload.helpers import stored_files

pytestmark = pytest.mark.integration

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


# -- limits at the door (issue 13): refused naming the field, nothing written -------------------

FAR_PAST = -1_000_000_000_000_000  # about 29,700 BC: no date folder, no Avro/Parquet date
FAR_FUTURE = 1_000_000_000_000_000  # about 33,600 AD


def _arrow_req(table: pa.Table, **overrides: Any) -> ingest_pb2.IngestRequest:
    return _req(rows=[], arrow_ipc=arrow_ipc(table), **overrides)


def _nested(depth: int) -> Any:
    """A value nesting ``depth`` levels of objects and lists."""
    value: Any = 1
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


def _objects(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def _deep_request(depth: int) -> ingest_pb2.IngestRequest:
    """Rows nesting ``depth`` objects: the client's protobuf builds them in place (copying
    them would parse them, which it refuses, as the server's does)."""
    request = _req(rows=structs([GOOD_ROW]))
    request.rows.add().update({"timestamp": 1, "deep": _objects(depth)})
    return request


def _ipc_compressed(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


LIMIT_CASES: list[tuple[str, ingest_pb2.IngestRequest, str, str]] = [
    (
        "a time before year 1",
        _req(rows=structs([GOOD_ROW, GOOD_ROW, GOOD_ROW, {"timestamp": FAR_PAST}])),
        "rows[3].timestamp",
        "outside the accepted times",
    ),
    (
        "a time after year 9999",
        _req(rows=structs([{"timestamp": FAR_FUTURE}])),
        "rows[0].timestamp",
        "outside the accepted times",
    ),
    (
        "a time past 64 bits",
        _req(rows=structs([GOOD_ROW, {"timestamp": 1e300}])),
        "rows[1].timestamp",
        "outside the accepted times",
    ),
    (
        "a time that is not a number",
        _req(rows=structs([{"timestamp": float("nan")}])),
        "rows[0].timestamp",
        "is nan, outside the accepted times",
    ),
    (
        "arrow: a time before year 1",
        _arrow_req(pa.table({"timestamp": [1, 2, FAR_PAST]})),
        "arrow_ipc.timestamp",
        "row 2 is",
    ),
    (
        "arrow: a time after year 9999",
        _arrow_req(pa.table({"timestamp": [FAR_FUTURE]})),
        "arrow_ipc.timestamp",
        "row 0 is",
    ),
    (
        "arrow: a timestamp in seconds past 64-bit milliseconds",
        _arrow_req(pa.table({"timestamp": pa.array([2**62], pa.timestamp("s"))})),
        "arrow_ipc.timestamp",
        "64-bit",
    ),
    (
        "arrow: a nested time Python cannot hold",
        _arrow_req(
            pa.table(
                {
                    "timestamp": [1],
                    "hits": pa.array([[FAR_PAST * 100]], pa.list_(pa.timestamp("ms"))),
                }
            )
        ),
        "arrow_ipc.hits",
        "cannot be stored as JSON",
    ),
    (
        "too deep",
        _req(rows=structs([GOOD_ROW, {"timestamp": 1, "deep": _nested(17)}])),
        "rows[1].deep",
        "more than 16 levels deep",
    ),
    (
        "deep but within the limit of protobuf only",
        _req(rows=structs([{"timestamp": 1, "deep": _nested(30)}])),
        "rows[0].deep",
        "more than 16 levels deep",
    ),
    (
        "deeper than protobuf parses",
        _deep_request(40),
        "rows[1]",
        "deeper than protobuf parses",
    ),
    (
        "arrow: a type nested too deep",
        _arrow_req(pa.table({"timestamp": [1], "deep": pa.array([_nested(17)])})),
        "arrow_ipc.deep",
        "17 levels deep, over the limit of 16",
    ),
    (
        "a row over the size limit",
        _req(rows=structs([GOOD_ROW, {"timestamp": 1, "blob": "x" * (1024 * 1024 + 1)}])),
        "rows[1]",
        "over the limit of 1048576 bytes per row",
    ),
    (
        "a nested value over the size limit",
        _req(rows=structs([{"timestamp": 1, "blob": {"text": "x" * (1024 * 1024)}}])),
        "rows[0]",
        "bytes per row",
    ),
    (
        "arrow: too many columns",
        # Columns of nulls: no data, so the stream stays under the fixture's 64 KiB.
        _arrow_req(pa.table({"timestamp": [1], **{f"f{i}": pa.nulls(1) for i in range(1000)}})),
        "arrow_ipc",
        "has 1001 fields, over the limit of 1000",
    ),
    (
        "many rows of different fields",
        _req(
            rows=structs(
                [{"timestamp": 1, **{f"r{r}_f{i}": i for i in range(99)}} for r in range(11)]
            )
        ),
        "rows[10].r10_f*",  # which of its new fields comes first is the Struct's map order
        "is field 1001 of this batch",
    ),
]


@pytest.mark.parametrize(
    ("refused", "field", "says"),
    [c[1:] for c in LIMIT_CASES],
    ids=[c[0] for c in LIMIT_CASES],
)
async def test_limits_are_refused_naming_the_field_and_nothing_changes(
    limited: ingest_pb2_grpc.IngestServiceAsyncStub,
    database_url: str,
    settings_objects: Path,
    refused: ingest_pb2.IngestRequest,
    field: str,
    says: str,
) -> None:
    before = await snapshot(database_url)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await limited.Ingest(refused)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    fields = violation_fields(err.value)
    assert len(fields) == 1, err.value.details()
    if field.endswith("*"):
        assert fields[0].startswith(field[:-1]), err.value.details()
    else:
        assert fields == [field], err.value.details()
    assert says in (err.value.details() or "")
    assert await snapshot(database_url) == before
    assert stored_files(settings_objects) == []


async def test_a_row_of_100000_fields_is_refused_before_conversion(
    limited: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str
) -> None:
    wide = {"timestamp": 1_700_000_000_000, **{f"f{i}": i for i in range(99_999)}}
    before = await snapshot(database_url)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await limited.Ingest(_req(rows=structs([GOOD_ROW, wide])))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation_fields(err.value) == ["rows[1]"]
    assert "has 100000 fields, over the limit of 1000" in (err.value.details() or "")
    assert await snapshot(database_url) == before
    # The service is not stuck behind it: the next request goes through.
    answer = await limited.Ingest(_req(request_id="after-the-wide-row"))
    assert answer.rows_written == 1


async def test_a_compressed_arrow_stream_is_counted_decoded(
    limited: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str
) -> None:
    # Under 64 KiB as sent; over it decoded (zeros compress a thousandfold).
    bomb = pa.table({"timestamp": [1], "s": pa.array([b"\0" * (8 * 1024 * 1024)], pa.binary())})
    payload = _ipc_compressed(bomb)
    assert len(payload) < 64 * 1024
    before = await snapshot(database_url)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await limited.Ingest(_req(rows=[], arrow_ipc=payload))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation_fields(err.value) == ["arrow_ipc"]
    assert "decodes to" in (err.value.details() or "")
    assert await snapshot(database_url) == before


async def test_a_table_does_not_grow_past_the_field_limit(
    settings: Settings, database_url: str
) -> None:
    # Each batch is within the limit of fields per row; together they would pass the table's.
    async with (
        running_services(settings.replace(max_fields=10)) as s,
        grpc.aio.insecure_channel(s.target) as channel,
    ):
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        for batch in range(3):
            row = {"timestamp": 1, **{f"b{batch}_{i}": i for i in range(3)}}
            await stub.Ingest(_req(rows=structs([row])))  # 1 + 3 + 3 + 3 = 10 fields
        before = await snapshot(database_url)
        for request in (
            _req(rows=structs([{"timestamp": 2, "one_more": 1}])),
            _arrow_req(pa.table({"timestamp": [2], "one_more": [1]})),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Ingest(request)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert violation_fields(err.value) == ["one_more"]
            assert "would be field 11 of the table, over the limit of 10" in (
                err.value.details() or ""
            )
            assert await snapshot(database_url) == before
        # Rows of the fields the table has still go in.
        answer = await stub.Ingest(_req(rows=structs([{"timestamp": 3, "b2_0": 7}])))
        assert answer.rows_written == 1


async def test_a_narrowed_time_range_is_enforced(settings: Settings, database_url: str) -> None:
    narrowed = settings.replace(min_time_ms=1_600_000_000_000, max_time_ms=1_800_000_000_000)
    async with (
        running_services(narrowed) as s,
        grpc.aio.insecure_channel(s.target) as channel,
    ):
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        assert (await stub.Ingest(_req())).rows_written == 1  # 1_700_000_000_000: inside
        before = await snapshot(database_url)
        for request, field in (
            (_req(rows=structs([GOOD_ROW, {"timestamp": 1_599_999_999_999}])), "rows[1].timestamp"),
            (_arrow_req(pa.table({"timestamp": [1_800_000_000_001]})), "arrow_ipc.timestamp"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Ingest(request)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert violation_fields(err.value) == [field]
            assert "FUSOU_MIN_TIME_MS and FUSOU_MAX_TIME_MS" in (err.value.details() or "")
            assert await snapshot(database_url) == before
        # The bounds themselves are accepted.
        edges = structs([{"timestamp": 1_600_000_000_000}, {"timestamp": 1_800_000_000_000}])
        assert (await stub.Ingest(_req(rows=edges))).rows_written == 2


async def test_the_extreme_times_of_the_formats_are_accepted(
    limited: ingest_pb2_grpc.IngestServiceAsyncStub,
) -> None:
    edges = [{"timestamp": MIN_TIME_MS}, {"timestamp": MAX_TIME_MS}]
    assert (await limited.Ingest(_req(rows=structs(edges)))).rows_written == 2
    table = pa.table({"timestamp": [MIN_TIME_MS, MAX_TIME_MS]})
    assert (await limited.Ingest(_arrow_req(table))).rows_written == 2


def _avro_schema(fields: int) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": "battle",
            "fields": [{"name": "timestamp", "type": "long"}]
            + [{"name": f"f{i}", "type": ["null", "long"]} for i in range(fields - 1)],
        }
    )


DECLARE_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("a schema of 1001 fields", {"avro_schema": _avro_schema(1001)}, "avro_schema", "1001 fields"),
    ("1001 key fields", {"key_fields": [f"k{i}" for i in range(1001)]}, "key_fields", "1001"),
    ("JSON nested too deep", {"avro_schema": "[" * 100_000}, "avro_schema", "nests too deeply"),
]


@pytest.mark.parametrize(
    ("fields", "field", "says"), [c[1:] for c in DECLARE_CASES], ids=[c[0] for c in DECLARE_CASES]
)
async def test_declarations_past_the_limits_are_refused(
    limited: ingest_pb2_grpc.IngestServiceAsyncStub,
    database_url: str,
    fields: dict[str, Any],
    field: str,
    says: str,
) -> None:
    before = await snapshot(database_url)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await limited.DeclareTable(
            ingest_pb2.DeclareTableRequest(dataset_id="u1", table="declared", **fields)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert violation_fields(err.value) == [field]
    assert says in (err.value.details() or "")
    assert await snapshot(database_url) == before
    # At the limit, a declaration goes through.
    declared = await limited.DeclareTable(
        ingest_pb2.DeclareTableRequest(
            dataset_id="u1", table="declared", avro_schema=_avro_schema(1000)
        )
    )
    assert declared.created and declared.schema_version == 1


async def test_a_dictionary_encoded_arrow_stream_is_counted_decoded(
    limited: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str
) -> None:
    # One 60 kB string as the dictionary, every row pointing at it: under 64 KiB as sent, and
    # its buffers too; decoded, each row holds the string (6 MB for 100 rows).
    column = pa.DictionaryArray.from_arrays(
        pa.array([0] * LIMIT, pa.int32()), pa.array(["x" * 60_000])
    )
    bomb = pa.table({"timestamp": list(range(LIMIT)), "s": column})
    payload = arrow_ipc(bomb)
    assert len(payload) < 64 * 1024
    before = await snapshot(database_url)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await limited.Ingest(_req(rows=[], arrow_ipc=payload))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation_fields(err.value) == ["arrow_ipc"]
    assert "decodes to" in (err.value.details() or "")
    assert await snapshot(database_url) == before


async def test_a_dictionary_nested_in_an_arrow_column_is_counted_decoded(
    limited: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str
) -> None:
    # The same inside objects and lists: each row's JSON holds the dictionary's value.
    strings = pa.DictionaryArray.from_arrays(
        pa.array([0] * LIMIT, pa.int32()), pa.array(["x" * 60_000])
    )
    nested = pa.StructArray.from_arrays([strings], names=["s"])
    listed = pa.ListArray.from_arrays(pa.array(range(LIMIT + 1), pa.int32()), strings)
    before = await snapshot(database_url)
    for column in (nested, listed):
        payload = arrow_ipc(pa.table({"timestamp": list(range(LIMIT)), "v": column}))
        assert len(payload) < 64 * 1024
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await limited.Ingest(_req(rows=[], arrow_ipc=payload))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violation_fields(err.value) == ["arrow_ipc"]
        assert "decodes to" in (err.value.details() or "")
    assert await snapshot(database_url) == before
