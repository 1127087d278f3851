"""Guarantee 3 across compaction: the same reads return the oracle's rows before, between and
after compaction runs, for data that came through Ingest (then Archive), through UploadRaw, or
both, with duplicates across inputs and schema versions that add fields and widen types, under
guardrails small enough to split the work over many runs."""

from __future__ import annotations

from typing import Any

import pytest

from fusou.api.compactor.v1 import compactor_pb2
from fusou.api.ingest.v1 import ingest_pb2
from tests.archive.oracle import fetch
from tests.compact.oracle import (
    COMPACTED,
    NOTHING_TO_DO,
    PARTIAL,
    active_kinds,
)
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import Oracle, archive, ingest
from tests.read.test_equivalence import (
    READS,
    Read,
    battle,
    battle_v2,
    block_edge_reads,
    minute,
    read_all,
)
from tests.upload.helpers import upload

pytestmark = pytest.mark.integration

DS = "u1"
# At most three input files per run, small row groups: many runs, each read cutting through
# row groups of several compacted files.
GUARDED = {**SMALL_BLOCKS, "compact_max_fragments": 3, "compact_row_group_rows": 16}


@pytest.fixture
async def stubs(settings: Any) -> Any:
    async with open_stubs(settings, **GUARDED) as s:
        yield s


async def _compact_checking_reads(
    stubs: Stubs, oracle: Oracle, table: str, reads: list[Read]
) -> list[compactor_pb2.DatasetCompactResult]:
    """Compact run by run, checking every read after each run."""
    results = []
    for _ in range(40):
        answer = await stubs.compactor.Compact(
            compactor_pb2.CompactRequest(dataset_id=DS, table=table)
        )
        (result,) = answer.datasets
        results.append(result)
        await read_all(stubs, oracle, DS, table, reads, compacted=True)
        if result.status != PARTIAL:
            return results
    raise AssertionError("compaction never finished")


async def test_reads_are_the_same_before_between_and_after_compaction_runs(
    stubs: Stubs,
) -> None:
    table = "battle"
    oracle = Oracle()
    oracles = {table: oracle}
    # Version 1 through Ingest, archived into many small cold files.
    for n in range(4):
        await ingest(
            stubs.ingest, oracle, DS, table, [battle(i) for i in range(30 * n, 30 * n + 30)]
        )
    await archive(stubs.archiver, stubs.services.clock, DS, table)
    # Raw fragments: new rows, and whole-record duplicates of archived rows (newer seqs).
    await upload(
        stubs.ingest,
        stubs.url,
        DS,
        [
            (table, [battle(i) for i in range(100, 140)]),
            (table, [battle(i) for i in range(20, 30)]),
        ],
        oracles,
    )
    # Version 2 through UploadRaw: api_no becomes fractional (long widens to double), hp
    # (null so far) a double, and a string field appears.
    later = [{k: v for k, v in battle_v2(i).items() if k != "fleet"} for i in range(140, 170)]
    await upload(stubs.ingest, stubs.url, DS, [(table, later)], oracles)
    # Through Ingest again: duplicates of uploaded rows and a nested field (version 3), some
    # archived after the uploads, some left hot.
    await ingest(stubs.ingest, oracle, DS, table, [battle(i) for i in range(130, 135)])
    await ingest(stubs.ingest, oracle, DS, table, [battle_v2(i) for i in range(170, 190)])
    await archive(stubs.archiver, stubs.services.clock, DS, table, max_rows=20)
    await ingest(stubs.ingest, oracle, DS, table, [battle_v2(i) for i in range(185, 200)])
    declared = await stubs.ingest.DeclareTable(
        ingest_pb2.DeclareTableRequest(dataset_id=DS, table=table)
    )
    assert declared.schema_version >= 3
    assert oracle.duplicates(0, 2**62) >= 20

    reads = [*READS, *await block_edge_reads(stubs, DS, table)]
    await read_all(stubs, oracle, DS, table, reads)

    results = await _compact_checking_reads(stubs, oracle, table, reads)
    statuses = [r.status for r in results]
    assert statuses[-1] == COMPACTED and statuses.count(PARTIAL) >= 3
    assert all(r.tables[0].input_files <= 3 for r in results)
    removed = sum(r.tables[0].duplicates_removed for r in results)
    assert removed >= 20  # whole-record duplicates share their time: compaction drops them
    kinds = await active_kinds(stubs.url)
    assert set(kinds) == {"optimized"} and kinds["optimized"] == 1
    # Compacted files have several row groups, each a block of the index.
    blocks = await fetch(
        stubs.url,
        "SELECT count(*) AS n FROM fusou_blocks JOIN fusou_files f USING (file_id) "
        "WHERE f.state = 'active'",
    )
    assert blocks[0]["n"] >= 8
    again = await stubs.compactor.Compact(compactor_pb2.CompactRequest(dataset_id=DS))
    assert again.datasets[0].status == NOTHING_TO_DO
    # Reads over row-group edges of the compacted file.
    await read_all(
        stubs, oracle, DS, table, await block_edge_reads(stubs, DS, table), compacted=True
    )


async def test_declared_keys_without_the_time_keep_every_row_a_range_may_return(
    stubs: Stubs,
) -> None:
    """With key fields that leave out the time, duplicates at other times must survive
    compaction: a range holding only the older copy returns it, before and after."""
    table = "fleet"
    await stubs.ingest.DeclareTable(
        ingest_pb2.DeclareTableRequest(dataset_id=DS, table=table, key_fields=["ship_id"])
    )
    oracle = Oracle(key_fields=("ship_id",))

    def rows(lo: int, hi: int, version: int, shift: float = 0) -> list[dict[str, Any]]:
        return [
            {"timestamp": minute(i + shift), "ship_id": i % 7, "v": version} for i in range(lo, hi)
        ]

    await ingest(stubs.ingest, oracle, DS, table, rows(0, 40, 1))
    await archive(stubs.archiver, stubs.services.clock, DS, table)
    # The same ships later in time, and some at exactly the same time (those copies lose).
    await upload(stubs.ingest, stubs.url, DS, [(table, rows(0, 40, 2, shift=0.5))], {table: oracle})
    await ingest(stubs.ingest, oracle, DS, table, rows(10, 20, 3))
    await archive(stubs.archiver, stubs.services.clock, DS, table)
    reads = [
        Read("whole", minute(-1), minute(100)),
        Read("older copies only", minute(0), minute(0.25)),
        Read("a few minutes", minute(3), minute(9.5)),
        Read("between copies", minute(12.25), minute(17.75)),
        *[Read(f"minute {m}", minute(m), minute(m + 1)) for m in range(0, 40, 3)],
    ]
    await read_all(stubs, oracle, DS, table, reads)
    results = await _compact_checking_reads(stubs, oracle, table, reads)
    assert results[-1].status == COMPACTED
    # Only the version-1 copies of minutes 10..19 share a time with a newer copy.
    assert sum(r.tables[0].duplicates_removed for r in results) == 10
