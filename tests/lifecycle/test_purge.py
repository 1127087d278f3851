"""PurgeDataset: nothing of the dataset is left anywhere, whatever killed the purge where, and
nothing of another dataset is touched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from fusou.api.archiver.v1 import archiver_pb2
from fusou.api.compactor.v1 import compactor_pb2
from fusou.api.ingest.v1 import ingest_pb2
from fusou.api.structs import structs
from fusou.api.timestamps import timestamp_of_ms
from fusou.catalog.tables import TableRegistry
from fusou.errors import Aborted
from fusou.jobs import Checkpoint
from fusou.lifecycle.purge import Purger, PurgeReport
from fusou.upload.uploader import Fragment, Manifest, RawUploader
from tests.archive.oracle import Crash, CrashAt, Hold, parked
from tests.compact.oracle import stored
from tests.lifecycle.footprint import Footprint, footprint, table_ids
from tests.read.conftest import Stubs
from tests.read.oracle import Oracle, archive, ingest, read, read_request
from tests.read.test_equivalence import READS, battle, minute, read_all
from tests.upload.helpers import parquet_bytes, upload

pytestmark = pytest.mark.integration

VICTIM = "victim-7f3a"
BYSTANDER = "bystander-2c9e"


@dataclass
class Dataset:
    name: str
    battle: Oracle
    ships: Oracle


async def fill(stubs: Stubs, name: str, *, light: bool = False) -> Dataset:
    """Rows of the dataset in every place they can be: cold, raw, optimized, in the lake, hot,
    quarantined, with stored request answers; ``light``: only hot and cold rows (a bystander
    whose every kind of place the main test covers)."""
    clock = stubs.services.clock
    ds = Dataset(name, Oracle(), Oracle())
    await ingest(
        stubs.ingest, ds.battle, name, "battle", [battle(i) for i in range(60)], request_id="b1"
    )
    await ingest(stubs.ingest, ds.ships, name, "ships", [battle(i) for i in range(20)])
    await archive(stubs.archiver, clock, name, "battle")
    if light:
        return ds
    await upload(
        stubs.ingest,
        stubs.url,
        name,
        [
            ("battle", [battle(i) for i in range(60, 90)]),
            ("ships", [battle(i) for i in range(20, 30)]),
        ],
        {"battle": ds.battle, "ships": ds.ships},
        request_id="u1",
    )
    await stubs.compactor.Compact(compactor_pb2.CompactRequest(dataset_id=name))
    await ingest(stubs.ingest, ds.battle, name, "battle", [battle(i) for i in range(90, 120)])
    # A deletion still waiting for compaction (of a range that holds nothing).
    await stubs.archiver.DeleteRows(
        archiver_pb2.DeleteRowsRequest(
            dataset_id=name,
            table="battle",
            start_time=timestamp_of_ms(minute(5000)),
            end_time=timestamp_of_ms(minute(6000)),
        )
    )
    conn = await asyncpg.connect(stubs.url)
    try:
        # A quarantined row, as the archiver leaves one (copied, so the buffer keeps its own).
        await conn.execute(
            "INSERT INTO fusou_quarantine (table_id, seq, event_time, ingested_at, "
            "schema_version, dedup_key, record, reason) "
            "SELECT table_id, seq + 1000000, event_time, ingested_at, schema_version, dedup_key, "
            "record, 'test' FROM fusou_buffer WHERE table_id = "
            "(SELECT table_id FROM fusou_tables WHERE dataset_id = $1 AND table_name = 'battle') "
            "ORDER BY seq LIMIT 1",
            name,
        )
    finally:
        await conn.close()
    return ds


async def check_reads(stubs: Stubs, ds: Dataset) -> None:
    await read_all(stubs, ds.battle, ds.name, "battle", READS[:1])
    await read_all(stubs, ds.ships, ds.name, "ships", READS[:1])


def _root(stubs: Stubs) -> Path:
    url = stubs.services.runtime.settings.store.url
    assert url is not None
    return Path(url.removeprefix("file://"))


async def prints(stubs: Stubs, name: str, ids: list[int]) -> Footprint:
    return await footprint(stubs.url, stubs.services.runtime.store, name, ids, _root(stubs))


async def purge(stubs: Stubs, name: str) -> archiver_pb2.PurgeDatasetResponse:
    answer: archiver_pb2.PurgeDatasetResponse = await stubs.archiver.PurgeDataset(
        archiver_pb2.PurgeDatasetRequest(dataset_id=name)
    )
    return answer


def purge_victim(stubs: Stubs, checkpoint: Checkpoint) -> Coroutine[Any, Any, PurgeReport]:
    """A purge of VICTIM run in this process, stopping at ``checkpoint``'s points."""
    rt = stubs.services.runtime
    purger = Purger(rt.settings, rt.pool, rt.store, rt.registry, checkpoint=checkpoint)
    return purger.purge(VICTIM, "tester")


async def code_of_ingest(stubs: Stubs, name: str) -> grpc.StatusCode:
    try:
        await stubs.ingest.Ingest(
            ingest_pb2.IngestRequest(dataset_id=name, table="battle", rows=structs([battle(500)]))
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def audit(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch("SELECT * FROM fusou_purges ORDER BY purge_id"))
    finally:
        await conn.close()


async def test_a_purge_leaves_nothing_of_the_dataset_and_touches_no_other(stubs: Stubs) -> None:
    victim = await fill(stubs, VICTIM)
    bystander = await fill(stubs, BYSTANDER)
    ids = await table_ids(stubs.url, VICTIM)
    before = await prints(stubs, VICTIM, ids)
    # Every kind of place holds some of it, or the scan proves nothing.
    assert {"fusou_buffer", "fusou_quarantine", "fusou_files", "fusou_blocks"} <= set(before.rows)
    assert {"fusou_lake_files", "iceberg_tables", "fusou_ingest_requests"} <= set(before.rows)
    assert "fusou_deletions" in before.rows
    assert "fusou_runs" in before.rows  # the archive and compaction runs that touched it
    kinds = {key.split("/", 1)[0] for key in before.objects}
    assert kinds >= {"raw", "optimized", "lake"}, kinds
    await check_reads(stubs, victim)
    others = await prints(stubs, BYSTANDER, await table_ids(stubs.url, BYSTANDER))

    answer = await purge(stubs, VICTIM)

    assert answer.complete and not answer.already_purged and answer.attempts == 1
    assert dict(answer.remaining) == {}
    assert answer.deleted["tables"] == 2
    assert answer.deleted["hot_rows"] == before.rows["fusou_buffer"]
    assert answer.deleted["quarantined_rows"] == 1
    assert answer.deleted["store_objects"] == len(before.objects)
    assert answer.requested_by == "anonymous" and answer.HasField("finished_at")
    after = await prints(stubs, VICTIM, ids)
    assert after.empty, after
    assert await prints(stubs, BYSTANDER, await table_ids(stubs.url, BYSTANDER)) == others
    await check_reads(stubs, bystander)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await read_all(stubs, victim.battle, VICTIM, "battle", READS[:1])
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND

    # The audit record: who, when, counts; no data.
    (record,) = await audit(stubs.url)
    assert record["state"] == "done" and record["dataset_id"] == VICTIM
    assert sorted(record["table_ids"]) == ids

    # Again: the record of the purge that removed it, nothing done.
    again = await purge(stubs, VICTIM)
    assert again.already_purged and again.purge_id == answer.purge_id
    assert len(await audit(stubs.url)) == 1

    # The dataset starts afresh: old request ids are gone with it.
    fresh = Oracle()
    await ingest(
        stubs.ingest, fresh, VICTIM, "battle", [battle(i) for i in range(5)], request_id="b1"
    )
    await read_all(stubs, fresh, VICTIM, "battle", READS[:1])


# Where a purge can die: after marking, after the first and the second table, after the
# catalog, after the store, after the last transaction.
STEPS = [
    ("purge-marked", 1),
    ("purge-table", 1),
    ("purge-table", 2),
    ("purge-catalog", 1),
    ("purge-store", 1),
    ("purge-done", 1),
]


@pytest.mark.parametrize(("point", "occurrence"), STEPS)
async def test_a_purge_killed_at_any_step_is_completed_by_calling_it_again(
    stubs: Stubs, point: str, occurrence: int
) -> None:
    await fill(stubs, VICTIM)
    bystander = await fill(stubs, BYSTANDER, light=True)
    ids = await table_ids(stubs.url, VICTIM)
    others = await prints(stubs, BYSTANDER, await table_ids(stubs.url, BYSTANDER))
    crash = CrashAt(point, occurrence)
    with pytest.raises(Crash):
        await purge_victim(stubs, crash)

    if point != "purge-done":
        # Half purged: writes are refused, not lost in a table that is going away.
        assert await code_of_ingest(stubs, VICTIM) == grpc.StatusCode.FAILED_PRECONDITION
        (record,) = await audit(stubs.url)
        assert record["state"] == "running"

    answer = await purge(stubs, VICTIM)
    assert answer.complete
    if point == "purge-done":
        assert answer.already_purged and answer.attempts == 1
    else:
        assert answer.attempts == 2 and answer.requested_by == "tester"
    assert (await prints(stubs, VICTIM, ids)).empty
    assert await prints(stubs, BYSTANDER, await table_ids(stubs.url, BYSTANDER)) == others
    await check_reads(stubs, bystander)


async def test_writes_during_a_purge_are_refused_and_leave_nothing(stubs: Stubs) -> None:
    await fill(stubs, VICTIM)
    ids = await table_ids(stubs.url, VICTIM)
    hold = Hold("purge-table")
    async with parked(purge_victim(stubs, hold), hold) as task:
        # One table is gone, the other not yet: both refuse, and a new table is not created.
        assert await code_of_ingest(stubs, VICTIM) == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stubs.ingest.Ingest(
                ingest_pb2.IngestRequest(
                    dataset_id=VICTIM, table="newcomer", rows=structs([battle(1)])
                )
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "being purged" in (refused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as declared:
            await stubs.ingest.DeclareTable(
                ingest_pb2.DeclareTableRequest(dataset_id=VICTIM, table="declared")
            )
        assert declared.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.aio.AioRpcError) as uploaded:
            await upload(stubs.ingest, stubs.url, VICTIM, [("battle", [battle(1)])], {})
        assert uploaded.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    report = await task
    assert report.complete
    assert (await prints(stubs, VICTIM, ids)).empty


async def test_ingest_racing_a_purge_leaves_no_row_behind(stubs: Stubs) -> None:
    """Ingest keeps writing while the purge runs: every write is refused, lands before the
    purge took its table (and is purged), or lands after the purge in a new table, where it is
    read back."""
    await fill(stubs, VICTIM)
    ids = await table_ids(stubs.url, VICTIM)
    stop = asyncio.Event()
    purged = asyncio.Event()
    enough = asyncio.Event()  # writes begun after the purge returned that were acknowledged
    # (api_no, status, whether the call started after the purge had returned)
    calls: list[tuple[int, grpc.StatusCode, bool]] = []
    numbers = iter(range(1000, 1_000_000))

    async def writer() -> None:
        while not stop.is_set():
            n = next(numbers)
            after = purged.is_set()
            try:
                await stubs.ingest.Ingest(
                    ingest_pb2.IngestRequest(
                        dataset_id=VICTIM, table="battle", rows=structs([battle(n)])
                    )
                )
                code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
            calls.append((n, code, after))
            if sum(1 for _, c, late in calls if late and c == grpc.StatusCode.OK) >= 8:
                enough.set()

    writers = [asyncio.create_task(writer()) for _ in range(4)]
    try:
        await asyncio.sleep(0.2)
        answer = await purge(stubs, VICTIM)
        purged.set()
        await asyncio.wait_for(enough.wait(), 60)
    finally:
        stop.set()
        await asyncio.gather(*writers)
    assert answer.complete
    codes = {code for _, code, _ in calls}
    # ABORTED: a table created in the instant its dataset's purge ended (retry).
    allowed = {grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED}
    assert codes <= allowed, codes
    assert grpc.StatusCode.FAILED_PRECONDITION in codes, "no write met the purge"
    # Nothing in the purged tables.
    rows = await footprint(stubs.url, stubs.services.runtime.store, "no-such-dataset", ids)
    assert rows.empty, rows
    # Every row of the dataset now is one acknowledged, and every write begun after the purge
    # returned is there.
    conn = await asyncpg.connect(stubs.url)
    try:
        after = await table_ids(stubs.url, VICTIM)
        assert after and not set(after) & set(ids)
        n_rows = await conn.fetchval(
            "SELECT count(*) FROM fusou_buffer WHERE table_id = ANY($1::integer[])", after
        )
    finally:
        await conn.close()
    acknowledged = [n for n, code, _ in calls if code == grpc.StatusCode.OK]
    late = [n for n, code, after in calls if after and code == grpc.StatusCode.OK]
    assert len(late) <= n_rows <= len(acknowledged)
    found = await read_numbers(stubs, VICTIM)
    assert set(late) <= found <= set(acknowledged)
    assert len(found) == n_rows


async def read_numbers(stubs: Stubs, name: str) -> set[int]:
    """The api_no of every row of the dataset's battle table, read through ReadRange."""
    answer = await read(stubs.reader, read_request(name, "battle", minute(-(10**5)), minute(10**7)))
    assert answer.table is not None
    return {int(n) for n in answer.table.column("api_no").to_pylist()}


async def test_runs_during_a_purge_write_nothing_that_stays(stubs: Stubs) -> None:
    """Archive, compaction and lake publication of the dataset, while it is being purged,
    wait for the tables the purge holds or find nothing in those it deleted."""
    await fill(stubs, VICTIM)
    bystander = await fill(stubs, BYSTANDER, light=True)
    ids = await table_ids(stubs.url, VICTIM)
    hold = Hold("purge-table")
    async with parked(purge_victim(stubs, hold), hold) as task:
        stubs.services.clock.advance(3600)
        archived = await stubs.archiver.Archive(
            archiver_pb2.ArchiveRequest(dataset_id=VICTIM, min_age_seconds=0)
        )
        assert archived.failed_tables == 0, archived
        await stubs.compactor.Compact(compactor_pb2.CompactRequest(dataset_id=VICTIM))
    report = await task
    assert report.complete
    assert (await prints(stubs, VICTIM, ids)).empty
    # Runs after the purge find nothing to write either.
    await stubs.archiver.Archive(archiver_pb2.ArchiveRequest(min_age_seconds=0))
    await stubs.compactor.Compact(compactor_pb2.CompactRequest())
    assert (await prints(stubs, VICTIM, ids)).empty
    await check_reads(stubs, bystander)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_an_upload_whose_bundle_a_purge_deleted_is_refused(stubs: Stubs) -> None:
    """The bundle is stored, the purge runs to its end (deleting it), then the upload
    registers: it must not be acknowledged with a catalog row naming a missing object."""
    await fill(stubs, VICTIM)
    ids = await table_ids(stubs.url, VICTIM)
    rt = stubs.services.runtime
    data = parquet_bytes([battle(i) for i in range(5)])
    manifest = Manifest(VICTIM, [Fragment("battle", 0, len(data))], len(data))
    hold = Hold("uploaded")
    uploader = RawUploader(rt.settings, rt.pool, rt.store, rt.registry, checkpoint=hold)
    async with parked(uploader.upload(manifest, _chunks(data)), hold) as task:
        assert (await purge(stubs, VICTIM)).complete
    with pytest.raises(Aborted, match="purged while uploading"):
        await task
    assert (await prints(stubs, VICTIM, ids)).empty
    assert await table_ids(stubs.url, VICTIM) == []


async def test_an_upload_reading_a_purged_tables_time_field_is_refused(stubs: Stubs) -> None:
    """Another process still caches the purged table (its time field ``seen``); the table
    created again keeps time in ``timestamp``: the upload is refused, not stored wrong."""
    rt = stubs.services.runtime
    await stubs.ingest.DeclareTable(
        ingest_pb2.DeclareTableRequest(dataset_id=VICTIM, table="sightings", time_field="seen")
    )
    elsewhere = TableRegistry(rt.pool)
    assert (await elsewhere.get(VICTIM, "sightings")) is not None
    assert (await purge(stubs, VICTIM)).complete
    data = parquet_bytes([{"seen": minute(i), "v": i} for i in range(5)])
    manifest = Manifest(VICTIM, [Fragment("sightings", 0, len(data))], len(data))
    uploader = RawUploader(rt.settings, rt.pool, rt.store, elsewhere)
    with pytest.raises(Aborted, match="created again"):
        await uploader.upload(manifest, _chunks(data))
    assert await table_ids(stubs.url, VICTIM) == []
    assert await stored(rt.store, ("raw/",)) == set()
    # The registry was refreshed: a retry reads the fragments as the table is now.
    info = await elsewhere.get(VICTIM, "sightings")
    assert info is None


async def test_bad_purges_change_nothing(stubs: Stubs) -> None:
    await fill(stubs, BYSTANDER, light=True)
    others = await prints(stubs, BYSTANDER, await table_ids(stubs.url, BYSTANDER))
    for dataset_id, code in (
        ("never-existed", grpc.StatusCode.NOT_FOUND),
        ("", grpc.StatusCode.INVALID_ARGUMENT),
        ("../escape", grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await purge(stubs, dataset_id)
        assert refused.value.code() == code, dataset_id
    assert await audit(stubs.url) == []
    assert await prints(stubs, BYSTANDER, await table_ids(stubs.url, BYSTANDER)) == others
