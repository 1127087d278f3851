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


async def test_avro_blocks_are_pruned_by_the_statistics_kept_at_archive(stubs: Stubs) -> None:
    table = "cold"
    oracle = Oracle()
    await ingest(stubs.ingest, oracle, DS, table, [row(i) for i in range(200)])
    await archive(stubs.archiver, stubs.services.clock, DS, table)  # 20-row Avro blocks
    early = _filter("timestamp", reader_pb2.FILTER_OP_LT, DAY0 + 30 * MINUTE)
    answer = await _read(stubs, table, early)
    assert [r["api_no"] for r in arrow_rows(answer.table, oracle)] == list(range(30))
    assert answer.stats.blocks_pruned == 8 and answer.stats.blocks_fetched == 2
    # Other columns by the block index's statistics.
    other = await _read(stubs, table, _filter("api_no", reader_pb2.FILTER_OP_LT, 30))
    assert [r["api_no"] for r in arrow_rows(other.table, oracle)] == list(range(30))
    assert other.stats.blocks_pruned == 8
    # A column first seen after the blocks were written is null in all of them.
    await ingest(stubs.ingest, oracle, DS, table, [{**row(300), "late": 1}])
    late = await _read(stubs, table, _filter("late", reader_pb2.FILTER_OP_GE, 0))
    assert [r["api_no"] for r in arrow_rows(late.table, oracle)] == [300]
    assert late.stats.blocks_pruned == 10
    # Blocks archived before statistics were kept have none: fetched.
    pool = stubs.services.runtime.pool
    await pool.execute("UPDATE fusou_blocks SET column_stats = NULL")
    unknown = await _read(stubs, table, _filter("api_no", reader_pb2.FILTER_OP_LT, 30))
    assert [r["api_no"] for r in arrow_rows(unknown.table, oracle)] == list(range(30))
    assert unknown.stats.blocks_pruned == 0


async def test_avro_statistics_of_strings_nulls_and_widened_columns(stubs: Stubs) -> None:
    table = "kinds"
    oracle = Oracle()
    long_text = "x" * 100

    def kinds(i: int) -> dict[str, Any]:
        return {
            "timestamp": DAY0 + i * MINUTE,
            "ship": f"ship-{i // 20:02d}",  # one name per block
            "note": long_text + str(i // 20),  # too long to keep bounds of
            "hp": None if i < 100 else i,  # null throughout the first five blocks
            "big": i,  # a long, widened to double below
        }

    await ingest(stubs.ingest, oracle, DS, table, [kinds(i) for i in range(200)])
    await archive(stubs.archiver, stubs.services.clock, DS, table)
    cases: list[tuple[reader_pb2.Filter, int]] = [
        (
            reader_pb2.Filter(
                column="ship",
                op=reader_pb2.FILTER_OP_EQ,
                values=[struct_pb2.Value(string_value="ship-03")],
            ),
            9,
        ),
        (
            reader_pb2.Filter(
                column="note",
                op=reader_pb2.FILTER_OP_EQ,
                values=[struct_pb2.Value(string_value=long_text + "3")],
            ),
            0,
        ),
        (reader_pb2.Filter(column="hp", op=reader_pb2.FILTER_OP_IS_NOT_NULL), 5),
        (reader_pb2.Filter(column="hp", op=reader_pb2.FILTER_OP_IS_NULL), 5),
    ]
    for f, pruned in cases:
        answer = await _read(stubs, table, f)
        assert answer.stats.blocks_pruned == pruned, f
        assert arrow_rows(answer.table, oracle) == [
            r for r in oracle.expected(START, END) if _meets(r, f)
        ], f
    # A double arrives: "big" widens, and its long bounds still judge the blocks.
    await ingest(stubs.ingest, oracle, DS, table, [{**kinds(500), "big": 0.5}])
    answer = await _read(stubs, table, _filter("big", reader_pb2.FILTER_OP_EQ, 5.0))
    assert [r["timestamp"] for r in arrow_rows(answer.table, oracle)] == [DAY0 + 5 * MINUTE]
    assert answer.stats.blocks_pruned == 9


def _meets(r: dict[str, Any], f: reader_pb2.Filter) -> bool:
    value = r.get(f.column)
    if f.op == reader_pb2.FILTER_OP_IS_NULL:
        return value is None
    if f.op == reader_pb2.FILTER_OP_IS_NOT_NULL:
        return value is not None
    return bool(value == f.values[0].string_value)
