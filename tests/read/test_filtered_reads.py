"""Filtered reads against the oracle in every storage state (cold Avro, raw fragments, optimized
Parquet, hot rows, and all of them mixed), with keys updated across states: a filter picks
among the rows the unfiltered read returns, so a key whose newest version fails it is not
returned at all, even when an older version would pass."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from google.protobuf import struct_pb2
from pyarrow import flight

from fusou.api.ingest.v1 import ingest_pb2
from fusou.api.reader.flight import read_flight_table
from fusou.api.reader.v1 import reader_pb2
from tests.compact.oracle import compact_until_done
from tests.read.conftest import Stubs
from tests.read.oracle import DAY0, MINUTE, Oracle, archive, arrow_rows, ingest, read, read_request
from tests.upload.helpers import upload

pytestmark = pytest.mark.integration

DS, TABLE = "u1", "fleet"
START, END = DAY0 - MINUTE, DAY0 + 1000 * MINUTE


def row(i: int, version: int = 0) -> dict[str, Any]:
    return {
        "timestamp": DAY0 + i * MINUTE,
        "api_no": i,
        "ship": f"ship-{(i + version) % 5}",
        "won": (i + version) % 3 == 0,
        "hp": (i * 7 + version * 13) % 100 if (i + version) % 4 else None,
    }


def _value(v: Any) -> struct_pb2.Value:
    if isinstance(v, bool):
        return struct_pb2.Value(bool_value=v)
    if isinstance(v, int | float):
        return struct_pb2.Value(number_value=v)
    return struct_pb2.Value(string_value=v)


Cond = Callable[[dict[str, Any]], bool]


def _cond(
    column: str, op: reader_pb2.FilterOp.ValueType, *values: Any
) -> tuple[reader_pb2.Filter, Cond]:
    """A filter and what it means for one oracle row (a null meets nothing but IS NULL)."""

    def holds(r: dict[str, Any]) -> bool:
        v = r.get(column)
        if op == reader_pb2.FILTER_OP_IS_NULL:
            return v is None
        if op == reader_pb2.FILTER_OP_IS_NOT_NULL:
            return v is not None
        if v is None:
            return False
        if op == reader_pb2.FILTER_OP_IN:
            return v in values
        w = values[0]
        outcomes: dict[int, bool] = {
            reader_pb2.FILTER_OP_EQ: v == w,
            reader_pb2.FILTER_OP_NE: v != w,
            reader_pb2.FILTER_OP_LT: v < w,
            reader_pb2.FILTER_OP_LE: v <= w,
            reader_pb2.FILTER_OP_GT: v > w,
            reader_pb2.FILTER_OP_GE: v >= w,
        }
        return outcomes[op]

    message = reader_pb2.Filter(column=column, op=op, values=[_value(v) for v in values])
    return message, holds


READS: list[tuple[str, list[tuple[reader_pb2.Filter, Cond]], int]] = [
    ("hp >= 50", [_cond("hp", reader_pb2.FILTER_OP_GE, 50)], 0),
    ("ship in (1, 2)", [_cond("ship", reader_pb2.FILTER_OP_IN, "ship-1", "ship-2")], 0),
    (
        "won and hp < 30",
        [_cond("won", reader_pb2.FILTER_OP_EQ, True), _cond("hp", reader_pb2.FILTER_OP_LT, 30)],
        0,
    ),
    ("hp is null", [_cond("hp", reader_pb2.FILTER_OP_IS_NULL)], 0),
    ("api_no != 5", [_cond("api_no", reader_pb2.FILTER_OP_NE, 5)], 0),
    ("ship = 3, limit 4", [_cond("ship", reader_pb2.FILTER_OP_EQ, "ship-3")], 4),
    ("nothing", [_cond("api_no", reader_pb2.FILTER_OP_GT, 10_000)], 0),
]


async def _check_reads(stubs: Stubs, oracle: Oracle) -> None:
    everything = oracle.expected(START, END)
    for name, conds, limit in READS:
        request = read_request(DS, TABLE, START, END, limit=limit)
        request.filters.extend(f for f, _ in conds)
        answer = await read(stubs.reader, request)
        # Flight answers the same request with the same table.
        table, stats = await asyncio.to_thread(
            read_flight_table, flight.connect(f"grpc://{stubs.services.flight_target}"), request
        )
        assert answer.table is not None and table.equals(answer.table), name
        assert stats is not None and stats.rows_returned == answer.stats.rows_returned, name
        wanted = [r for r in everything if all(holds(r) for _, holds in conds)]
        dropped = len(everything) - len(wanted)
        # Rows of blocks left out unfetched are not counted as filtered.
        if answer.stats.blocks_pruned:
            assert answer.stats.rows_filtered < dropped, name
        else:
            assert answer.stats.rows_filtered == dropped, name
        if limit:
            wanted = wanted[:limit]
        assert arrow_rows(answer.table, oracle) == wanted, name


async def _ingest(stubs: Stubs, oracle: Oracle, rows: Sequence[dict[str, Any]]) -> None:
    await ingest(stubs.ingest, oracle, DS, TABLE, rows)


async def test_filtered_reads_in_every_storage_state(stubs: Stubs) -> None:
    await stubs.ingest.DeclareTable(
        ingest_pb2.DeclareTableRequest(dataset_id=DS, table=TABLE, key_fields=["api_no"])
    )
    oracle = Oracle(key_fields=("api_no",))
    # Cold Avro.
    await _ingest(stubs, oracle, [row(i) for i in range(60)])
    await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
    await _check_reads(stubs, oracle)
    # Raw fragments: newer versions of keys 40..59, and new keys.
    await upload(
        stubs.ingest, stubs.url, DS, [(TABLE, [row(i, 1) for i in range(40, 80)])], {TABLE: oracle}
    )
    await _check_reads(stubs, oracle)
    # Optimized Parquet.
    await compact_until_done(stubs.compactor, DS)
    await _check_reads(stubs, oracle)
    # Cold Avro again beside the optimized files: newer versions of keys 0..9, new keys.
    await _ingest(stubs, oracle, [row(i, 2) for i in [*range(10), *range(80, 100)]])
    await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
    await _check_reads(stubs, oracle)
    # Hot rows: newer versions of keys 20..29 and 45..49, over every other state.
    await _ingest(stubs, oracle, [row(i, 3) for i in [*range(20, 30), *range(45, 50)]])
    await _check_reads(stubs, oracle)
    # A key whose old version passes a filter its newest version fails is not returned.
    old, new = row(26), row(26, 3)
    assert old["hp"] is not None and new["hp"] is not None and old["hp"] > new["hp"]
    request = read_request(DS, TABLE, START, END)
    message, _ = _cond("hp", reader_pb2.FILTER_OP_GT, new["hp"])
    request.filters.append(message)
    answer = await read(stubs.reader, request)
    assert 26 not in [r["api_no"] for r in arrow_rows(answer.table, oracle)]
    assert answer.stats.rows_returned > 0


async def test_a_filter_the_table_cannot_take_is_refused(stubs: Stubs) -> None:
    import grpc

    oracle = Oracle()
    await _ingest(stubs, oracle, [row(i) for i in range(5)])
    for conds, field in (
        ([_cond("nope", reader_pb2.FILTER_OP_EQ, 1)], "filters[0].column"),
        ([_cond("hp", reader_pb2.FILTER_OP_EQ, "x")], "filters[0].values[0]"),
        ([_cond("ship", reader_pb2.FILTER_OP_IS_NULL, "x")], "filters[0].values"),
    ):
        request = read_request(DS, TABLE, START, END)
        request.filters.extend(f for f, _ in conds)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await read(stubs.reader, request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (caught.value.details() or "")
