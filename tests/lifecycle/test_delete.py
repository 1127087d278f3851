"""DeleteRows: reads stop returning the rows at once and equal an oracle that never had them,
through ingest, archive, upload and compaction; compaction makes the deletion physical and then
forgets it; bad requests change nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import struct_pb2

from fusou.api.archiver.v1 import archiver_pb2
from fusou.api.ingest.v1 import ingest_pb2
from fusou.api.reader.v1 import reader_pb2
from fusou.api.timestamps import timestamp_of_ms
from fusou.catalog.fence import refused_tables
from fusou.compact.compactor import CompactOptions, Compactor
from tests.archive.oracle import Crash, CrashAt, exactly_once
from tests.compact.oracle import compact_until_done, every_seq
from tests.lake.helpers import lake_agrees
from tests.lifecycle.conftest import SOME_READS
from tests.lifecycle.footprint import table_ids
from tests.read.conftest import Stubs
from tests.read.oracle import Oracle, archive, ingest
from tests.read.test_equivalence import battle, minute, read_all
from tests.upload.helpers import upload

pytestmark = pytest.mark.integration

DS = "d1"


def _value(v: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    if isinstance(v, str):
        value.string_value = v
    elif isinstance(v, bool):
        value.bool_value = v
    else:
        value.number_value = v
    return value


def condition(column: str, op: str, *values: Any) -> reader_pb2.Filter:
    ops = {"=": reader_pb2.FILTER_OP_EQ, "in": reader_pb2.FILTER_OP_IN}
    return reader_pb2.Filter(column=column, op=ops[op], values=[_value(v) for v in values])


def _meets(record: Mapping[str, Any], f: reader_pb2.Filter) -> bool:
    wanted = [struct_value(v) for v in f.values]
    return record.get(f.column) in wanted


def struct_value(v: struct_pb2.Value) -> Any:
    kind = v.WhichOneof("kind")
    assert kind is not None
    if kind == "number_value":
        n = v.number_value
        return int(n) if n.is_integer() else n
    return getattr(v, kind)


async def delete(
    stubs: Stubs,
    oracle: Oracle,
    table: str,
    start: int,
    end: int,
    filters: Sequence[reader_pb2.Filter] = (),
) -> archiver_pb2.DeleteRowsResponse:
    """DeleteRows, and the same deletion applied to the oracle: the rows stored so far in the
    range that meet the filters, every version of them."""
    answer: archiver_pb2.DeleteRowsResponse = await stubs.archiver.DeleteRows(
        archiver_pb2.DeleteRowsRequest(
            dataset_id=DS,
            table=table,
            start_time=timestamp_of_ms(start),
            end_time=timestamp_of_ms(end),
            filters=list(filters),
        )
    )
    time = oracle.time_field
    oracle.rows = [
        r
        for r in oracle.rows
        if not (
            r.seq <= answer.max_seq
            and start <= r.record[time] < end
            and all(_meets(r.record, f) for f in filters)
        )
    ]
    return answer


async def physically_gone(stubs: Stubs, oracle: Oracle) -> None:
    """No stored row (buffer or active file) is one the oracle deleted, and none twice.
    (Compaction may also have dropped superseded duplicates the oracle still holds.)"""
    stored = await every_seq(stubs.url, stubs.services.runtime.store)
    assert set(stored) <= {r.seq for r in oracle.rows}
    assert max(stored.values(), default=1) == 1


async def deletions(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM fusou_deletions"))
    finally:
        await conn.close()


async def test_deletions_interleaved_with_every_move_read_as_the_oracle(stubs: Stubs) -> None:
    clock = stubs.services.clock
    oracle = Oracle()
    await ingest(stubs.ingest, oracle, DS, "battle", [battle(i) for i in range(0, 80)])
    # Hot rows of a range go at once.
    first = await delete(stubs, oracle, "battle", minute(10), minute(20))
    assert first.hot_rows_deleted == 10
    await read_all(stubs, oracle, DS, "battle", SOME_READS)

    await archive(stubs.archiver, clock, DS, "battle")
    # Cold rows by a condition; and a deletion for a range nothing holds.
    await delete(
        stubs, oracle, "battle", minute(30), minute(60), [condition("ship", "=", "ship-3")]
    )
    await delete(stubs, oracle, "battle", minute(5000), minute(6000))
    await read_all(stubs, oracle, DS, "battle", SOME_READS)

    await upload(
        stubs.ingest,
        stubs.url,
        DS,
        [("battle", [battle(i) for i in range(80, 120)])],
        {"battle": oracle},
    )
    # Rows of the same times again (new versions): the deletion takes only those stored so far.
    await ingest(stubs.ingest, oracle, DS, "battle", [battle(i, won=True) for i in range(60, 70)])
    hot_and_raw = await delete(
        stubs, oracle, "battle", minute(62), minute(100), [condition("api_no", "in", 62, 85, 99)]
    )
    assert hot_and_raw.hot_rows_deleted == 0  # with conditions, hot rows go with compaction
    await ingest(stubs.ingest, oracle, DS, "battle", [battle(i) for i in range(62, 63)])
    await read_all(stubs, oracle, DS, "battle", SOME_READS)
    assert await deletions(stubs.url) == 4

    # Archive and compaction make the deletions physical, then forget them.
    await archive(stubs.archiver, clock, DS, "battle")
    await compact_until_done(stubs.compactor, DS)
    await read_all(stubs, oracle, DS, "battle", SOME_READS, compacted=True)
    assert await deletions(stubs.url) == 0
    await physically_gone(stubs, oracle)

    # A deletion reaching optimized files rewrites them.
    await delete(stubs, oracle, "battle", minute(0), minute(40))
    await read_all(stubs, oracle, DS, "battle", SOME_READS, compacted=True)
    await compact_until_done(stubs.compactor, DS)
    assert await deletions(stubs.url) == 0
    await physically_gone(stubs, oracle)
    await read_all(stubs, oracle, DS, "battle", SOME_READS, compacted=True)
    # The lake, published by compaction from the rewritten files, holds the same rows.
    assert await lake_agrees(stubs, DS, "battle") == len(oracle.winners(-(2**62), 2**62))


async def test_on_a_keyed_table_deletions_take_every_version_of_the_keys(stubs: Stubs) -> None:
    await stubs.ingest.DeclareTable(
        ingest_pb2.DeclareTableRequest(dataset_id=DS, table="ships", key_fields=["ship"])
    )
    oracle = Oracle(key_fields=("ship",))
    await ingest(stubs.ingest, oracle, DS, "ships", [battle(i) for i in range(40)])
    await archive(stubs.archiver, stubs.services.clock, DS, "ships")
    await ingest(stubs.ingest, oracle, DS, "ships", [battle(i) for i in range(40, 60)])
    await delete(stubs, oracle, "ships", minute(0), minute(100), [condition("ship", "=", "ship-4")])
    await read_all(stubs, oracle, DS, "ships", SOME_READS)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stubs.archiver.DeleteRows(
            archiver_pb2.DeleteRowsRequest(
                dataset_id=DS,
                table="ships",
                start_time=timestamp_of_ms(minute(0)),
                end_time=timestamp_of_ms(minute(100)),
                filters=[condition("won", "=", True)],
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "key field" in (refused.value.details() or "")
    await compact_until_done(stubs.compactor, DS)
    await read_all(stubs, oracle, DS, "ships", SOME_READS, compacted=True)


@pytest.mark.parametrize("point", ["read", "uploaded", "commit", "committed"])
async def test_a_compaction_killed_while_applying_a_deletion(stubs: Stubs, point: str) -> None:
    rt = stubs.services.runtime
    oracle = Oracle()
    await ingest(stubs.ingest, oracle, DS, "battle", [battle(i) for i in range(60)])
    await archive(stubs.archiver, stubs.services.clock, DS, "battle")
    await delete(stubs, oracle, "battle", minute(20), minute(40), [condition("won", "=", True)])
    crash = CrashAt(point)
    with pytest.raises(Crash):
        await Compactor(rt.settings, rt.pool, rt.store, rt.registry, checkpoint=crash).compact(
            CompactOptions(dataset_id=DS)
        )
    await read_all(stubs, oracle, DS, "battle", SOME_READS)
    await compact_until_done(stubs.compactor, DS)
    await read_all(stubs, oracle, DS, "battle", SOME_READS, compacted=True)
    assert await deletions(stubs.url) == 0
    stored = await every_seq(stubs.url, rt.store)
    assert exactly_once(stored, {r.seq for r in oracle.rows}) == []


# Bad requests: what changes in a good one, the status, and the field named.
BAD_DELETIONS: list[tuple[dict[str, Any], grpc.StatusCode, str]] = [
    ({"table": "nope"}, grpc.StatusCode.NOT_FOUND, ""),
    ({"dataset_id": "nope"}, grpc.StatusCode.NOT_FOUND, ""),
    ({"dataset_id": "../x"}, grpc.StatusCode.INVALID_ARGUMENT, "dataset_id"),
    ({"end": minute(10)}, grpc.StatusCode.INVALID_ARGUMENT, "end_time"),
    ({"end": minute(20)}, grpc.StatusCode.INVALID_ARGUMENT, "end_time"),
    ({"filters": [condition("nope", "=", 1)]}, grpc.StatusCode.INVALID_ARGUMENT, "filters[0]"),
    (
        {"filters": [condition("ship", "=", 1)]},
        grpc.StatusCode.INVALID_ARGUMENT,
        "filters[0].values[0]",
    ),
]


async def test_bad_deletions_change_nothing(stubs: Stubs) -> None:
    oracle = Oracle()
    await ingest(stubs.ingest, oracle, DS, "battle", [battle(i) for i in range(40)])
    for changes, code, field in BAD_DELETIONS:
        request = archiver_pb2.DeleteRowsRequest(
            dataset_id=changes.get("dataset_id", DS),
            table=changes.get("table", "battle"),
            start_time=timestamp_of_ms(minute(20)),
            end_time=timestamp_of_ms(changes.get("end", minute(30))),
            filters=changes.get("filters", []),
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stubs.archiver.DeleteRows(request)
        assert refused.value.code() == code, changes
        if field:
            assert field in (refused.value.details() or ""), changes
    assert await deletions(stubs.url) == 0
    await read_all(stubs, oracle, DS, "battle", SOME_READS)


async def test_a_deletion_waits_for_writes_in_progress(stubs: Stubs) -> None:
    """A write holding seqs but not yet committed when the deletion is asked for (taken as the
    group commit takes them: the dataset's fence, then seqs, then rows): the deletion waits for
    it, then hides its row; nothing it should hide is committed after it and comes back."""
    oracle = Oracle()
    await ingest(stubs.ingest, oracle, DS, "battle", [battle(i) for i in range(10)])
    (table_id,) = await table_ids(stubs.url, DS)
    writer = await asyncpg.connect(stubs.url)
    try:
        async with writer.transaction():
            assert await refused_tables(writer, [DS], [table_id]) == {}
            seq = await writer.fetchval("SELECT fusou_allocate_seq(1)")
            # The same record again, under its new seq.
            await writer.execute(
                "INSERT INTO fusou_buffer (seq, table_id, event_time, ingested_at, "
                "schema_version, dedup_key, record) SELECT $1, table_id, event_time, "
                "ingested_at, schema_version, dedup_key, record FROM fusou_buffer "
                "WHERE table_id = $2 ORDER BY seq LIMIT 1",
                seq,
                table_id,
            )
            deleting = asyncio.create_task(delete(stubs, oracle, "battle", minute(0), minute(100)))
            done, _ = await asyncio.wait({deleting}, timeout=0.5)
            assert not done, "the deletion did not wait for the write holding its seqs"
        answer = await deleting
    finally:
        await writer.close()
    assert answer.max_seq >= seq and answer.hot_rows_deleted == 11
    await read_all(stubs, oracle, DS, "battle", SOME_READS)
    await compact_until_done(stubs.compactor, DS)
    assert await deletions(stubs.url) == 0
    await read_all(stubs, oracle, DS, "battle", SOME_READS)


async def test_conditions_stay_readable_whatever_the_schema_becomes(stubs: Stubs) -> None:
    """Operands as jsonb hands them back (1e19 as an integer), and a condition on a column that
    was null in every row when the deletion was made, which then takes a type: reads and
    compaction go on, and such a condition meets no row."""
    oracle = Oracle()
    await ingest(stubs.ingest, oracle, DS, "battle", [battle(i) for i in range(30)])
    await delete(stubs, oracle, "battle", minute(0), minute(30), [condition("api_no", "=", 1e19)])
    await delete(stubs, oracle, "battle", minute(0), minute(30), [condition("hp", "=", "x")])
    await ingest(stubs.ingest, oracle, DS, "battle", [battle(i, hp=40.5) for i in range(30, 40)])
    await read_all(stubs, oracle, DS, "battle", SOME_READS)
    await archive(stubs.archiver, stubs.services.clock, DS, "battle")
    await compact_until_done(stubs.compactor, DS)
    await read_all(stubs, oracle, DS, "battle", SOME_READS, compacted=True)
    assert await deletions(stubs.url) == 0
