"""Publication that fails, is turned off, or meets a file FUSOU did not write: what was archived
or compacted stays so, the snapshot keeps naming only stored files, the run says what failed,
and the next run publishes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyiceberg.io.pyarrow import schema_to_pyarrow

from fusou.api.archiver.v1 import archiver_pb2
from fusou.api.compactor.v1 import compactor_pb2
from fusou.archive.archiver import ArchiveOptions, Archiver
from fusou.compact.compactor import CompactOptions, Compactor, Status
from fusou.config import Settings
from fusou.objectstore.base import ObjectInfo, ObjectStoreError, PutData
from fusou.upload.uploader import Fragment, Manifest, RawUploader
from tests.compact.oracle import active_kinds
from tests.compact.test_runs import FlakyStore
from tests.lake.helpers import (
    assert_snapshot_files_stored,
    catalog,
    lake_agrees,
    lake_table,
)
from tests.read.conftest import Stubs
from tests.read.oracle import Oracle, archive, ingest
from tests.read.test_equivalence import battle
from tests.server.test_metrics import scrape, value
from tests.upload.helpers import parquet_bytes

pytestmark = pytest.mark.integration

DS, TABLE = "u1", "battle"


class LakeWritesFail(FlakyStore):
    """The test's store, refusing every write under lake/ (a permission the lake lacks)."""

    def _flake(self, what: str) -> None:
        return None

    async def put(self, key: str, data: PutData) -> ObjectInfo:
        if key.startswith("lake/"):
            raise ObjectStoreError(f"injected: no writes to {key}")
        return await self.inner.put(key, data)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _agree(stubs: Stubs) -> int:
    return await lake_agrees(stubs, DS, TABLE)


async def test_archive_reports_a_failed_publication_and_the_next_run_publishes(
    stubs: Stubs, settings_objects: Path
) -> None:
    rt = stubs.services.runtime
    await ingest(stubs.ingest, Oracle(), DS, TABLE, [battle(i) for i in range(30)])
    await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
    await ingest(stubs.ingest, Oracle(), DS, TABLE, [battle(i) for i in range(30, 50)])
    stubs.services.clock.advance(60)
    before = await scrape(stubs)
    # The lake's data folder cannot be made: the table's files cannot be written.
    (settings_objects / "lake" / DS / TABLE / "data").rename(settings_objects / "data-aside")
    (settings_objects / "lake" / DS / TABLE / "data").write_text("in the way")
    failed = await stubs.archiver.Archive(
        archiver_pb2.ArchiveRequest(dataset_id=DS, min_age_seconds=0)
    )
    assert failed.total_rows == 20 and failed.failed_tables == 0
    assert failed.lake_tables_published == 0 and failed.lake_error.startswith(f"{DS}/{TABLE}: ")
    # The old snapshot stands: it names stored files and holds what was published before.
    (settings_objects / "lake" / DS / TABLE / "data").unlink()
    (settings_objects / "data-aside").rename(settings_objects / "lake" / DS / TABLE / "data")
    await assert_snapshot_files_stored(rt.settings, rt.store, DS, TABLE)
    assert lake_table(rt.settings, DS, TABLE).scan().to_arrow().num_rows == 30
    answer = await stubs.archiver.Archive(
        archiver_pb2.ArchiveRequest(dataset_id=DS, min_age_seconds=0)
    )
    assert answer.lake_tables_published == 1 and not answer.lake_error
    assert await _agree(stubs) == 50
    after = await scrape(stubs)
    for name, delta in (
        ("fusou_lake_failed_publications_total", 1),
        ("fusou_lake_published_tables_total", 1),
    ):
        assert value(after, name) - value(before, name) == delta, name


async def test_compaction_fails_its_dataset_when_publication_fails(stubs: Stubs) -> None:
    rt = stubs.services.runtime
    await ingest(stubs.ingest, Oracle(), DS, TABLE, [battle(i) for i in range(30)])
    await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
    # An upload whose own publication fails: stored, answered, logged, not yet in the lake.
    data = parquet_bytes([battle(i) for i in range(30, 40)])
    uploaded = await RawUploader(
        rt.settings, rt.pool, LakeWritesFail(rt.store), rt.registry, clock=stubs.services.clock
    ).upload(Manifest(DS, [Fragment(TABLE, 0, len(data))], len(data)), _once(data))
    assert uploaded.fragments[0].rows == 10
    assert lake_table(rt.settings, DS, TABLE).scan().to_arrow().num_rows == 30
    failing = Compactor(
        rt.settings, rt.pool, LakeWritesFail(rt.store), rt.registry, clock=stubs.services.clock
    )
    (outcome,) = await failing.compact(CompactOptions(dataset_id=DS))
    assert outcome.status is Status.FAILED and "publishing to the lake" in outcome.error
    assert set(await active_kinds(stubs.url)) == {"optimized"}  # the compaction committed
    await assert_snapshot_files_stored(rt.settings, rt.store, DS, TABLE)
    answer = await stubs.compactor.Compact(compactor_pb2.CompactRequest(dataset_id=DS))
    assert not answer.datasets[0].error
    assert await _agree(stubs) == 40


async def test_turned_off_nothing_is_published_until_it_is_turned_on(
    stubs: Stubs, settings: Settings
) -> None:
    rt = stubs.services.runtime
    off = rt.settings.replace(lake_publish=False, archive_min_age_s=0.0)
    await ingest(stubs.ingest, Oracle(), DS, TABLE, [battle(i) for i in range(30)])
    stubs.services.clock.advance(60)
    report = await Archiver(
        off, rt.pool, rt.store, rt.registry, clock=stubs.services.clock
    ).archive(ArchiveOptions(dataset_id=DS))
    assert report.tables[0].rows == 30 and report.lake.tables == []
    assert not catalog(rt.settings).table_exists((DS, TABLE))
    answer = await stubs.archiver.Archive(
        archiver_pb2.ArchiveRequest(dataset_id=DS, min_age_seconds=0)
    )
    assert answer.total_rows == 0 and answer.lake_tables_published == 1
    assert await _agree(stubs) == 30


async def test_a_file_another_writer_added_is_dropped_at_the_next_commit(
    stubs: Stubs, tmp_path: Path
) -> None:
    rt = stubs.services.runtime
    await ingest(stubs.ingest, Oracle(), DS, TABLE, [battle(i) for i in range(30)])
    await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
    table = lake_table(rt.settings, DS, TABLE)
    # Five published rows again, in a file of another writer's, added to the table.
    foreign = tmp_path / "foreign.parquet"
    rows = table.scan().to_arrow().slice(0, 5)
    pq.write_table(rows.cast(schema_to_pyarrow(table.schema(), include_field_ids=True)), foreign)
    table.add_files([f"file://{foreign}"])
    assert lake_table(rt.settings, DS, TABLE).scan().to_arrow().num_rows == 35
    # The next run, with nothing new to archive, sees the catalog moved under it.
    answer = await stubs.archiver.Archive(
        archiver_pb2.ArchiveRequest(dataset_id=DS, min_age_seconds=0)
    )
    assert answer.total_rows == 0 and answer.lake_tables_published == 1
    assert await _agree(stubs) == 30


async def test_a_table_dropped_by_hand_is_published_again(stubs: Stubs) -> None:
    rt = stubs.services.runtime
    await ingest(stubs.ingest, Oracle(), DS, TABLE, [battle(i) for i in range(30)])
    await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
    catalog(rt.settings).drop_table((DS, TABLE))
    answer = await stubs.archiver.Archive(
        archiver_pb2.ArchiveRequest(dataset_id=DS, min_age_seconds=0)
    )
    assert answer.total_rows == 0 and answer.lake_tables_published == 1
    assert await _agree(stubs) == 30
