"""Cold files: standard Avro (two independent readers), a block index whose every block decodes
alone from one ranged GET, and statistics that follow the rows."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
import fastavro
import grpc
import polars as pl
import pytest

from fusou.api.archiver.v1 import archiver_pb2, archiver_pb2_grpc
from fusou.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.api.reader.v1 import reader_pb2, reader_pb2_grpc
from fusou.api.structs import structs
from fusou.api.timestamps import timestamp_of_ms
from fusou.config import Settings
from fusou.storage.partitions import DAY_MS
from fusou.testing import ServicesUnderTest, running_services
from tests.archive.oracle import read_avro
from tests.ingest.helpers import buffer_rows

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
META = ("_fusou_seq", "_fusou_ingested_at")


def battle(i: int) -> dict[str, Any]:
    return {
        "timestamp": T0 + (i * 7919) % 100_000 * 1000,
        "api_no": i,
        "ship": f"s{i % 9}",
        "hp": i % 100,
    }


@pytest.fixture
async def archiving(settings: Settings) -> AsyncIterator[ServicesUnderTest]:
    tuned = settings.replace(archive_min_age_s=0, archive_block_rows=64)
    async with running_services(tuned, ["ingest", "archiver", "reader"]) as s:
        yield s


async def _ingest(target: str, dataset: str, table: str, rows: list[dict[str, Any]]) -> None:
    async with grpc.aio.insecure_channel(target) as ch:
        stub = ingest_pb2_grpc.IngestServiceStub(ch)
        for start in range(0, len(rows), 200):
            await stub.Ingest(
                ingest_pb2.IngestRequest(
                    dataset_id=dataset, table=table, rows=structs(rows[start : start + 200])
                )
            )


async def _archive(target: str, **fields: Any) -> archiver_pb2.ArchiveResponse:
    async with grpc.aio.insecure_channel(target) as ch:
        return await archiver_pb2_grpc.ArchiverServiceStub(ch).Archive(
            archiver_pb2.ArchiveRequest(**fields)
        )


async def _files(url: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        files = [
            dict(r)
            for r in await conn.fetch(
                "SELECT f.*, o.object_key, o.kind FROM fusou_files f JOIN fusou_objects o USING (object_id) "
                "WHERE f.state = 'active' ORDER BY f.file_id"
            )
        ]
        for f in files:
            f["blocks"] = [
                dict(b)
                for b in await conn.fetch(
                    "SELECT * FROM fusou_blocks WHERE file_id = $1 ORDER BY block_no", f["file_id"]
                )
            ]
        return files
    finally:
        await conn.close()


def _avro_rows(data: bytes) -> list[dict[str, Any]]:
    return read_avro(data)


def _without_meta(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in META}


@pytest.mark.parametrize("codec", ["deflate", "null", "snappy", "zstandard"])
async def test_cold_files_hold_exactly_the_rows_that_left_the_buffer(
    settings: Settings, database_url: str, codec: str
) -> None:
    tuned = settings.replace(archive_min_age_s=0, archive_block_rows=64, archive_codec=codec)
    async with running_services(tuned, ["ingest", "archiver"]) as s:
        await _ingest(s.target, "u1", "battle", [battle(i) for i in range(700)])
        before = await buffer_rows(database_url, "u1", "battle")
        result = await _archive(s.target)
        store = s.runtime.store
        assert result.total_rows == 700 and result.tables[0].rows == 700
        assert await buffer_rows(database_url, "u1", "battle") == []
        expected = {r["seq"]: (r["decoded"], r["ingested_at"]) for r in before}
        seen: dict[int, dict[str, Any]] = {}
        for f in await _files(database_url):
            assert f["codec"] == codec and f["kind"] == "cold"
            data = await store.get(f["object_key"])
            assert len(data) == f["byte_length"]
            rows = _avro_rows(data)
            assert len(rows) == f["row_count"]
            if codec != "zstandard":
                # polars reads the timestamp-millis time field as a datetime too.
                frame = pl.read_avro(io.BytesIO(data))
                assert frame.schema["timestamp"] == pl.Datetime("ms", "UTC")
                frame = frame.with_columns(pl.col("timestamp").cast(pl.Int64))
                assert frame.to_dicts() == rows
            for row in rows:
                seen[row["_fusou_seq"]] = row
            # Blocks tile the file after the header and each one decodes alone.
            header = bytes(f["header"])
            assert data.startswith(header)
            position = len(header)
            decoded_in_blocks: list[dict[str, Any]] = []
            for block in f["blocks"]:
                assert block["byte_offset"] == position
                part = await store.get_range(
                    f["object_key"], block["byte_offset"], block["byte_length"]
                )
                block_rows = _avro_rows(header + part)
                assert len(block_rows) == block["row_count"]
                assert all(
                    block["min_time"] <= r["timestamp"] <= block["max_time"] for r in block_rows
                )
                assert min(r["timestamp"] for r in block_rows) == block["min_time"]
                assert max(r["timestamp"] for r in block_rows) == block["max_time"]
                decoded_in_blocks.extend(block_rows)
                position += block["byte_length"]
            assert position == len(data)
            assert decoded_in_blocks == rows
            assert f["min_time"] == min(b["min_time"] for b in f["blocks"])
            assert f["max_time"] == max(b["max_time"] for b in f["blocks"])
        assert set(seen) == set(expected)
        for seq, row in seen.items():
            record, ingested_at = expected[seq]
            assert _without_meta(row) == record
            assert row["_fusou_ingested_at"] == ingested_at


async def test_schema_versions_get_their_own_files_with_their_writer_schema(
    archiving: ServicesUnderTest, database_url: str
) -> None:
    await _ingest(archiving.target, "u1", "t", [{"timestamp": T0 + i, "a": i} for i in range(100)])
    await _ingest(
        archiving.target,
        "u1",
        "t",
        [{"timestamp": T0 + i, "a": i + 0.5, "b": "x"} for i in range(100)],
    )
    await _archive(archiving.target, dataset_id="u1", table="t")
    files = await _files(database_url)
    assert sorted(f["schema_version"] for f in files) == [1, 2]
    for f in files:
        data = await archiving.runtime.store.get(f["object_key"])
        reader = fastavro.reader(io.BytesIO(data))
        writer_schema = reader.writer_schema
        assert isinstance(writer_schema, dict)
        names = [fld["name"] for fld in writer_schema["fields"]]
        assert names[-2:] == list(META)
        assert ("b" in names) == (f["schema_version"] == 2)
        assert writer_schema.get("fusou.schema_version") == f["schema_version"]


async def test_blocks_and_files_respect_their_bounds(settings: Settings, database_url: str) -> None:
    tuned = settings.replace(
        archive_min_age_s=0,
        archive_block_rows=1000,
        archive_block_bytes=2048,
        archive_max_file_bytes=64 * 1024,
        archive_codec="null",
    )
    async with running_services(tuned, ["ingest", "archiver"]) as s:
        rows = [dict(battle(i), note="n" * (i % 200)) for i in range(3000)]
        await _ingest(s.target, "u1", "big", rows)
        result = await _archive(s.target)
    files = await _files(database_url)
    assert result.tables[0].files == len(files) > 1
    assert sum(f["row_count"] for f in files) == 3000
    for f in files:
        largest_block = max(b["byte_length"] for b in f["blocks"])
        assert f["byte_length"] <= 64 * 1024 + largest_block
        for b in f["blocks"]:
            # Uncompressed ("null" codec): a block's body stays within the byte bound unless it
            # holds a single row.
            assert b["byte_length"] <= 2048 + 64 or b["row_count"] == 1


async def test_stats_follow_the_rows_and_report_compression(
    archiving: ServicesUnderTest, database_url: str
) -> None:
    # Rows of one day: one cold file, large enough for its header not to outweigh the gain.
    one_day = [battle(i) | {"timestamp": T0 + i * 1000} for i in range(500)]
    await _ingest(archiving.target, "u1", "battle", one_day)
    await _ingest(archiving.target, "u2", "sortie", [battle(i) for i in range(50)])
    async with grpc.aio.insecure_channel(archiving.target) as ch:
        stats = reader_pb2_grpc.ReaderServiceStub(ch)
        before = {
            (t.dataset_id, t.table): t
            for t in (await stats.GetStats(reader_pb2.GetStatsRequest())).tables
        }
        assert before[("u1", "battle")].hot_rows == 500 and before[("u1", "battle")].cold_rows == 0
        assert before[("u1", "battle")].hot_bytes > 0
        assert before[("u1", "battle")].oldest_hot_row_age_seconds >= 0
        await _archive(archiving.target, dataset_id="u1")
        after = await stats.GetStats(reader_pb2.GetStatsRequest(dataset_id="u1"))
        assert [(t.dataset_id, t.table) for t in after.tables] == [("u1", "battle")]
        table = after.tables[0]
        assert table.hot_rows == 0 and table.cold_rows == 500 and table.cold_files >= 1
        assert table.compression_ratio > 1.0
        untouched = await stats.GetStats(
            reader_pb2.GetStatsRequest(dataset_id="u2", table="sortie")
        )
        assert untouched.tables[0].hot_rows == 50 and untouched.tables[0].cold_rows == 0
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stats.GetStats(reader_pb2.GetStatsRequest(dataset_id="../x"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    conn = await asyncpg.connect(database_url)
    try:
        efficiency = await conn.fetch("SELECT * FROM fusou_archive_efficiency")
        flagged = await conn.fetch(
            "SELECT dataset_id, compaction_needed FROM fusou_datasets ORDER BY 1"
        )
    finally:
        await conn.close()
    assert sum(r["row_count"] for r in efficiency) == 500
    assert all(r["compression_ratio"] > 1.0 for r in efficiency)
    # Archiving flags the dataset for compaction, and only that one.
    assert [(r["dataset_id"], r["compaction_needed"]) for r in flagged] == [
        ("u1", True),
        ("u2", False),
    ]


async def test_archive_with_nothing_to_do(archiving: ServicesUnderTest) -> None:
    result = await _archive(archiving.target)
    assert result.total_rows == 0 and list(result.tables) == []


# Rows are fetched two blocks at a time: 64-row blocks make fetches that cross midnight, 36-row
# ones fetches that end exactly at it (72 rows a day), so the next file starts a fetched batch.
@pytest.mark.parametrize("block_rows", [64, 36])
async def test_cold_files_describe_themselves_and_hold_one_day(
    settings: Settings, database_url: str, block_rows: int
) -> None:
    """An engine reading a cold file without FUSOU learns the time field's type, the table, the
    dedup key and the sort order; and the ``date=`` folder holds rows of that day only, even
    when one archive run (and one fetched batch) crosses midnight."""
    tuned = settings.replace(archive_min_age_s=0, archive_block_rows=block_rows)
    async with running_services(tuned, ["ingest", "archiver", "reader"]) as archiving:
        await _check_self_describing_days(archiving, database_url)


async def _check_self_describing_days(archiving: ServicesUnderTest, database_url: str) -> None:
    async with grpc.aio.insecure_channel(archiving.target) as ch:
        await ingest_pb2_grpc.IngestServiceStub(ch).DeclareTable(
            ingest_pb2.DeclareTableRequest(dataset_id="u1", table="keyed", key_fields=["api_no"])
        )
    midnight = T0 - T0 % DAY_MS + DAY_MS
    # Every 20 minutes across three midnights, in one run.
    rows = [battle(i) | {"timestamp": midnight - DAY_MS + i * 1_200_000} for i in range(250)]
    await _ingest(archiving.target, "u1", "keyed", rows)
    await _archive(archiving.target)
    files = await _files(database_url)
    days = {f["object_key"].split("/")[3] for f in files}
    assert len(files) == len(days) == 4, [f["object_key"] for f in files]
    seen = 0
    for f in files:
        folder_day = f["object_key"].split("/")[3].removeprefix("date=")
        data = await archiving.runtime.store.get(f["object_key"])
        reader = fastavro.reader(io.BytesIO(data))
        records = [cast(dict[str, Any], r) for r in reader]
        seen += len(records)
        # fastavro reads the time field as a UTC instant, each one of the folder's day.
        assert {r["timestamp"].date().isoformat() for r in records} == {folder_day}
        assert all(r["timestamp"].tzinfo == dt.UTC for r in records)
        schema = reader.writer_schema
        assert isinstance(schema, dict)
        (time_field,) = [x for x in schema["fields"] if x["name"] == "timestamp"]
        assert time_field["type"] == {"type": "long", "logicalType": "timestamp-millis"}
        meta = reader.metadata
        assert meta["fusou.dataset"] == "u1" and meta["fusou.table"] == "keyed"
        assert meta["fusou.schema_version"] == str(f["schema_version"])
        assert json.loads(meta["fusou.key_fields"]) == ["api_no"]
        assert meta["fusou.time_field"] == "timestamp"
        assert meta["fusou.seq_field"] == "_fusou_seq"
        assert json.loads(meta["fusou.sort_order"]) == ["timestamp", "_fusou_seq"]
        # polars too sees a UTC millisecond timestamp.
        frame = pl.read_avro(io.BytesIO(data))
        assert frame.schema["timestamp"] == pl.Datetime("ms", "UTC")
        assert frame["timestamp"].dt.date().cast(pl.String).unique().to_list() == [folder_day]
        # Sorted as declared.
        order = [(r["timestamp"], r["_fusou_seq"]) for r in records]
        assert order == sorted(order)
    assert seen == len(rows)
    # And FUSOU's reads still hand the time back as epoch milliseconds.
    async with grpc.aio.insecure_channel(archiving.target) as ch:
        reader_stub = reader_pb2_grpc.ReaderServiceStub(ch)
        times = []
        async for message in reader_stub.ReadRange(
            reader_pb2.ReadRangeRequest(
                dataset_id="u1",
                table="keyed",
                start_time=timestamp_of_ms(midnight - DAY_MS),
                end_time=timestamp_of_ms(midnight + 3 * DAY_MS),
            )
        ):
            times += [int(r.fields["timestamp"].number_value) for r in message.rows]
    assert times == [r["timestamp"] for r in rows]
