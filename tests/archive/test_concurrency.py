"""Guarantee 6 and the archive's edges: concurrent runs, ingest during a run, and limits.

A run is parked mid-upload by a checkpoint waiting on an Event, so every overlap here is
certain rather than a matter of timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from fusou.api.archiver.v1 import archiver_pb2, archiver_pb2_grpc
from fusou.api.ingest.v1 import ingest_pb2_grpc
from fusou.archive.archiver import ArchiveOptions, Archiver, ArchiveReport
from fusou.config import Settings
from fusou.errors import Aborted, InvalidArgument, NotFound
from fusou.formats.avro_container import SEQ_FIELD
from fusou.schema.time_bounds import MAX_SPAN_S
from fusou.testing import ServicesUnderTest, running_services
from tests.archive.oracle import (
    Hold,
    Ingested,
    all_seqs,
    archive_settings,
    battle,
    buffer_seqs,
    cold_rows,
    cold_seqs,
    exactly_once,
    ingest_batches,
    parked,
    strip_metadata,
)
from tests.ingest.helpers import snapshot, violation_fields

pytestmark = pytest.mark.integration

DATASET = "u1"
BATCHES = [[battle(i) for i in range(k * 100, (k + 1) * 100)] for k in range(3)]


@asynccontextmanager
async def archive_services(settings: Settings, **changes: Any) -> AsyncIterator[ServicesUnderTest]:
    async with running_services(archive_settings(settings, **changes), ["ingest", "archiver"]) as s:
        yield s


def archiver(svc: ServicesUnderTest, hold: Hold | None = None) -> Archiver:
    rt = svc.runtime
    return Archiver(rt.settings, rt.pool, rt.store, rt.registry, checkpoint=hold, clock=svc.clock)


def url_of(svc: ServicesUnderTest) -> str:
    url = svc.runtime.settings.database.url
    assert url is not None
    return url


async def ingest_aged(
    svc: ServicesUnderTest, table: str, batches: Sequence[Sequence[dict[str, Any]]] = BATCHES
) -> Ingested:
    """Ingest ``batches`` and move the clock on a second, so a run with min age 0 takes them
    all (and everything ingested before them)."""
    ingested = await ingest_batches(svc.target, DATASET, table, batches)
    svc.clock.advance(1.0)
    return ingested


async def assert_all_once(svc: ServicesUnderTest, *ingested: Ingested) -> None:
    expected = set().union(*(i.seqs for i in ingested))
    assert exactly_once(await all_seqs(url_of(svc), svc.runtime.store), expected) == []


# --- Two archivers on the same table ---------------------------------------------------------


async def test_second_call_with_a_table_filter_is_aborted_while_the_first_runs(
    settings: Settings,
) -> None:
    async with archive_services(settings) as svc, grpc.aio.insecure_channel(svc.target) as ch:
        url = url_of(svc)
        ingested = await ingest_aged(svc, "battle")
        only = ArchiveOptions(dataset_id=DATASET, table="battle")
        hold = Hold("upload")
        async with parked(archiver(svc, hold).archive(only), hold) as first:
            # Parked mid-upload of its first file, holding the table.
            with pytest.raises(Aborted):
                await archiver(svc).archive(only)
            stub = archiver_pb2_grpc.ArchiverServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Archive(archiver_pb2.ArchiveRequest(dataset_id=DATASET, table="battle"))
            assert err.value.code() == grpc.StatusCode.ABORTED
            # The refused calls moved nothing.
            assert set(await buffer_seqs(url)) == ingested.seqs
            assert await cold_seqs(url, svc.runtime.store) == {}
        report = await first
        assert report.tables[0].rows == len(ingested.seqs) and report.tables[0].files >= 2
        assert await buffer_seqs(url) == []
        await assert_all_once(svc, ingested)
        # Once the first is done, the table is free again: a new call finds nothing to do.
        assert (await archiver(svc).archive(only)).tables == []


async def test_second_call_without_a_filter_skips_the_busy_table(settings: Settings) -> None:
    async with archive_services(settings) as svc, grpc.aio.insecure_channel(svc.target) as ch:
        url = url_of(svc)
        battle_rows = await ingest_aged(svc, "battle")
        other_rows = await ingest_aged(svc, "other", BATCHES[:1])
        hold = Hold("upload")
        # Tables go in name order: the first run parks on "battle" before reaching "other".
        async with parked(archiver(svc, hold).archive(ArchiveOptions()), hold) as first:
            second = await archiver(svc).archive(ArchiveOptions())
            by_table = {t.table: t for t in second.tables}
            assert by_table["battle"].skipped_busy and by_table["battle"].rows == 0
            assert not by_table["other"].skipped_busy
            assert by_table["other"].rows == len(other_rows.seqs)
            # Over gRPC too: the busy table is reported, not an error.
            stub = archiver_pb2_grpc.ArchiverServiceStub(ch)
            answer = await stub.Archive(archiver_pb2.ArchiveRequest())
            assert [(t.table, t.skipped_busy, t.rows) for t in answer.tables] == [
                ("battle", True, 0)
            ]
            assert set(await buffer_seqs(url, "battle")) == battle_rows.seqs
        report = await first
        rows = {t.table: t.rows for t in report.tables}
        # The first run finds "other" already moved when it gets there.
        assert rows == {"battle": len(battle_rows.seqs), "other": 0}
        assert await buffer_seqs(url) == []
        await assert_all_once(svc, battle_rows, other_rows)


@pytest.mark.parametrize("table", ["battle", ""])
async def test_racing_calls_move_every_row_once(settings: Settings, table: str) -> None:
    # No hold: whoever gets the lock first moves the rows; the other is refused, skips the
    # table, or comes after and finds less (or nothing) to do. Never a row twice.
    async with archive_services(settings) as svc:
        ingested = await ingest_aged(svc, "battle")
        options = ArchiveOptions(dataset_id=DATASET if table else "", table=table)
        results = await asyncio.gather(
            *(archiver(svc).archive(options) for _ in range(4)), return_exceptions=True
        )
        moved = 0
        for result in results:
            if isinstance(result, BaseException):
                assert isinstance(result, Aborted) and table, result
            else:
                assert isinstance(result, ArchiveReport)
                moved += sum(t.rows for t in result.tables)
        assert moved == len(ingested.seqs)
        assert await buffer_seqs(url_of(svc)) == []
        await assert_all_once(svc, ingested)


# --- Ingest while an archive runs --------------------------------------------------------------


async def test_rows_ingested_mid_archive_stay_hot_until_the_next_run(settings: Settings) -> None:
    async with archive_services(settings) as svc, grpc.aio.insecure_channel(svc.target) as ch:
        url = url_of(svc)
        store = svc.runtime.store
        old_alpha = await ingest_aged(svc, "alpha", BATCHES[:1])
        old_battle = await ingest_aged(svc, "battle")
        hold = Hold("upload")
        # Tables go in name order: the run parks streaming "alpha", before it opens "battle".
        new = Ingested()
        async with parked(archiver(svc, hold).archive(ArchiveOptions()), hold) as first:
            stub = ingest_pb2_grpc.IngestServiceStub(ch)
            # The table being streamed out, one the run has still to reach (with a schema
            # change), and a table new to the run.
            await new.send(stub, DATASET, "alpha", [battle(i) for i in range(500, 560)])
            await new.send(stub, DATASET, "battle", [battle(i) for i in range(1000, 1100)])
            await new.send(
                stub, DATASET, "battle", [battle(i) for i in range(1100, 1150)], arrow=True
            )
            await new.send(
                stub, DATASET, "battle", [battle(i, crit=True) for i in range(1150, 1180)]
            )
            await new.send(stub, DATASET, "fresh", [battle(i) for i in range(2000, 2040)])
        report = await first
        assert {t.table: t.rows for t in report.tables} == {
            "alpha": len(old_alpha.seqs),
            "battle": len(old_battle.seqs),
        }
        # Everything new is still in the buffer, and only it.
        assert set(await buffer_seqs(url)) == new.seqs
        assert set(await cold_seqs(url, store)) == old_alpha.seqs | old_battle.seqs
        await assert_all_once(svc, old_alpha, old_battle, new)

        second = await archiver(svc).archive(ArchiveOptions())
        assert sum(t.rows for t in second.tables) == len(new.seqs)
        assert await buffer_seqs(url) == []
        await assert_all_once(svc, old_alpha, old_battle, new)
        rows = await cold_rows(url, store)
        assert {r[SEQ_FIELD]: strip_metadata(r) for r in rows} == (
            old_alpha.by_seq | old_battle.by_seq | new.by_seq
        )


# --- Limits and filters ------------------------------------------------------------------------


async def test_max_rows_per_table_moves_exactly_that_many_oldest_rows(settings: Settings) -> None:
    async with archive_services(settings) as svc:
        url = url_of(svc)
        ingested = await ingest_aged(svc, "battle")
        # Not a multiple of the block rows (50), and more than one file's worth.
        report = await archiver(svc).archive(ArchiveOptions(max_rows_per_table=120))
        (outcome,) = report.tables
        assert outcome.rows == 120 and outcome.more_remaining and outcome.files >= 2
        # Event times rise with the seqs here, so the oldest rows are the first 120 seqs.
        ordered = sorted(ingested.seqs)
        assert sorted(await cold_seqs(url, svc.runtime.store)) == ordered[:120]
        assert await buffer_seqs(url) == ordered[120:]
        await assert_all_once(svc, ingested)

        # A budget exactly the size of what is left: all of it, and nothing remains.
        report = await archiver(svc).archive(ArchiveOptions(max_rows_per_table=180))
        assert [(t.rows, t.more_remaining) for t in report.tables] == [(180, False)]
        assert await buffer_seqs(url) == []
        await assert_all_once(svc, ingested)


async def test_rows_younger_than_the_minimum_age_stay(settings: Settings) -> None:
    async with archive_services(settings, archive_min_age_s=3600.0) as svc:
        url = url_of(svc)
        store = svc.runtime.store
        old = await ingest_batches(svc.target, DATASET, "battle", BATCHES[:2])
        svc.clock.advance(1800)
        young = await ingest_batches(svc.target, DATASET, "battle", BATCHES[2:])
        # Nothing is an hour old yet (the old rows are half an hour old).
        assert (await archiver(svc).archive(ArchiveOptions())).tables == []
        assert set(await buffer_seqs(url)) == old.seqs | young.seqs

        # The old rows an hour and a quarter, the young ones three quarters of an hour.
        svc.clock.advance(2700)
        report = await archiver(svc).archive(ArchiveOptions())
        assert [(t.table, t.rows, t.more_remaining) for t in report.tables] == [
            ("battle", len(old.seqs), False)
        ]
        assert set(await buffer_seqs(url)) == young.seqs
        assert set(await cold_seqs(url, store)) == old.seqs

        # The request's min age overrides the server's.
        report = await archiver(svc).archive(ArchiveOptions(min_age_s=0))
        assert sum(t.rows for t in report.tables) == len(young.seqs)
        assert await buffer_seqs(url) == []
        await assert_all_once(svc, old, young)


async def test_filters_select_datasets_and_tables(settings: Settings) -> None:
    async with archive_services(settings) as svc, grpc.aio.insecure_channel(svc.target) as ch:
        url = url_of(svc)
        a = await ingest_aged(svc, "battle", BATCHES[:1])
        b = await ingest_batches(svc.target, "u2", "battle", BATCHES[1:2])
        svc.clock.advance(1.0)
        stub = archiver_pb2_grpc.ArchiverServiceStub(ch)
        # A named dataset or table that does not exist is NOT_FOUND (a misspelt name would
        # otherwise archive nothing, successfully), and nothing moves.
        for request, missing in (
            (archiver_pb2.ArchiveRequest(dataset_id="nobody"), "no dataset 'nobody'"),
            (
                archiver_pb2.ArchiveRequest(dataset_id="nobody", table="battle"),
                "no dataset 'nobody'",
            ),
            (
                archiver_pb2.ArchiveRequest(dataset_id=DATASET, table="nothing"),
                f"no table 'nothing' in dataset '{DATASET}'",
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Archive(request)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND, request
            assert err.value.details() == missing
        # The domain call raises the same error.
        with pytest.raises(NotFound):
            await archiver(svc).archive(ArchiveOptions(dataset_id="nobody"))
        assert set(await buffer_seqs(url)) == a.seqs | b.seqs
        # A named dataset whose rows are all young is found, with nothing to do.
        young = await stub.Archive(archiver_pb2.ArchiveRequest(dataset_id="u2", min_age_seconds=60))
        assert list(young.tables) == [] and young.total_rows == 0

        answer = await stub.Archive(archiver_pb2.ArchiveRequest(dataset_id="u2"))
        assert [(t.dataset_id, t.table, t.rows) for t in answer.tables] == [
            ("u2", "battle", len(b.seqs))
        ]
        assert answer.total_rows == len(b.seqs) and answer.total_files >= 1
        assert set(await buffer_seqs(url)) == a.seqs
        await assert_all_once(svc, a, b)


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"table": "battle"}, "table"),
        ({"dataset_id": "../x"}, "dataset_id"),
        ({"dataset_id": DATASET, "table": "a/b"}, "table"),
        ({"max_rows_per_table": -1}, "max_rows_per_table"),
        ({"min_age_seconds": -5}, "min_age_seconds"),
        # The cut-off (now minus the age) would overflow 64-bit milliseconds.
        ({"min_age_seconds": 2**62}, "min_age_seconds"),
        ({"min_age_seconds": 2**63 - 1}, "min_age_seconds"),
        ({"min_age_seconds": MAX_SPAN_S + 1}, "min_age_seconds"),
    ],
)
async def test_bad_requests_are_invalid_arguments_and_change_nothing(
    settings: Settings, request_fields: dict[str, Any], field: str
) -> None:
    async with archive_services(settings) as svc, grpc.aio.insecure_channel(svc.target) as ch:
        url = url_of(svc)
        await ingest_aged(svc, "battle", BATCHES[:1])
        before = await snapshot(url)
        stub = archiver_pb2_grpc.ArchiverServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Archive(archiver_pb2.ArchiveRequest(**request_fields))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violation_fields(err.value) == [field]
        # The domain call raises the same error.
        options = {
            "min_age_s" if k == "min_age_seconds" else k: v for k, v in request_fields.items()
        }
        with pytest.raises(InvalidArgument) as domain_err:
            await archiver(svc).archive(ArchiveOptions(**options))
        assert [v.field for v in domain_err.value.violations] == [field]
        assert await snapshot(url) == before
        assert await cold_seqs(url, svc.runtime.store) == {}


async def test_the_longest_minimum_age_archives_nothing(settings: Settings) -> None:
    async with archive_services(settings) as svc, grpc.aio.insecure_channel(svc.target) as ch:
        ingested = await ingest_aged(svc, "battle", BATCHES[:1])
        stub = archiver_pb2_grpc.ArchiverServiceStub(ch)
        answer = await stub.Archive(archiver_pb2.ArchiveRequest(min_age_seconds=MAX_SPAN_S))
        assert answer.total_rows == 0
        assert set(await buffer_seqs(url_of(svc))) == ingested.seqs


async def test_a_concurrent_sweep_never_deletes_an_upload_about_to_commit(
    settings: Settings,
) -> None:
    # A run parked between upload and commit holds an object no catalog row names yet. Another
    # Archive call (which skips the busy table, then sweeps) must not take it for an orphan,
    # whatever the grace: the first run would then register a file that does not exist.
    async with archive_services(settings, delete_grace_s=0.0) as svc:
        url = url_of(svc)
        ingested = await ingest_aged(svc, "battle")
        hold = Hold("uploaded")
        async with parked(archiver(svc, hold).archive(ArchiveOptions()), hold) as first:
            second = await archiver(svc).archive(ArchiveOptions())
            assert [(t.table, t.skipped_busy) for t in second.tables] == [("battle", True)]
            assert second.orphans_deleted == 0
        await first
        assert await buffer_seqs(url) == []
        await assert_all_once(svc, ingested)
