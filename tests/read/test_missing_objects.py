"""Guarantee 5 from the reader's side: a reader that meets a missing object re-plans once from
the catalog; if the object is still missing it answers UNAVAILABLE (the client may retry), and
if the catalog moved the rows to another object meanwhile, the read succeeds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import grpc
import pytest

from fusou.objectstore.base import ObjectStore
from tests.read.conftest import Stubs
from tests.read.oracle import (
    DAY0,
    HOUR,
    MINUTE,
    Oracle,
    archive,
    check_arrow,
    ingest,
    overlapping_blocks,
    read,
    read_request,
)

pytestmark = pytest.mark.integration

DS = "u1"
TABLE = "battle"
GetRange = Callable[[str, int, int], Awaitable[bytes]]


def record_gets(store: ObjectStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the key of every ranged GET the store serves from now on."""
    keys: list[str] = []
    original: GetRange = store.get_range

    async def recording(key: str, offset: int, length: int) -> bytes:
        keys.append(key)
        return await original(key, offset, length)

    monkeypatch.setattr(store, "get_range", recording)
    return keys


async def load(stubs: Stubs) -> Oracle:
    oracle = Oracle()
    rows = [{"timestamp": DAY0 + i * MINUTE, "api_no": i, "ship": f"s{i % 5}"} for i in range(120)]
    await ingest(stubs.ingest, oracle, DS, TABLE, rows)
    result = await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
    assert result.files > 1
    return oracle


async def test_object_deleted_behind_the_catalog_is_unavailable_after_one_replan(
    stubs: Stubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    oracle = await load(stubs)
    store = stubs.services.runtime.store
    start, end = DAY0 + 10 * MINUTE, DAY0 + 11 * MINUTE
    (block,) = await overlapping_blocks(stubs.url, DS, TABLE, start, end)
    await store.delete(block.object_key)
    gets = record_gets(store, monkeypatch)

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await read(stubs.reader, read_request(DS, TABLE, start, end))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
    # Planned, met the 404, planned again from the catalog, met it again: two GETs, no more.
    assert gets == [block.object_key, block.object_key]

    # Reads that do not need that object still work.
    other = await overlapping_blocks(stubs.url, DS, TABLE, DAY0 + HOUR, DAY0 + 2 * HOUR)
    assert block.object_key not in {b.object_key for b in other}
    answer = await read(stubs.reader, read_request(DS, TABLE, DAY0 + HOUR, DAY0 + 2 * HOUR))
    check_arrow(answer, oracle, DAY0 + HOUR, DAY0 + 2 * HOUR)
    assert answer.stats.replans == 0


async def move_to_new_object(url: str, store: ObjectStore, old_key: str) -> str:
    """What a compaction does, done by hand: the same bytes under a new key, registered with
    the old file's block index in one transaction that retires the old object, which is then
    deleted (as if the grace period were over)."""
    new_key = old_key.removesuffix(".avro") + "-moved.avro"
    await store.put(new_key, await store.get(old_key))
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            old_object = await conn.fetchval(
                "SELECT object_id FROM fusou_objects WHERE object_key = $1", old_key
            )
            new_object = await conn.fetchval(
                "INSERT INTO fusou_objects (dataset_id, object_key, kind, size_bytes) "
                "SELECT dataset_id, $2, kind, size_bytes FROM fusou_objects "
                "WHERE object_id = $1 RETURNING object_id",
                old_object,
                new_key,
            )
            for f in await conn.fetch(
                "SELECT file_id FROM fusou_files WHERE object_id = $1 AND state = 'active'",
                old_object,
            ):
                new_file = await conn.fetchval(
                    "INSERT INTO fusou_files (object_id, table_id, format, byte_offset, "
                    "byte_length, row_count, uncompressed_bytes, min_time, max_time, "
                    "schema_version, codec, header) "
                    "SELECT $2, table_id, format, byte_offset, byte_length, row_count, "
                    "uncompressed_bytes, min_time, max_time, schema_version, codec, header "
                    "FROM fusou_files WHERE file_id = $1 RETURNING file_id",
                    f["file_id"],
                    new_object,
                )
                await conn.execute(
                    "INSERT INTO fusou_blocks (file_id, block_no, byte_offset, byte_length, "
                    "row_count, min_time, max_time) SELECT $2, block_no, byte_offset, "
                    "byte_length, row_count, min_time, max_time FROM fusou_blocks "
                    "WHERE file_id = $1",
                    f["file_id"],
                    new_file,
                )
            await conn.execute(
                "UPDATE fusou_files SET state = 'retired', retired_at = now() WHERE object_id = $1",
                old_object,
            )
            await conn.execute(
                "UPDATE fusou_objects SET state = 'retired', retired_at = now() "
                "WHERE object_id = $1",
                old_object,
            )
    finally:
        await conn.close()
    await store.delete(old_key)
    return new_key


async def test_object_replaced_between_planning_and_fetching_is_read_from_its_successor(
    stubs: Stubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    oracle = await load(stubs)
    store = stubs.services.runtime.store
    start, end = DAY0 + 3 * MINUTE, DAY0 + 100 * MINUTE
    blocks = await overlapping_blocks(stubs.url, DS, TABLE, start, end)
    victim = blocks[0].object_key
    original: GetRange = store.get_range
    gets: list[str] = []
    moved: list[str] = []

    async def replaced_meanwhile(key: str, offset: int, length: int) -> bytes:
        # The read has planned already: the first time it asks for the victim, move it.
        gets.append(key)
        if key == victim and not moved:
            moved.append(await move_to_new_object(stubs.url, store, victim))
        return await original(key, offset, length)

    monkeypatch.setattr(store, "get_range", replaced_meanwhile)
    answer = await read(stubs.reader, read_request(DS, TABLE, start, end))
    check_arrow(answer, oracle, start, end)
    assert answer.stats.replans == 1
    assert moved and moved[0] in gets and gets.index(victim) < gets.index(moved[0])
    assert gets.count(victim) == 1
    # The catalog now plans the new object; the old one is gone from the store.
    keys = {b.object_key for b in await overlapping_blocks(stubs.url, DS, TABLE, start, end)}
    assert moved[0] in keys and victim not in keys
