"""The open lake's equivalence: after every step that changes which files are live (archive,
upload, compaction), a pyiceberg scan of the published table, and DuckDB over that scan's
Arrow, hold exactly the rows ReadRange answers for the archived part, with and without key
fields, across schema versions that add fields and widen types."""

from __future__ import annotations

from typing import Any

import pytest

from fusou.api.compactor.v1 import compactor_pb2
from fusou.api.ingest.v1 import ingest_pb2
from fusou.config import Settings
from tests.compact.oracle import PARTIAL
from tests.lake.helpers import (
    assert_lake_is_readrange,
    assert_snapshot_agrees,
    lake_agrees,
    lake_table,
)
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import DAY, Oracle, archive, ingest
from tests.read.test_equivalence import battle, battle_v2, minute
from tests.upload.helpers import upload

pytestmark = pytest.mark.integration

DS = "u1"


async def _compact(stubs: Stubs, table: str) -> None:
    for _ in range(20):
        answer = await stubs.compactor.Compact(
            compactor_pb2.CompactRequest(dataset_id=DS, table=table)
        )
        (result,) = answer.datasets
        assert not result.error, result
        if result.status != PARTIAL:
            return
    raise AssertionError("compaction never finished")


async def _agrees(stubs: Stubs, settings: Settings, table: str) -> int:
    return await lake_agrees(stubs, DS, table)


async def test_without_key_fields_through_archive_upload_evolution_and_compaction(
    stubs: Stubs, settings: Settings
) -> None:
    table = "battle"
    oracle = Oracle()
    oracles = {table: oracle}
    for n in range(3):
        await ingest(
            stubs.ingest, oracle, DS, table, [battle(i) for i in range(30 * n, 30 * n + 30)]
        )
    await archive(stubs.archiver, stubs.services.clock, DS, table)
    assert await _agrees(stubs, settings, table) == 90
    # Whole-record duplicates of archived rows (newer seqs) and new rows, through UploadRaw.
    await upload(
        stubs.ingest,
        stubs.url,
        DS,
        [(table, [battle(i) for i in range(80, 120)]), (table, [battle(i) for i in range(10, 20)])],
        oracles,
    )
    assert await _agrees(stubs, settings, table) == 120
    # Version 2: long widens to double, the null-only field takes a type, fields appear.
    await ingest(stubs.ingest, oracle, DS, table, [battle_v2(i) for i in range(120, 160)])
    await archive(stubs.archiver, stubs.services.clock, DS, table)
    assert await _agrees(stubs, settings, table) == 160
    names = {f.name for f in lake_table(settings, DS, table).schema().fields}
    assert {"fleet", "note", "hp", "api_no"} <= names
    await _compact(stubs, table)
    assert await _agrees(stubs, settings, table) == 160


async def test_key_fields_hide_superseded_versions_on_other_days(
    stubs: Stubs, settings: Settings
) -> None:
    table = "fleet"
    declared = await stubs.ingest.DeclareTable(
        ingest_pb2.DeclareTableRequest(dataset_id=DS, table=table, key_fields=["api_no"])
    )
    assert declared.created
    oracle = Oracle(key_fields=("api_no",))
    # Three days of rows, a key per row.
    rows = [battle(i, timestamp=minute(i) + (i % 3) * DAY) for i in range(60)]
    await ingest(stubs.ingest, oracle, DS, table, rows)
    await archive(stubs.archiver, stubs.services.clock, DS, table)
    assert await _agrees(stubs, settings, table) == 60
    # Newer versions of twenty keys, each moved to another day than its first version.
    updated = [
        battle(i, timestamp=minute(i) + ((i + 1) % 3) * DAY, ship="refit") for i in range(20)
    ]
    await ingest(stubs.ingest, oracle, DS, table, updated)
    await archive(stubs.archiver, stubs.services.clock, DS, table)
    assert await _agrees(stubs, settings, table) == 60
    scan = lake_table(settings, DS, table).scan(row_filter="ship == 'refit'").to_arrow()
    assert scan.num_rows == 20
    await _compact(stubs, table)
    assert await _agrees(stubs, settings, table) == 60


async def test_a_run_with_nothing_new_commits_nothing(stubs: Stubs, settings: Settings) -> None:
    table = "quiet"
    oracle = Oracle()
    await ingest(stubs.ingest, oracle, DS, table, [battle(i) for i in range(30)])
    await archive(stubs.archiver, stubs.services.clock, DS, table)
    before = lake_table(settings, DS, table).current_snapshot()
    assert before is not None
    answer: Any = await stubs.compactor.Compact(
        compactor_pb2.CompactRequest(dataset_id=DS, table=table)
    )
    assert not answer.datasets[0].error
    # Compaction replaced the cold files: same rows, so the same snapshot.
    after = lake_table(settings, DS, table).current_snapshot()
    assert after is not None and after.snapshot_id == before.snapshot_id
    assert await _agrees(stubs, settings, table) == 30


async def test_a_day_larger_than_a_file_is_written_in_slices(settings: Settings) -> None:
    # 20-row blocks, at most about 1000 rows a file: a day of 3000 rows is several files.
    async with open_stubs(settings, **SMALL_BLOCKS, lake_file_rows=1000) as stubs:
        table = "big"
        oracle = Oracle()
        rows = [battle(i, timestamp=minute(0) + i * 20_000) for i in range(3000)]
        for k in range(0, 3000, 500):
            await ingest(stubs.ingest, oracle, DS, table, rows[k : k + 500])
        await archive(stubs.archiver, stubs.services.clock, DS, table)
        rt = stubs.services.runtime
        files = list(lake_table(rt.settings, DS, table).scan().plan_files())
        assert len(files) >= 3 and max(f.file.record_count for f in files) <= 1100
        assert len({f.file.partition[0] for f in files}) == 1
        await assert_snapshot_agrees(rt.settings, rt.store, stubs.url, DS, table)
        assert await assert_lake_is_readrange(stubs, rt.settings, DS, table) == 3000
        # Whole-record duplicates (newer seqs) of rows all over the day, with equal times.
        await ingest(stubs.ingest, oracle, DS, table, rows[::7])
        await archive(stubs.archiver, stubs.services.clock, DS, table)
        await assert_snapshot_agrees(rt.settings, rt.store, stubs.url, DS, table)
        assert await assert_lake_is_readrange(stubs, rt.settings, DS, table) == 3000
        await _compact(stubs, table)
        await assert_snapshot_agrees(rt.settings, rt.store, stubs.url, DS, table)
        assert await assert_lake_is_readrange(stubs, rt.settings, DS, table) == 3000
