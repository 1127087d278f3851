"""Publication racing the rest of the system: a schema that moves while a run reads, runs of
one table waiting for each other on a small connection pool, a day inside a file's time range
that holds no row."""

from __future__ import annotations

import asyncio
from typing import Any

import pyarrow as pa
import pytest

from fusou.archive.archiver import ArchiveOptions, Archiver
from fusou.catalog.tables import TableInfo
from fusou.config import Settings
from fusou.lake.catalog import open_catalog
from fusou.lake.publisher import LakePublisher
from tests.archive.oracle import fetch
from tests.lake.helpers import lake_agrees
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import DAY, Oracle, archive, ingest
from tests.read.test_equivalence import battle
from tests.upload.helpers import upload

pytestmark = pytest.mark.integration

DS, TABLE = "u1", "battle"


async def _agree(stubs: Stubs) -> int:
    return await lake_agrees(stubs, DS, TABLE)


def _quiet_archiver(stubs: Stubs) -> Archiver:
    rt = stubs.services.runtime
    return Archiver(
        rt.settings.replace(lake_publish=False, archive_min_age_s=0.0),
        rt.pool,
        rt.store,
        rt.registry,
        clock=stubs.services.clock,
    )


async def test_a_schema_that_moves_while_a_run_reads_is_not_dropped(stubs: Stubs) -> None:
    rt = stubs.services.runtime
    await ingest(stubs.ingest, Oracle(), DS, TABLE, [battle(i) for i in range(20)])
    await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
    await ingest(stubs.ingest, Oracle(), DS, TABLE, [battle(i) for i in range(20, 30)])
    stubs.services.clock.advance(60)
    await _quiet_archiver(stubs).archive(ArchiveOptions(dataset_id=DS))

    class Racing(LakePublisher):
        """Before its first read, rows with a new field land in the same day's cold files."""

        raced = False

        async def _read(self, info: TableInfo, first_day: int, end_day: int) -> pa.Table:
            if not self.raced:
                self.raced = True
                newer = [{**battle(i), "note": f"n{i}"} for i in range(30, 35)]
                await ingest(stubs.ingest, Oracle(), DS, TABLE, newer)
                stubs.services.clock.advance(60)
                await _quiet_archiver(stubs).archive(ArchiveOptions(dataset_id=DS))
            return await super()._read(info, first_day, end_day)

    racing = Racing(rt.settings, rt.pool, rt.store, rt.registry, clock=stubs.services.clock)
    report = await racing.publish(DS)
    assert racing.raced and not report.error, report
    assert await _agree(stubs) == 35
    notes = await fetch(
        stubs.url, "SELECT count(*) AS n FROM fusou_lake_files WHERE state = 'written'"
    )
    assert notes[0]["n"] == 0


async def test_runs_of_one_table_wait_without_holding_the_pool(settings: Settings) -> None:
    # Three connections: a waiter holding one each would leave none for the holder.
    small = {**SMALL_BLOCKS, "db_pool_size": 3, "db_acquire_timeout_s": 5.0}
    async with open_stubs(settings, **small) as stubs:
        rt = stubs.services.runtime
        await ingest(stubs.ingest, Oracle(), DS, TABLE, [battle(i) for i in range(40)])
        stubs.services.clock.advance(60)
        await _quiet_archiver(stubs).archive(ArchiveOptions(dataset_id=DS))
        runs = [
            LakePublisher(rt.settings, rt.pool, rt.store, rt.registry, clock=stubs.services.clock)
            for _ in range(5)
        ]
        reports = await asyncio.gather(*(r.publish(DS, TABLE) for r in runs))
        assert [r.error for r in reports] == [""] * 5
        assert sum(r.published for r in reports) == 1  # the first; the others find it done
        assert await _agree(stubs) == 40


async def test_a_day_without_rows_inside_a_file_is_not_read_again(
    stubs: Stubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = stubs.services.runtime
    # One fragment holding days 0 and 2: day 1 is inside its time range, with no row.
    rows = [battle(i) for i in range(10)] + [
        battle(i, timestamp=battle(i)["timestamp"] + 2 * DAY) for i in range(10, 20)
    ]
    await upload(stubs.ingest, stubs.url, DS, [(TABLE, rows)], {TABLE: Oracle()})
    assert await _agree(stubs) == 20
    empty = await fetch(
        stubs.url,
        "SELECT row_count, object_key FROM fusou_lake_files WHERE state = 'published' ORDER BY day",
    )
    assert [(r["row_count"] > 0, r["object_key"] is not None) for r in empty] == [
        (True, True),
        (False, False),
        (True, True),
    ]
    opened: list[Any] = []
    real = open_catalog

    def counting(settings: Settings) -> Any:
        opened.append(settings)
        return real(settings)

    monkeypatch.setattr("fusou.lake.publisher.open_catalog", counting)
    publisher = LakePublisher(
        rt.settings, rt.pool, rt.store, rt.registry, clock=stubs.services.clock
    )
    report = await publisher.publish(DS)
    assert not report.error and report.published == 0
    assert opened == [], "a run with nothing new went to the Iceberg catalog"
