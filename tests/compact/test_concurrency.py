"""Guarantee 6 for compaction: one run per dataset at a time; and a run concurrent with
ingest, uploads, archives and reads leaves every read right. Health answers throughout."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fusou.api.compactor.v1 import compactor_pb2
from fusou.compact.compactor import CompactOptions, Compactor, Status
from tests.archive.oracle import Hold, parked
from tests.compact.oracle import COMPACTED, SKIPPED_BUSY, compact_until_done, flags
from tests.read.conftest import Stubs
from tests.read.oracle import Oracle, archive, ingest
from tests.read.test_equivalence import READS, battle, read_all
from tests.upload.helpers import upload

pytestmark = pytest.mark.integration

DS, TABLE = "u1", "battle"


async def _load(stubs: Stubs, oracle: Oracle) -> None:
    await ingest(stubs.ingest, oracle, DS, TABLE, [battle(i) for i in range(60)])
    await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
    await upload(
        stubs.ingest, stubs.url, DS, [(TABLE, [battle(i) for i in range(50, 90)])], {TABLE: oracle}
    )


def _held(stubs: Stubs, hold: Hold) -> Compactor:
    rt = stubs.services.runtime
    return Compactor(rt.settings, rt.pool, rt.store, rt.registry, checkpoint=hold)


async def test_a_second_run_on_a_dataset_being_compacted_is_refused(stubs: Stubs) -> None:
    oracle = Oracle()
    await _load(stubs, oracle)
    hold = Hold("read")
    async with parked(_held(stubs, hold).compact(CompactOptions(dataset_id=DS)), hold) as first:
        # Named explicitly: ABORTED, so a caller knows to retry later.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.compactor.Compact(compactor_pb2.CompactRequest(dataset_id=DS))
        assert err.value.code() == grpc.StatusCode.ABORTED
        # Data arriving meanwhile flags the dataset again; the scheduled mode then finds it
        # busy and skips it.
        await upload(
            stubs.ingest,
            stubs.url,
            DS,
            [(TABLE, [battle(i) for i in range(90, 95)])],
            {TABLE: oracle},
        )
        answer = await stubs.compactor.Compact(compactor_pb2.CompactRequest())
        assert [(d.dataset_id, d.status) for d in answer.datasets] == [(DS, SKIPPED_BUSY)]
        # Health answers while a compaction runs.
        async with grpc.aio.insecure_channel(stubs.services.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    (outcome,) = await first
    assert outcome.status is Status.COMPACTED
    # The upload made during the run is still flagged, and the next run takes it.
    assert (await flags(stubs.url, DS))["compaction_needed"] is True
    results = await compact_until_done(stubs.compactor, DS)
    assert results[-1].status == COMPACTED and results[-1].tables[0].input_files == 2
    await read_all(stubs, oracle, DS, TABLE, READS, compacted=True)


@pytest.mark.parametrize("point", ["read", "uploaded", "commit"])
async def test_ingest_uploads_archives_and_reads_during_a_compaction(
    stubs: Stubs, point: str
) -> None:
    oracle = Oracle()
    await _load(stubs, oracle)
    hold = Hold(point)
    async with parked(_held(stubs, hold).compact(CompactOptions(dataset_id=DS)), hold) as run:
        await read_all(stubs, oracle, DS, TABLE, READS)
        # New rows (some repeating rows being compacted), archived while the run is held.
        await ingest(stubs.ingest, oracle, DS, TABLE, [battle(i) for i in range(85, 120)])
        await archive(stubs.archiver, stubs.services.clock, DS, TABLE, max_rows=20)
        await upload(
            stubs.ingest,
            stubs.url,
            DS,
            [(TABLE, [battle(i) for i in range(110, 130)])],
            {TABLE: oracle},
        )
        await read_all(stubs, oracle, DS, TABLE, READS)
    (outcome,) = await run
    assert outcome.status is Status.COMPACTED
    await read_all(stubs, oracle, DS, TABLE, READS, compacted=True)
    results = await compact_until_done(stubs.compactor, DS)
    assert results[-1].status == COMPACTED
    await read_all(stubs, oracle, DS, TABLE, READS, compacted=True)


async def test_a_field_added_during_a_run_survives_it(stubs: Stubs) -> None:
    """Tables compact one after another: a table's schema may grow while earlier tables
    compact, and its newer files must not be conformed to the schema the run started with."""
    oracles = {"a": Oracle(), "b": Oracle()}
    for table, oracle in oracles.items():
        await upload(
            stubs.ingest, stubs.url, DS, [(table, [battle(i) for i in range(20)])], {table: oracle}
        )
    hold = Hold("read")  # reached first while compacting table "a"
    async with parked(_held(stubs, hold).compact(CompactOptions(dataset_id=DS)), hold) as run:
        grown = [{**battle(i), "extra": i * 1.5} for i in range(20, 30)]
        await upload(stubs.ingest, stubs.url, DS, [("b", grown)], {"b": oracles["b"]})
    (outcome,) = await run
    assert outcome.status is Status.COMPACTED
    assert [(t.table, t.input_files) for t in outcome.tables] == [("a", 1), ("b", 2)]
    for table, oracle in oracles.items():
        await read_all(stubs, oracle, DS, table, READS, compacted=True)
