"""The Prometheus endpoint, scraped over HTTP after real calls to the four services: RPC counts
by method and code, latencies, rows ingested, the buffer's gauges, archive and compaction
totals, the reader's cache and GETs."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fusou.api.archiver.v1 import archiver_pb2
from fusou.api.compactor.v1 import compactor_pb2
from fusou.api.ingest.v1 import ingest_pb2
from fusou.api.reader.v1 import reader_pb2
from fusou.api.structs import structs
from fusou.app import build_server
from fusou.config import Settings
from fusou.runtime import open_runtime
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import ts

pytestmark = pytest.mark.integration

DATASET, TABLE = "metrics", "battle"
T0 = 1_700_000_000_000
ROWS = [{"timestamp": T0 + i, "ship": f"s{i % 3}", "hp": i} for i in range(100)]
INGEST = "/fusou.ingest.v1.IngestService/Ingest"
BOUND_S = 30.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def stubs(settings: Settings) -> AsyncIterator[Stubs]:
    async with open_stubs(settings, metrics_interval_s=0.1, **SMALL_BLOCKS) as s:
        yield s


def scrape_now(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=BOUND_S) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(stubs: Stubs) -> Samples:
    return await asyncio.to_thread(scrape_now, stubs.services.server.metrics_port)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def read_stats(stubs: Stubs, read: reader_pb2.ReadRangeRequest) -> reader_pb2.ReadStats:
    (stats,) = [m.stats async for m in stubs.reader.ReadRange(read) if m.HasField("stats")]
    return stats


async def until(stubs: Stubs, name: str, wanted: float, **labels: str) -> Samples:
    """Scrape until the gauge ``name`` reads ``wanted`` (gauges refresh every interval)."""
    async with asyncio.timeout(BOUND_S):
        while True:
            samples = await scrape(stubs)
            if value(samples, name, **labels) == wanted:
                return samples
            await asyncio.sleep(0.05)


async def test_metrics_after_real_calls(stubs: Stubs) -> None:
    before = await scrape(stubs)
    # The process's own series, for memory and CPU panels and alerts.
    assert value(before, "process_resident_memory_bytes") > 0
    assert value(before, "process_start_time_seconds") > 0
    assert "python_info" in {name for name, _ in before}
    answer = await stubs.ingest.Ingest(
        ingest_pb2.IngestRequest(dataset_id=DATASET, table=TABLE, rows=structs(ROWS))
    )
    assert answer.rows_written == len(ROWS)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stubs.ingest.Ingest(ingest_pb2.IngestRequest(dataset_id="", table=TABLE))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    after = await until(stubs, "fusou_buffer_rows", len(ROWS))
    assert value(after, "fusou_buffer_oldest_row_age_seconds") >= 0
    assert value(after, "fusou_ready") == 1
    # The table's own series (their number is bounded: tests/server/test_table_series.py).
    table = {"dataset": DATASET, "table": TABLE}
    after = await until(stubs, "fusou_table_rows", len(ROWS), tier="hot", **table)
    assert value(after, "fusou_table_bytes", tier="hot", **table) > 0
    assert value(after, "fusou_table_rows", tier="cold", **table) == 0
    assert value(after, "fusou_ingested_rows_total") - value(
        before, "fusou_ingested_rows_total"
    ) == len(ROWS)
    for code, calls in (("OK", 1), ("INVALID_ARGUMENT", 1)):
        key = {"method": INGEST, "code": code}
        assert (
            value(after, "fusou_rpc_requests_total", **key)
            - value(before, "fusou_rpc_requests_total", **key)
            == calls
        )
    timed = value(after, "fusou_rpc_duration_seconds_count", method=INGEST) - value(
        before, "fusou_rpc_duration_seconds_count", method=INGEST
    )
    assert timed == 2

    # Archive everything: the rows leave the buffer and are counted with their bytes.
    stubs.services.clock.advance(60)
    archived = await stubs.archiver.Archive(
        archiver_pb2.ArchiveRequest(dataset_id=DATASET, table=TABLE, min_age_seconds=0)
    )
    assert archived.total_rows == len(ROWS)
    after = await until(stubs, "fusou_buffer_rows", 0)
    after = await until(stubs, "fusou_table_rows", len(ROWS), tier="cold", **table)
    assert value(after, "fusou_table_compaction_backlog_files", **table) >= 1
    async with asyncio.timeout(BOUND_S):
        while not value(after, "fusou_last_successful_run_timestamp_seconds", kind="archive"):
            await asyncio.sleep(0.05)
            after = await scrape(stubs)
    assert value(after, "fusou_archived_rows_total") - value(
        before, "fusou_archived_rows_total"
    ) == len(ROWS)
    assert (
        value(after, "fusou_archived_bytes_total") - value(before, "fusou_archived_bytes_total")
        == archived.total_bytes
    )
    assert (
        value(after, "fusou_archive_duration_seconds_count")
        - value(before, "fusou_archive_duration_seconds_count")
        == 1
    )

    # Read twice: cold blocks are fetched with GETs, then served from the cache.
    read = reader_pb2.ReadRangeRequest(
        dataset_id=DATASET, table=TABLE, start_time=ts(T0), end_time=ts(T0 + len(ROWS))
    )
    stats = [await read_stats(stubs, read) for _ in range(2)]
    after = await scrape(stubs)

    def grew(name: str) -> float:
        return value(after, name) - value(before, name)

    assert grew("fusou_reader_cache_misses_total") == sum(s.blocks_fetched for s in stats) > 0
    assert grew("fusou_reader_cache_hits_total") == sum(s.cache_hits for s in stats) > 0
    assert grew("fusou_reader_get_requests_total") == sum(s.get_requests for s in stats) > 0

    compacted = await stubs.compactor.Compact(compactor_pb2.CompactRequest(dataset_id=DATASET))
    (result,) = compacted.datasets
    after = await scrape(stubs)
    assert grew("fusou_compacted_rows_total") == sum(t.output_rows for t in result.tables) > 0
    assert grew("fusou_compacted_bytes_total") == sum(t.output_bytes for t in result.tables)
    assert grew("fusou_compaction_duration_seconds_count") == 1

    # Deleting rows, then the dataset.
    deleted = await stubs.archiver.DeleteRows(
        archiver_pb2.DeleteRowsRequest(
            dataset_id=DATASET, table=TABLE, start_time=ts(T0), end_time=ts(T0 + 1)
        )
    )
    purged = await stubs.archiver.PurgeDataset(archiver_pb2.PurgeDatasetRequest(dataset_id=DATASET))
    after = await scrape(stubs)

    def grew_by(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew_by("fusou_deletions_total", reason="delete") == 1
    assert grew("fusou_deleted_hot_rows_total") == deleted.hot_rows_deleted
    assert grew_by("fusou_purges_total", outcome="complete") == 1
    assert grew("fusou_purged_objects_total") == purged.deleted["store_objects"] > 0


async def test_only_processes_hosting_the_archiver_read_the_buffer_gauges(
    settings: Settings,
) -> None:
    runtime = await open_runtime(settings)
    try:
        assert build_server(runtime, ["ingest", "reader"]).gauges is None
        assert build_server(runtime, ["archiver"]).gauges is not None
    finally:
        await runtime.close()
