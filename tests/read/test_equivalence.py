"""The same reads return the oracle's rows in every storage state (guarantee 3).

Every state is reached through the services (Ingest, Archive) and every answer is compared
with the oracle computed from what Ingest answered, value by value and type by type (Arrow),
plus once per state in the JSON form. Stats are checked against the buffer and the block index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pytest

from fusou.api.ingest.v1 import ingest_pb2
from fusou.archive.archiver import ArchiveOptions, Archiver
from fusou.records.dedup import dedup_keys
from fusou.schema.model import FieldType
from tests.archive.oracle import Hold, parked
from tests.read.conftest import Stubs
from tests.read.oracle import (
    DAY,
    DAY0,
    HOUR,
    MINUTE,
    Oracle,
    archive,
    check_arrow,
    check_json,
    check_stats,
    hot_count,
    ingest,
    overlapping_blocks,
    read,
    read_request,
)

pytestmark = pytest.mark.integration

DS = "u1"


@dataclass(frozen=True)
class Read:
    name: str
    start: int
    end: int
    columns: tuple[str, ...] = ()
    limit: int = 0


def minute(m: float) -> int:
    return DAY0 + int(m * MINUTE)


# The same reads in every state. With 20-row blocks of one row a minute, blocks cover about
# 20 minutes each: these ranges start and end inside blocks, on block edges, before the data,
# around one row, around rows that share a time, and over everything.
READS = (
    Read("whole", DAY0 - HOUR, DAY0 + DAY),
    Read("before the data", DAY0 - 2 * HOUR, DAY0 - HOUR),
    Read("after the data", minute(400), minute(500)),
    Read("one row", minute(33), minute(33) + 1),
    Read("rows sharing a time", minute(8), minute(9)),
    Read("mid-block to mid-block", minute(7), minute(53.5)),
    Read("on a block edge", minute(20), minute(40)),
    Read("second half", minute(90) + 1, minute(151)),
    Read("projected and limited", minute(7), minute(153.5), ("ship", "api_no"), 17),
    Read("time field asked for", minute(3), minute(130), ("hp", "timestamp", "hp")),
    Read("limit past the end", minute(95), minute(105), (), 1000),
)


def battle(i: int, **changes: Any) -> dict[str, Any]:
    """Version-1 records: one a minute from DAY0, except that every tenth row shares the
    previous row's time (so the seq decides their order). ``hp`` is always null here."""
    t = i - 1 if i % 10 == 9 else i
    return {
        "timestamp": minute(t),
        "api_no": i,
        "ship": f"ship-{i % 13}",
        "won": i % 3 == 0,
        "hp": None,
        **changes,
    }


def battle_v2(i: int) -> dict[str, Any]:
    """Newer records: ``api_no`` is fractional in odd rows (long widens to double), ``hp``
    (null so far) becomes a double, and a nested object and a string appear."""
    return {
        "timestamp": minute(i),
        "api_no": i + 0.5 if i % 2 else i,
        "ship": f"ship-{i % 13}",
        "won": i % 3 == 0,
        "hp": 40 + (i % 7) / 4,
        "fleet": {"name": f"f{i % 3}", "ships": [i, i + 1], "flag": i % 2 == 0},
        "note": f"n{i}",
    }


async def read_all(
    stubs: Stubs,
    oracle: Oracle,
    dataset: str,
    table: str,
    reads: Sequence[Read],
    *,
    compacted: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Run every read (Arrow), check it against the oracle and the stats; one JSON read."""
    answers: dict[str, list[dict[str, Any]]] = {}
    for r in reads:
        request = read_request(dataset, table, r.start, r.end, columns=r.columns, limit=r.limit)
        answer = await read(stubs.reader, request)
        answers[r.name] = check_arrow(answer, oracle, r.start, r.end, r.columns, r.limit)
        await check_stats(
            answer,
            oracle,
            stubs.url,
            dataset,
            table,
            r.start,
            r.end,
            r.limit,
            compacted=compacted,
        )
    whole = reads[0]
    request = read_request(dataset, table, whole.start, whole.end, json_rows=True)
    check_json(await read(stubs.reader, request), oracle, whole.start, whole.end)
    return answers


async def block_edge_reads(stubs: Stubs, dataset: str, table: str) -> list[Read]:
    """Ranges that start on a block's first or last row or end just before a block's first
    row or just after its last one, for every block of the block index."""
    reads = []
    for n, b in enumerate(await overlapping_blocks(stubs.url, dataset, table, 0, 2**62)):
        reads += [
            Read(f"block {n} first row", b.min_time, b.min_time + 1),
            Read(f"block {n} last row", b.max_time, b.max_time + 1),
            Read(f"up to block {n}", b.min_time - 5 * MINUTE, b.min_time),
            Read(f"from block {n} on", b.max_time + 1, b.max_time + 5 * MINUTE),
        ]
    assert reads, "nothing is archived"
    return reads


async def test_same_reads_in_every_storage_state(stubs: Stubs) -> None:
    table = "battle"
    oracle = Oracle()

    async def send(
        rows: Sequence[dict[str, Any]], request_id: str = ""
    ) -> ingest_pb2.IngestResponse:
        return await ingest(stubs.ingest, oracle, DS, table, rows, request_id=request_id)

    # Version 1, in requests of 25 rows with request ids.
    for n in range(4):
        await send([battle(i) for i in range(25 * n, 25 * n + 25)], request_id=f"v1-{n}")
    # A retried request is replayed and adds nothing.
    retried = await send([battle(i) for i in range(25)], request_id="v1-0")
    assert retried.replayed and retried.rows_written == 25
    # Re-ingested duplicates while hot, one of them with a time shared with another row,
    # so that the winner's higher seq moves it after that row.
    await send([battle(i) for i in range(10, 20)])
    await send([battle(8)])
    assert len(oracle.rows) == 111

    # 1. Everything hot.
    hot = await read_all(stubs, oracle, DS, table, READS)
    assert hot["whole"] and len(hot["whole"]) == 100
    assert len(hot["one row"]) == 1
    assert [r["api_no"] for r in hot["rows sharing a time"]] == [9, 8]
    assert hot["before the data"] == [] and hot["after the data"] == []
    stats = (await read(stubs.reader, read_request(DS, table, DAY0, DAY0 + DAY))).stats
    assert (stats.hot_rows, stats.cold_rows, stats.duplicates_removed) == (111, 0, 11)

    # 2. Everything cold.
    archived = await archive(stubs.archiver, stubs.services.clock, DS, table)
    assert archived.rows == 111 and archived.files > 1 and archived.blocks > archived.files
    assert await hot_count(stubs.url, DS, table, DAY0 - DAY, DAY0 + DAY) == 0
    cold = await read_all(stubs, oracle, DS, table, READS)
    assert cold == hot
    edges = await block_edge_reads(stubs, DS, table)
    await read_all(stubs, oracle, DS, table, [READS[0], *edges])
    # The mid-block reads really cut through blocks: some fetched rows are outside the range.
    r = READS[5]
    blocks = await overlapping_blocks(stubs.url, DS, table, r.start, r.end)
    assert blocks[0].min_time < r.start and blocks[-1].max_time >= r.end

    # Retrying a request after its rows were archived still replays it.
    await send([battle(i) for i in range(25, 50)], request_id="v1-1")

    # 3. Half archived: newer rows of a newer schema version (a long widened to double, a
    # null-only field now a double, new fields) while the old rows are cold, plus duplicates
    # of cold rows: exact copies, one with explicit nulls for fields it lacked, and one whose
    # long is now stored as a whole double.
    for n in range(4):
        await send([battle_v2(i) for i in range(100 + 25 * n, 125 + 25 * n)], request_id=f"v2-{n}")
    await send([battle(i) for i in range(5)])
    await send([battle(5, note=None, fleet=None), battle(6, api_no=6.0), battle(49)])
    await send([battle_v2(i) for i in range(120, 130)])  # hot duplicates of hot rows
    # Not duplicates: records that differ from another in one field only.
    await send(
        [
            battle_v2(110) | {"hp": 99.5},
            battle_v2(111) | {"fleet": {**battle_v2(111)["fleet"], "flag": True}},
            battle(20, won=True),
            battle(21, ship=None),
        ]
    )
    assert oracle.types["api_no"] == "double" and oracle.types["hp"] == "double"
    half = await read_all(stubs, oracle, DS, table, READS)
    assert half["rows sharing a time"] == [
        {**row, "api_no": float(row["api_no"])} | {"fleet": None, "note": None}
        for row in hot["rows sharing a time"]
    ]
    assert len(half["whole"]) == 100 + 100 + 4
    stats = (await read(stubs.reader, read_request(DS, table, DAY0, DAY0 + DAY))).stats
    assert stats.hot_rows == 122 and stats.cold_rows == 111
    assert stats.duplicates_removed == oracle.duplicates(DAY0, DAY0 + DAY) == 11 + 8 + 10

    # 4. Part of the hot rows archived as well: the newer version is split between hot and cold.
    partial = await archive(stubs.archiver, stubs.services.clock, DS, table, max_rows=50)
    assert partial.more_remaining
    assert 0 < await hot_count(stubs.url, DS, table, DAY0 - DAY, DAY0 + DAY) < 118
    assert await read_all(stubs, oracle, DS, table, READS) == half

    # 5. Everything cold again, and once more a duplicate of a cold row of each version.
    await archive(stubs.archiver, stubs.services.clock, DS, table)
    assert await read_all(stubs, oracle, DS, table, READS) == half
    edges = await block_edge_reads(stubs, DS, table)
    assert len(edges) > 4 * 6
    await read_all(stubs, oracle, DS, table, [READS[0], *edges])
    await send([battle_v2(140), battle(30)])
    assert await read_all(stubs, oracle, DS, table, READS) == half


def ship(i: int, version: int) -> dict[str, Any]:
    """A record of the ``ships`` table, keyed by ``ship_id``; ``at`` is its time field."""
    return {"at": minute(i + 100 * version), "ship_id": i, "lvl": 10 * version + i, "v": version}


async def test_declared_key_fields_newest_version_wins_across_hot_and_cold(stubs: Stubs) -> None:
    table = "ships"
    declared = await stubs.ingest.DeclareTable(
        ingest_pb2.DeclareTableRequest(
            dataset_id=DS, table=table, time_field="at", key_fields=["ship_id"]
        )
    )
    assert declared.created
    oracle = Oracle(time_field="at", key_fields=("ship_id",))
    reads = (
        Read("whole", DAY0 - HOUR, DAY0 + DAY),
        Read("first versions only", minute(0), minute(50)),
        Read("cut", minute(17), minute(123.5)),
        Read("second versions", minute(100), minute(200)),
        Read("one key", minute(105), minute(106)),
        Read("projected", minute(0), minute(400), ("v",), 12),
    )

    async def send(rows: Sequence[dict[str, Any]]) -> None:
        await ingest(stubs.ingest, oracle, DS, table, rows)

    await send([ship(i, 0) for i in range(50)])
    first = await read_all(stubs, oracle, DS, table, reads)
    assert [r["v"] for r in first["whole"]] == [0] * 50
    await archive(stubs.archiver, stubs.services.clock, DS, table)
    assert await read_all(stubs, oracle, DS, table, reads) == first

    # Newer versions of keys 0..29 arrive (hot) while the old ones are cold; key 7 twice, the
    # second time at the same time as its first version; a fractional level widens lvl.
    await send([ship(i, 1) for i in range(30)])
    await send([{**ship(7, 0), "lvl": 7.5, "v": 2}])
    newer = await read_all(stubs, oracle, DS, table, reads)
    whole = {r["ship_id"]: r for r in newer["whole"]}
    assert len(whole) == 50
    assert whole[7]["v"] == 2 and whole[7]["lvl"] == 7.5
    assert all(whole[i]["v"] == 1 for i in range(30) if i != 7)
    assert all(whole[i]["v"] == 0 for i in range(30, 50))
    # Dedup applies among the rows of the range: the old versions are what this range holds.
    assert [r["v"] for r in newer["first versions only"]] == [0] * 7 + [2] + [0] * 42

    await archive(stubs.archiver, stubs.services.clock, DS, table, max_rows=12)
    assert await read_all(stubs, oracle, DS, table, reads) == newer
    await archive(stubs.archiver, stubs.services.clock, DS, table)
    assert await read_all(stubs, oracle, DS, table, reads) == newer
    # A third version of key 3 while everything else is cold.
    await send([ship(3, 3)])
    latest = await read_all(stubs, oracle, DS, table, reads)
    assert {r["ship_id"]: r["v"] for r in latest["whole"]}[3] == 3


async def test_declared_key_field_missing_from_every_row(stubs: Stubs) -> None:
    table = "keyless"
    await stubs.ingest.DeclareTable(
        ingest_pb2.DeclareTableRequest(dataset_id=DS, table=table, key_fields=["ship_id"])
    )
    oracle = Oracle(key_fields=("ship_id",))
    rows = [{"timestamp": minute(i), "lvl": i} for i in range(5)]
    await ingest(stubs.ingest, oracle, DS, table, rows)
    # The one dedup rule: an absent key field is null in every row, so all share one key.
    batch = pa.Table.from_pylist(rows)
    keys = dedup_keys(batch, {"timestamp": FieldType.LONG, "lvl": FieldType.LONG}, ["ship_id"])
    assert len({bytes(k) for k in keys}) == 1
    start, end = DAY0, DAY0 + DAY
    answer = await read(stubs.reader, read_request(DS, table, start, end))
    check_arrow(answer, oracle, start, end)


@pytest.mark.parametrize("point", ["upload", "uploaded", "commit"])
async def test_reads_during_an_archive_see_every_row_once(stubs: Stubs, point: str) -> None:
    """Hot rows and the cold plan come from one snapshot: a read while an archive run is
    parked between deleting rows, uploading and registering its file sees each row once."""
    table = "battle"
    oracle = Oracle()
    await ingest(stubs.ingest, oracle, DS, table, [battle(i) for i in range(60)])
    await archive(stubs.archiver, stubs.services.clock, DS, table, max_rows=20)
    await ingest(stubs.ingest, oracle, DS, table, [battle(i) for i in range(60, 100)])
    await ingest(stubs.ingest, oracle, DS, table, [battle(i) for i in range(0, 100, 7)])
    stubs.services.clock.advance(60)
    before = await read_all(stubs, oracle, DS, table, READS)

    rt = stubs.services.runtime
    hold = Hold(point)
    run = Archiver(
        rt.settings, rt.pool, rt.store, rt.registry, checkpoint=hold, clock=rt.clock
    ).archive(ArchiveOptions(dataset_id=DS, table=table, min_age_s=0))
    async with parked(run, hold) as task:
        assert await read_all(stubs, oracle, DS, table, READS) == before
    report = await task
    assert report.tables[0].rows > 0
    assert await hot_count(stubs.url, DS, table, DAY0 - DAY, DAY0 + DAY) == 0
    assert await read_all(stubs, oracle, DS, table, READS) == before
