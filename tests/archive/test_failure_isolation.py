"""One table's failure stays with that table: a scheduled Archive reports it FAILED and still
archives every other table and dataset and sweeps; a stored row no cold file can hold (a time
before year 1, let in by an older ingest) goes to the quarantine once instead of failing its
table forever.

Every check reads independently of the code under test: the buffer and the quarantine with SQL,
cold files decoded by fastavro (tests.archive.oracle), reads against what was ingested
(tests.read.oracle).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from fusou.api.archiver.v1 import archiver_pb2
from fusou.api.reader.v1 import reader_pb2
from fusou.archive.archiver import ArchiveOptions, Archiver
from fusou.config import Settings
from tests.archive.oracle import (
    Hold,
    all_seqs,
    buffer_seqs,
    cold_seqs,
    exactly_once,
    fetch,
    parked,
)
from tests.archive.poison import (
    BUFFER_COLUMNS,
    LONG_AGO_MS,
    poison_in_oracle,
    poison_row,
    quarantined,
)
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import Oracle, ingest
from tests.read.test_equivalence import READS, battle, read_all
from tests.server.test_metrics import scrape, until, value
from tests.support.s3server import S3Server, running_s3_server

pytestmark = pytest.mark.integration

ARCHIVED = archiver_pb2.TABLE_ARCHIVE_STATUS_ARCHIVED
FAILED = archiver_pb2.TABLE_ARCHIVE_STATUS_FAILED
# Two tables in two datasets each, and one more dataset: the poisoned table's neighbours in
# its own dataset and in the others must all move.
TABLES = [("a", "battle"), ("a", "sortie"), ("b", "battle"), ("p", "battle"), ("p", "sortie")]
POISONED = ("p", "battle")
ROWS_PER_TABLE = 60
# An object no catalog row names, in another dataset than the poisoned one.
ORPHAN = "cold/b/battle/date=2023-11-14/0000orphan.avro"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3_server() as server:
        yield server


@asynccontextmanager
async def _system(settings: Settings, store: str, s3: S3Server | None) -> AsyncIterator[Stubs]:
    """The four services on the local store or on S3, sweeping without a grace period (every
    orphan is old enough), refreshing gauges often."""
    changes: dict[str, Any] = {**SMALL_BLOCKS, "delete_grace_s": 0.0, "metrics_interval_s": 0.1}
    if store == "s3":
        assert s3 is not None
        changes |= {
            "object_store_url": f"s3://{s3.new_bucket()}/prefix",
            "s3_endpoint_url": s3.endpoint_url,
        }
    async with open_stubs(settings, **changes) as stubs:
        yield stubs


async def _load(stubs: Stubs) -> dict[tuple[str, str], Oracle]:
    oracles: dict[tuple[str, str], Oracle] = {}
    for dataset, table in TABLES:
        oracle = oracles[(dataset, table)] = Oracle()
        for start in range(0, ROWS_PER_TABLE, 20):
            rows = [battle(i) for i in range(start, start + 20)]
            await ingest(stubs.ingest, oracle, dataset, table, rows)
    return oracles


def _results(answer: archiver_pb2.ArchiveResponse) -> dict[tuple[str, str], Any]:
    return {(t.dataset_id, t.table): t for t in answer.tables}


async def _quarantine_seqs(url: str) -> Counter[int]:
    return Counter(r["seq"] for r in await quarantined(url))


async def _stats(stubs: Stubs) -> dict[tuple[str, str], reader_pb2.TableStats]:
    answer = await stubs.reader.GetStats(reader_pb2.GetStatsRequest())
    return {(t.dataset_id, t.table): t for t in answer.tables}


@pytest.mark.parametrize("store", ["local", "s3"])
async def test_a_poison_row_fails_its_table_once_and_everything_else_is_archived_and_swept(
    settings: Settings, s3: S3Server, store: str
) -> None:
    async with _system(settings, store, s3) as stubs:
        url, objects = stubs.url, stubs.services.runtime.store
        oracles = await _load(stubs)
        every_seq = {r.seq for o in oracles.values() for r in o.rows}
        stubs.services.clock.advance(60)
        poisoned_seq = oracles[POISONED].rows[7].seq
        stored_before = await poison_row(url, *POISONED, poisoned_seq, LONG_AGO_MS)
        poison_in_oracle(oracles[POISONED], poisoned_seq, LONG_AGO_MS)
        await objects.put(ORPHAN, b"left by a crashed run")
        metrics_before = await scrape(stubs)

        # The hourly CronJob's call: no filter.
        answer = await stubs.archiver.Archive(archiver_pb2.ArchiveRequest(min_age_seconds=0))

        results = _results(answer)
        assert set(results) == set(TABLES)
        poisoned = results[POISONED]
        assert poisoned.status == FAILED
        assert poisoned.rows_quarantined == 1
        assert "fusou_quarantine" in poisoned.error and "0001-01-01" in poisoned.error
        # The table's good rows moved all the same.
        assert poisoned.rows == ROWS_PER_TABLE - 1 and poisoned.files >= 1
        for key, result in results.items():
            if key != POISONED:
                assert result.status == ARCHIVED, result
                assert (result.rows, result.rows_quarantined, result.error) == (
                    ROWS_PER_TABLE,
                    0,
                    "",
                )
        assert answer.failed_tables == 1 and answer.total_rows_quarantined == 1
        assert answer.total_rows == len(TABLES) * ROWS_PER_TABLE - 1
        # The sweep ran after the failed table.
        assert answer.sweep_error == "" and answer.orphans_deleted == 1
        assert ORPHAN not in {i.key async for i in objects.list("cold/")}

        # The buffer is empty; the poison row is in the quarantine, exactly as it was stored.
        assert await buffer_seqs(url) == []
        (kept,) = await quarantined(url)
        assert {c: kept[c] for c in BUFFER_COLUMNS} == stored_before
        assert (kept["dataset_id"], kept["table_name"]) == POISONED
        assert "before 0001-01-01" in kept["reason"]
        # Each row exactly once: cold, or (the poison row) quarantined.
        everywhere = await all_seqs(url, objects) + await _quarantine_seqs(url)
        assert exactly_once(everywhere, every_seq) == []
        assert poisoned_seq not in await cold_seqs(url, objects)
        for (dataset, table), oracle in oracles.items():
            await read_all(stubs, oracle, dataset, table, READS)

        # What operators watch: GetStats and the metrics.
        stats = await _stats(stubs)
        assert {k: (s.hot_rows, s.quarantined_rows) for k, s in stats.items()} == {
            k: (0, int(k == POISONED)) for k in TABLES
        }
        assert stats[POISONED].cold_rows == ROWS_PER_TABLE - 1
        after = await until(stubs, "fusou_quarantine_rows", 1)
        assert value(after, "fusou_buffer_rows") == 0
        for name, delta in (
            ("fusou_quarantined_rows_total", 1),
            ("fusou_archive_failed_tables_total", 1),
            ("fusou_archived_rows_total", len(TABLES) * ROWS_PER_TABLE - 1),
        ):
            assert value(after, name) - value(metrics_before, name) == delta, name

        # The next run finds the table clean: new rows archive, nothing fails.
        more = [battle(i) for i in range(ROWS_PER_TABLE, ROWS_PER_TABLE + 10)]
        await ingest(stubs.ingest, oracles[POISONED], *POISONED, more)
        stubs.services.clock.advance(60)
        again = await stubs.archiver.Archive(archiver_pb2.ArchiveRequest(min_age_seconds=0))
        (clean,) = again.tables
        assert (clean.dataset_id, clean.table, clean.status) == (*POISONED, ARCHIVED)
        assert (clean.rows, clean.rows_quarantined, clean.error) == (10, 0, "")
        assert again.failed_tables == 0 and again.total_rows_quarantined == 0
        every_seq |= {r.seq for r in oracles[POISONED].rows}
        everywhere = await all_seqs(url, objects) + await _quarantine_seqs(url)
        assert exactly_once(everywhere, every_seq) == []
        await read_all(stubs, oracles[POISONED], *POISONED, READS)


async def test_a_call_naming_the_poisoned_table_reports_the_quarantine(settings: Settings) -> None:
    """A quarantine is not an error of the call: the rest of the table moved, and the answer
    says so (the table FAILED, its rows counted) instead of hiding it behind an error status."""
    async with _system(settings, "local", None) as stubs:
        oracle = Oracle()
        await ingest(stubs.ingest, oracle, *POISONED, [battle(i) for i in range(30)])
        late = oracle.rows[-1].seq
        await poison_row(stubs.url, *POISONED, late, 253_402_300_800_000)  # year 10000
        poison_in_oracle(oracle, late, 253_402_300_800_000)
        stubs.services.clock.advance(60)
        dataset, table = POISONED
        answer = await stubs.archiver.Archive(
            archiver_pb2.ArchiveRequest(dataset_id=dataset, table=table, min_age_seconds=0)
        )
        (result,) = answer.tables
        assert (result.status, result.rows, result.rows_quarantined) == (FAILED, 29, 1)
        (kept,) = await quarantined(stubs.url)
        assert kept["seq"] == late and "after 9999-12-31" in kept["reason"]
        await read_all(stubs, oracle, dataset, table, READS)

        # Moved back to the buffer as the README shows, or copied back (the quarantine
        # keeping its copy), the row is set aside again, once.
        back = (
            "WITH back AS (DELETE FROM fusou_quarantine WHERE table_id = $1 AND seq = $2 "
            "RETURNING *) INSERT INTO fusou_buffer (seq, table_id, event_time, ingested_at, "
            "schema_version, dedup_key, record) SELECT seq, table_id, event_time, ingested_at, "
            "schema_version, dedup_key, record FROM back"
        )
        copy = (
            "INSERT INTO fusou_buffer (seq, table_id, event_time, ingested_at, schema_version, "
            "dedup_key, record) SELECT seq, table_id, event_time, ingested_at, schema_version, "
            "dedup_key, record FROM fusou_quarantine WHERE table_id = $1 AND seq = $2"
        )
        for statement in (back, copy):
            await fetch(stubs.url, statement, kept["table_id"], late)
            assert await buffer_seqs(stubs.url) == [late]
            again = await stubs.archiver.Archive(archiver_pb2.ArchiveRequest(min_age_seconds=0))
            (result,) = again.tables
            assert (result.status, result.rows, result.rows_quarantined) == (FAILED, 0, 1)
            assert await buffer_seqs(stubs.url) == []
            (again_kept,) = await quarantined(stubs.url)
            assert {c: again_kept[c] for c in BUFFER_COLUMNS} == {
                c: kept[c] for c in BUFFER_COLUMNS
            }


async def test_a_table_whose_schema_version_is_missing_fails_alone(settings: Settings) -> None:
    """A failure that is no time bound: the rows of a/sortie name a schema version the catalog
    does not hold. A sweeping call (and one filtered to the dataset) reports that table and
    archives the others; a call naming the table answers its error; once repaired, it moves."""
    async with _system(settings, "local", None) as stubs:
        url, objects = stubs.url, stubs.services.runtime.store
        oracles = await _load(stubs)
        broken = ("a", "sortie")
        broken_seqs = {r.seq for r in oracles[broken].rows}
        await fetch(
            url,
            "UPDATE fusou_buffer SET schema_version = 99 WHERE table_id = "
            "(SELECT table_id FROM fusou_tables WHERE dataset_id = $1 AND table_name = $2)",
            *broken,
        )
        await objects.put(ORPHAN, b"left by a crashed run")
        stubs.services.clock.advance(60)

        # Naming the table: its error is the call's (nothing moves).
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.archiver.Archive(
                archiver_pb2.ArchiveRequest(dataset_id="a", table="sortie", min_age_seconds=0)
            )
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert set(await buffer_seqs(url)) == {r.seq for o in oracles.values() for r in o.rows}

        # Filtered to the dataset: a/battle moves, a/sortie is reported.
        only_a = await stubs.archiver.Archive(
            archiver_pb2.ArchiveRequest(dataset_id="a", min_age_seconds=0)
        )
        results = _results(only_a)
        assert results[("a", "battle")].status == ARCHIVED
        assert results[broken].status == FAILED
        assert "no schema version 99" in results[broken].error
        assert only_a.failed_tables == 1

        # Scheduled: every other table moves; the broken one stays hot, untouched.
        answer = await stubs.archiver.Archive(archiver_pb2.ArchiveRequest(min_age_seconds=0))
        results = _results(answer)
        assert results[broken].status == FAILED and results[broken].rows == 0
        assert "no schema version 99" in results[broken].error
        assert {k: r.status for k, r in results.items() if k != broken} == {
            k: ARCHIVED for k in TABLES if k not in (broken, ("a", "battle"))
        }
        assert answer.failed_tables == 1 and answer.total_rows_quarantined == 0
        # The sweep ran after the failed table (the orphan is another dataset's).
        assert answer.orphans_deleted == 1
        assert set(await buffer_seqs(url)) == broken_seqs
        assert await quarantined(url) == []
        every_seq = {r.seq for o in oracles.values() for r in o.rows}
        assert exactly_once(await all_seqs(url, objects), every_seq) == []
        for key, oracle in oracles.items():
            if key != broken:
                await read_all(stubs, oracle, *key, READS)

        # Repaired, the next run moves it.
        await fetch(url, "UPDATE fusou_buffer SET schema_version = 1 WHERE schema_version = 99")
        repaired = await stubs.archiver.Archive(archiver_pb2.ArchiveRequest(min_age_seconds=0))
        (result,) = repaired.tables
        assert (result.dataset_id, result.table, result.status) == (*broken, ARCHIVED)
        assert result.rows == ROWS_PER_TABLE and repaired.failed_tables == 0
        assert await buffer_seqs(url) == []
        assert exactly_once(await all_seqs(url, objects), every_seq) == []
        await read_all(stubs, oracles[broken], *broken, READS)


async def test_cancelling_a_sweeping_call_is_not_a_table_failure(settings: Settings) -> None:
    """Isolation catches a table's errors, not cancellation: a cancelled call ends at once,
    and reports nothing as failed (there is no report)."""
    async with _system(settings, "local", None) as stubs:
        await _load(stubs)
        stubs.services.clock.advance(60)
        rt = stubs.services.runtime
        hold = Hold("upload")
        run = Archiver(rt.settings, rt.pool, rt.store, rt.registry, checkpoint=hold, clock=rt.clock)
        async with parked(run.archive(ArchiveOptions(min_age_s=0)), hold) as task:
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Only the table being written when it was cancelled was touched, and it rolled back.
        assert len(await buffer_seqs(stubs.url)) == len(TABLES) * ROWS_PER_TABLE
