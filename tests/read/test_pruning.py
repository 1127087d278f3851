"""Blocks left out by their statistics: row groups of raw fragments and compacted files whose
min, max and null counts say no row meets the filters are not fetched, the answer is the
oracle's all the same, and a keyed table is never pruned by a filter its key versions may
meet differently (the newest version must reach the dedup rule)."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import struct_pb2

from fusou.api.compactor.v1 import compactor_pb2
from fusou.api.ingest.v1 import ingest_pb2
from fusou.api.reader.v1 import reader_pb2
from fusou.config import Settings
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import DAY0, MINUTE, Oracle, archive, arrow_rows, ingest, read, read_request
from tests.upload.helpers import upload

pytestmark = pytest.mark.integration

DS = "u1"
START, END = DAY0 - MINUTE, DAY0 + 10_000 * MINUTE


def row(i: int, hp: int | None = None) -> dict[str, Any]:
    return {"timestamp": DAY0 + i * MINUTE, "api_no": i, "hp": i % 97 if hp is None else hp}


def _filter(column: str, op: reader_pb2.FilterOp.ValueType, value: float) -> reader_pb2.Filter:
    return reader_pb2.Filter(column=column, op=op, values=[struct_pb2.Value(number_value=value)])


async def _read(stubs: Stubs, table: str, *filters: reader_pb2.Filter) -> Any:
    request = read_request(DS, table, START, END)
    request.filters.extend(filters)
    return await read(stubs.reader, request)


async def test_row_groups_that_cannot_match_are_not_fetched(settings: Settings) -> None:
    async with open_stubs(settings, **SMALL_BLOCKS, compact_row_group_rows=16) as stubs:
        table = "battle"
        oracle = Oracle()
        await ingest(stubs.ingest, oracle, DS, table, [row(i) for i in range(200)])
        await archive(stubs.archiver, stubs.services.clock, DS, table)
        answer = await stubs.compactor.Compact(compactor_pb2.CompactRequest(dataset_id=DS))
        assert not answer.datasets[0].error
        # A raw fragment beside the compacted file, in row groups of 7 rows.
        await upload(
            stubs.ingest,
            stubs.url,
            DS,
            [(table, [row(i) for i in range(200, 270)])],
            {table: oracle},
        )
        wanted = [r for r in oracle.expected(START, END) if r["api_no"] >= 190]
        selective = await _read(stubs, table, _filter("api_no", reader_pb2.FILTER_OP_GE, 190))
        assert arrow_rows(selective.table, oracle) == wanted
        everything = await _read(stubs, table)
        blocks = everything.stats.blocks_fetched + everything.stats.cache_hits
        assert selective.stats.blocks_pruned > 10
        assert selective.stats.blocks_fetched + selective.stats.blocks_pruned == blocks
        # The time field prunes too (compacted files store it as a timestamp).
        late = await _read(
            stubs, table, _filter("timestamp", reader_pb2.FILTER_OP_LT, DAY0 + 20 * MINUTE)
        )
        assert [r["api_no"] for r in arrow_rows(late.table, oracle)] == list(range(20))
        assert late.stats.blocks_pruned > 10
        # Null tests: no row has a null hp, so IS NULL fetches nothing at all.
        none = await _read(
            stubs, table, reader_pb2.Filter(column="hp", op=reader_pb2.FILTER_OP_IS_NULL)
        )
        assert none.table is None or none.table.num_rows == 0
        assert none.stats.blocks_fetched == 0


async def test_a_keyed_table_prunes_by_its_keys_only(stubs: Stubs) -> None:
    table = "fleet"
    await stubs.ingest.DeclareTable(
        ingest_pb2.DeclareTableRequest(dataset_id=DS, table=table, key_fields=["api_no"])
    )
    oracle = Oracle(key_fields=("api_no",))
    # Key 1 archived with hp 90; its newer version, hp 5, alone in a raw fragment whose
    # statistics say no row has hp > 50.
    await ingest(stubs.ingest, oracle, DS, table, [row(1, hp=90), row(2, hp=70)])
    await archive(stubs.archiver, stubs.services.clock, DS, table)
    await upload(stubs.ingest, stubs.url, DS, [(table, [row(1, hp=5)])], {table: oracle})
    answer = await _read(stubs, table, _filter("hp", reader_pb2.FILTER_OP_GT, 50))
    # Pruning the fragment would have let the superseded hp 90 win.
    assert [r["api_no"] for r in arrow_rows(answer.table, oracle)] == [2]
    assert answer.stats.blocks_pruned == 0
    by_key = await _read(stubs, table, _filter("api_no", reader_pb2.FILTER_OP_EQ, 2))
    assert [r["hp"] for r in arrow_rows(by_key.table, oracle)] == [70]
    assert by_key.stats.blocks_pruned == 1  # the fragment, which holds key 1 only


async def test_avro_blocks_are_pruned_by_the_time_field(stubs: Stubs) -> None:
    table = "cold"
    oracle = Oracle()
    await ingest(stubs.ingest, oracle, DS, table, [row(i) for i in range(200)])
    await archive(stubs.archiver, stubs.services.clock, DS, table)  # 20-row Avro blocks
    early = _filter("timestamp", reader_pb2.FILTER_OP_LT, DAY0 + 30 * MINUTE)
    answer = await _read(stubs, table, early)
    assert [r["api_no"] for r in arrow_rows(answer.table, oracle)] == list(range(30))
    assert answer.stats.blocks_pruned == 8 and answer.stats.blocks_fetched == 2
    # Other columns of Avro blocks have no statistics: every block is fetched.
    other = await _read(stubs, table, _filter("api_no", reader_pb2.FILTER_OP_LT, 30))
    assert [r["api_no"] for r in arrow_rows(other.table, oracle)] == list(range(30))
    assert other.stats.blocks_pruned == 0
