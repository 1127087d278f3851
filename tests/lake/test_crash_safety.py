"""The lake under injected crashes: at every step of an archive, upload or compaction run,
publication included, the snapshot names only stored files; the next run brings it and the
catalog back in agreement, the scan equal to ReadRange; files a crash left unpublished go
after the grace period, and no snapshot left names a deleted file."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fusou.archive.archiver import ArchiveOptions, Archiver
from fusou.compact.compactor import CompactOptions, Compactor
from fusou.config import Settings
from fusou.upload.uploader import Fragment, Manifest, RawUploader
from tests.archive.oracle import Crash, CrashAt, fetch
from tests.compact.oracle import compact_until_done
from tests.lake.helpers import (
    assert_snapshot_files_stored,
    lake_agrees,
    lake_table,
    metadata_files,
)
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import Oracle, archive, ingest
from tests.read.test_equivalence import battle
from tests.upload.helpers import parquet_bytes, upload

pytestmark = pytest.mark.integration

DS, TABLE = "u1", "battle"
ARCHIVE_POINTS = ["upload", "uploaded", "commit", "committed", "lake-written", "lake-committed"]
COMPACT_POINTS = ["read", "uploaded", "committed", "lake-written", "lake-committed"]
UPLOAD_POINTS = ["committed", "lake-written", "lake-committed"]


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _snapshot_files_are_stored(stubs: Stubs) -> None:
    rt = stubs.services.runtime
    await assert_snapshot_files_stored(rt.settings, rt.store, DS, TABLE)


async def _agree(stubs: Stubs) -> int:
    return await lake_agrees(stubs, DS, TABLE)


async def _published(stubs: Stubs, oracle: Oracle) -> None:
    """A published table to crash on top of: two days of rows, archived."""
    rows = [battle(i) for i in range(0, 40)] + [
        battle(i, timestamp=battle(i)["timestamp"] + 86_400_000) for i in range(40, 60)
    ]
    await ingest(stubs.ingest, oracle, DS, TABLE, rows)
    await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
    assert await _agree(stubs) == 60


async def _retired_files_go_after_the_grace(stubs: Stubs) -> None:
    """Past the grace, every retired file is deleted and the table's older snapshots expired:
    the scan still reads, and every snapshot left names only stored files."""
    rt = stubs.services.runtime
    stubs.services.clock.advance(rt.settings.store.delete_grace_s + 60)
    await archive_nothing(stubs)
    left = await fetch(
        stubs.url, "SELECT count(*) AS n FROM fusou_lake_files WHERE state = 'retired'"
    )
    assert left[0]["n"] == 0
    table = lake_table(rt.settings, DS, TABLE)
    assert len(table.snapshots()) == 1
    await _snapshot_files_are_stored(stubs)
    # The expired snapshots' manifests went with them; what is reached is all stored.
    stored, reached = await metadata_files(rt.settings, rt.store, DS, TABLE)
    assert reached <= stored and stored - reached == set()
    await _agree(stubs)


async def archive_nothing(stubs: Stubs) -> None:
    rt = stubs.services.runtime
    await Archiver(rt.settings, rt.pool, rt.store, rt.registry, clock=stubs.services.clock).archive(
        ArchiveOptions(dataset_id=DS)
    )


@pytest.mark.parametrize("point", ARCHIVE_POINTS)
async def test_archive_crashes(settings: Settings, point: str) -> None:
    async with open_stubs(settings, **SMALL_BLOCKS) as stubs:
        rt = stubs.services.runtime
        oracle = Oracle()
        await _published(stubs, oracle)
        # Duplicates of published rows (newer seqs) and new rows on a third day.
        more = [battle(i) for i in range(30, 40)] + [
            battle(i, timestamp=battle(i)["timestamp"] + 2 * 86_400_000) for i in range(60, 80)
        ]
        await ingest(stubs.ingest, oracle, DS, TABLE, more)
        stubs.services.clock.advance(60)
        crash = CrashAt(point)
        with pytest.raises(Crash):
            await Archiver(
                rt.settings.replace(archive_min_age_s=0.0),
                rt.pool,
                rt.store,
                rt.registry,
                clock=stubs.services.clock,
                checkpoint=crash,
            ).archive(ArchiveOptions(dataset_id=DS, table=TABLE))
        assert point in crash.seen
        await _snapshot_files_are_stored(stubs)
        # The next run (nothing left to archive when the crash came after the commit).
        stubs.services.clock.advance(60)
        await archive_nothing(stubs)
        assert await _agree(stubs) == 80
        await _retired_files_go_after_the_grace(stubs)


@pytest.mark.parametrize("point", COMPACT_POINTS)
async def test_compaction_crashes(settings: Settings, point: str) -> None:
    async with open_stubs(settings, **SMALL_BLOCKS) as stubs:
        rt = stubs.services.runtime
        oracle = Oracle()
        await _published(stubs, oracle)
        # A raw fragment of duplicates and new rows: compaction dedups it with the cold files.
        await upload(
            stubs.ingest,
            stubs.url,
            DS,
            [(TABLE, [battle(i) for i in range(20, 30)] + [battle(i) for i in range(100, 110)])],
            {TABLE: oracle},
        )
        assert await _agree(stubs) == 70
        crash = CrashAt(point)
        with pytest.raises(Crash):
            await Compactor(
                rt.settings,
                rt.pool,
                rt.store,
                rt.registry,
                clock=stubs.services.clock,
                checkpoint=crash,
            ).compact(CompactOptions(dataset_id=DS))
        assert point in crash.seen
        await _snapshot_files_are_stored(stubs)
        await compact_until_done(stubs.compactor, DS)
        assert await _agree(stubs) == 70
        await _retired_files_go_after_the_grace(stubs)


@pytest.mark.parametrize("point", UPLOAD_POINTS)
async def test_upload_crashes(settings: Settings, point: str) -> None:
    async with open_stubs(settings, **SMALL_BLOCKS) as stubs:
        rt = stubs.services.runtime
        oracle = Oracle()
        await _published(stubs, oracle)
        crash = CrashAt(point)
        uploader = RawUploader(
            rt.settings,
            rt.pool,
            rt.store,
            rt.registry,
            clock=stubs.services.clock,
            checkpoint=crash,
        )
        data = parquet_bytes([battle(i) for i in range(100, 120)])
        manifest = Manifest(DS, [Fragment(TABLE, 0, len(data))], len(data))
        with pytest.raises(Crash):
            await uploader.upload(manifest, _chunks(data))
        assert point in crash.seen
        await _snapshot_files_are_stored(stubs)
        await archive_nothing(stubs)
        assert await _agree(stubs) == 80
        await _retired_files_go_after_the_grace(stubs)
