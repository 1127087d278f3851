"""ReadRange requests: bad input, limit and columns, the output forms, the client's deadline."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pyarrow as pa
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from fusou.api.reader.client import read_range_callable
from fusou.api.reader.v1 import reader_pb2
from fusou.api.timestamps import MAX_SECONDS, MIN_SECONDS
from fusou.schema.time_bounds import MAX_TIME_MS, MIN_TIME_MS
from tests.ingest.helpers import violation_fields
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
    ingest,
    read,
    read_request,
    ts,
)

pytestmark = pytest.mark.integration

DS = "u1"
TABLE = "battle"


def battle(i: int) -> dict[str, Any]:
    return {
        "timestamp": DAY0 + (i // 2) * MINUTE,  # two rows a minute
        "api_no": i,
        "hp": 40 + (i % 7) / 4,
        "ship": f"ship-{i % 13}",
    }


@pytest.fixture
async def loaded(stubs: Stubs) -> AsyncIterator[tuple[Stubs, Oracle]]:
    """A table of 120 rows sent newest first (so seqs fall as times rise), half archived,
    with duplicates."""
    oracle = Oracle()
    rows = [battle(i) for i in reversed(range(120))]
    await ingest(stubs.ingest, oracle, DS, TABLE, rows[:60])
    await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
    await ingest(stubs.ingest, oracle, DS, TABLE, rows[60:])
    await ingest(stubs.ingest, oracle, DS, TABLE, [battle(i) for i in range(0, 120, 9)])
    yield stubs, oracle


# -- bad input -----------------------------------------------------------------------------------

WHOLE = (DAY0 - HOUR, DAY0 + DAY)

BAD_REQUESTS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("end before start", {"start": DAY0 + 10, "end": DAY0}, ["end_time"]),
    ("end equal to start", {"start": DAY0, "end": DAY0}, ["end_time"]),
    ("no start", {"start": None}, ["start_time"]),
    ("no end", {"end": None}, ["end_time"]),
    ("no times", {"start": None, "end": None}, ["start_time", "end_time"]),
    ("no dataset", {"dataset": ""}, ["dataset_id"]),
    ("no table", {"table": ""}, ["table"]),
    ("dataset ..", {"dataset": "../x"}, ["dataset_id"]),
    ("table ..", {"table": "../x"}, ["table"]),
    ("dataset with /", {"dataset": "a/b"}, ["dataset_id"]),
    ("table with /", {"table": "a/b"}, ["table"]),
    ("unknown column", {"columns": ["nope"]}, ["columns"]),
    ("one unknown column among known", {"columns": ["ship", "nope"]}, ["columns"]),
    ("negative limit", {"limit": -1}, ["limit"]),
    (
        "several problems",
        {"dataset": "", "table": "a/b", "start": DAY0, "end": DAY0 - 1, "limit": -5},
        ["dataset_id", "table", "end_time", "limit"],
    ),
]


@pytest.mark.parametrize(
    ("changes", "fields"), [(c, f) for _, c, f in BAD_REQUESTS], ids=[n for n, _, _ in BAD_REQUESTS]
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    loaded: tuple[Stubs, Oracle], changes: dict[str, Any], fields: list[str]
) -> None:
    stubs, _ = loaded
    args: dict[str, Any] = {
        "dataset": DS,
        "table": TABLE,
        "start": WHOLE[0],
        "end": WHOLE[1],
        "columns": (),
        "limit": 0,
    } | changes
    request = read_request(
        args["dataset"],
        args["table"],
        args["start"],
        args["end"],
        columns=args["columns"],
        limit=args["limit"],
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await read(stubs.reader, request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert sorted(violation_fields(err.value)) == sorted(fields)


@pytest.mark.parametrize(("dataset", "table"), [("nobody", TABLE), (DS, "nothing")])
async def test_unknown_dataset_or_table_is_not_found(
    loaded: tuple[Stubs, Oracle], dataset: str, table: str
) -> None:
    stubs, _ = loaded
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await read(stubs.reader, read_request(dataset, table, *WHOLE))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()


# -- limit and columns ---------------------------------------------------------------------------


async def test_limit_returns_the_first_rows_in_time_then_seq_order(
    loaded: tuple[Stubs, Oracle],
) -> None:
    stubs, oracle = loaded
    start, end = DAY0 + 5 * MINUTE, DAY0 + 50 * MINUTE
    everything = await read(stubs.reader, read_request(DS, TABLE, start, end))
    rows = check_arrow(everything, oracle, start, end)
    # Rows sharing a time come in seq order, which is neither api_no order (the later api_no
    # was sent first) nor its reverse (re-sent duplicates won with a higher seq).
    ties = [
        (a["api_no"], b["api_no"])
        for a, b in itertools.pairwise(rows)
        if a["timestamp"] == b["timestamp"]
    ]
    assert any(x > y for x, y in ties) and any(x < y for x, y in ties), ties
    for limit in (1, 5, 17, len(rows) - 1, len(rows), len(rows) + 10):
        answer = await read(stubs.reader, read_request(DS, TABLE, start, end, limit=limit))
        assert check_arrow(answer, oracle, start, end, limit=limit) == rows[:limit]
        await check_stats(answer, oracle, stubs.url, DS, TABLE, start, end, limit)
        # Dedup happens before the limit: the duplicates count the whole range.
        assert answer.stats.duplicates_removed == oracle.duplicates(start, end) > 0


@pytest.mark.parametrize(
    "columns",
    [
        ("ship",),
        ("ship", "timestamp"),
        ("api_no", "hp", "ship"),
        ("hp", "hp"),
        ("timestamp",),
    ],
)
async def test_columns_are_projected_and_always_include_the_time_field(
    loaded: tuple[Stubs, Oracle], columns: tuple[str, ...]
) -> None:
    stubs, oracle = loaded
    start, end = DAY0 + 7 * MINUTE + 1, DAY0 + 41 * MINUTE
    answer = await read(stubs.reader, read_request(DS, TABLE, start, end, columns=columns))
    assert answer.table is not None
    expected_names = list(dict.fromkeys(columns))
    if "timestamp" not in expected_names:
        expected_names.insert(0, "timestamp")
    assert answer.table.column_names == expected_names
    check_arrow(answer, oracle, start, end, columns)
    as_json = await read(
        stubs.reader, read_request(DS, TABLE, start, end, columns=columns, limit=9, json_rows=True)
    )
    assert all(set(r) == set(expected_names) for r in as_json.rows)  # Structs are maps
    check_json(as_json, oracle, start, end, columns, limit=9)


# -- output forms --------------------------------------------------------------------------------


async def test_json_rows_numbers_as_doubles_nested_as_objects_bytes_as_base64(
    stubs: Stubs,
) -> None:
    oracle = Oracle()
    table = "mixed"
    base = [
        {
            "timestamp": DAY0 + i * 1000,
            "n": i,
            "x": i / 4,
            "blob": bytes([i, 0, 255 - i]),
            "deck": {"ships": [i, i + 1], "name": f"d{i}", "ok": i % 2 == 0},
            "s": f"s{i}",
            "b": i % 2 == 1,
        }
        for i in range(10)
    ]
    await ingest(stubs.ingest, oracle, DS, table, base, arrow=True)
    await archive(stubs.archiver, stubs.services.clock, DS, table)
    # A newer row without the bytes (Struct rows cannot carry bytes), hot.
    newer = {k: v for k, v in base[0].items() if k != "blob"} | {"timestamp": DAY0 + 20_000}
    await ingest(stubs.ingest, oracle, DS, table, [newer])
    start, end = DAY0, DAY0 + HOUR
    answer = await read(stubs.reader, read_request(DS, table, start, end, json_rows=True))
    check_json(answer, oracle, start, end)
    first = answer.rows[0]
    assert first["n"] == 0.0 and isinstance(first["n"], float)
    assert first["deck"] == {"ships": [0.0, 1.0], "name": "d0", "ok": True}
    assert base64.b64decode(first["blob"]) == bytes([0, 0, 255])
    assert answer.rows[-1]["blob"] is None
    # The Arrow form carries the exact types.
    arrow = await read(stubs.reader, read_request(DS, table, start, end))
    check_arrow(arrow, oracle, start, end)


async def test_json_rows_come_in_several_messages(stubs: Stubs) -> None:
    oracle = Oracle()
    rows = [battle(i) for i in range(2500)]
    await ingest(stubs.ingest, oracle, DS, TABLE, rows)
    start, end = DAY0, DAY0 + DAY
    answer = await read(stubs.reader, read_request(DS, TABLE, start, end, json_rows=True))
    assert answer.messages == 3
    check_json(answer, oracle, start, end)


async def test_wide_rows_come_in_messages_a_default_client_accepts(stubs: Stubs) -> None:
    # 12 MB of answer: a gRPC client with default options refuses messages over 4 MiB.
    oracle = Oracle()
    for part in range(6):
        rows = [
            battle(i) | {"note": f"{i:05d}" * 2000} for i in range(part * 200, part * 200 + 200)
        ]
        await ingest(stubs.ingest, oracle, DS, TABLE, rows, arrow=True)
    await archive(stubs.archiver, stubs.services.clock, DS, TABLE, max_rows=500)
    start, end = DAY0, DAY0 + DAY
    async with grpc.aio.insecure_channel(stubs.services.target) as default_client:
        messages = [
            m
            async for m in read_range_callable(default_client)(read_request(DS, TABLE, start, end))
        ]
    tables = [m for m in messages if isinstance(m, pa.Table)]
    assert len(tables) >= 4
    assert sum(t.num_rows for t in tables) == 1200
    assert pa.concat_tables(tables).column("note").to_pylist() == [
        r["note"] for r in oracle.expected(start, end)
    ]


# -- the client's deadline ----------------------------------------------------------------------


async def test_short_deadline_is_deadline_exceeded_and_the_server_stays_healthy(
    loaded: tuple[Stubs, Oracle],
) -> None:
    stubs, oracle = loaded
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await read(stubs.reader, read_request(DS, TABLE, *WHOLE), deadline=0.001)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    answer = await read(stubs.reader, read_request(DS, TABLE, *WHOLE))
    check_arrow(answer, oracle, *WHOLE)


async def test_work_stops_when_the_client_deadline_passes(
    loaded: tuple[Stubs, Oracle], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read parked in a ranged GET is cancelled server-side once the deadline passes."""
    stubs, oracle = loaded
    store = stubs.services.runtime.store
    original = store.get_range
    entered = asyncio.Event()
    cancelled = asyncio.Event()
    never = asyncio.Event()

    async def stuck(key: str, offset: int, length: int) -> bytes:
        entered.set()
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return await original(key, offset, length)

    monkeypatch.setattr(store, "get_range", stuck)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await read(stubs.reader, read_request(DS, TABLE, *WHOLE), deadline=0.5)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert entered.is_set(), "the read never reached the object store"
    # The GET the server was waiting for is cancelled, not left running.
    await asyncio.wait_for(cancelled.wait(), timeout=10)
    monkeypatch.setattr(store, "get_range", original)
    answer = await read(stubs.reader, read_request(DS, TABLE, *WHOLE))
    check_arrow(answer, oracle, *WHOLE)


async def test_sub_millisecond_bounds_keep_the_half_open_range(stubs: Stubs) -> None:
    oracle = Oracle()
    rows = [{"timestamp": DAY0 + i, "api_no": i} for i in range(3)]
    await ingest(stubs.ingest, oracle, DS, TABLE, rows)
    request = read_request(DS, TABLE, None, None)
    half_ms = 500_000
    request.start_time.CopyFrom(Timestamp(seconds=DAY0 // 1000, nanos=half_ms))
    request.end_time.CopyFrom(Timestamp(seconds=DAY0 // 1000, nanos=1_000_000 + half_ms))
    answer = await read(stubs.reader, request)
    # Only the row at DAY0 + 1 ms lies in [DAY0 + 0.5 ms, DAY0 + 1.5 ms).
    check_arrow(answer, oracle, DAY0 + 1, DAY0 + 2)


# -- values protobuf carries but FUSOU cannot place (issue 13) -----------------------------------


def _raw_request(
    start: Timestamp | None = None, end: Timestamp | None = None, **fields: Any
) -> reader_pb2.ReadRangeRequest:
    request = reader_pb2.ReadRangeRequest(dataset_id=DS, table=TABLE, **fields)
    request.start_time.CopyFrom(ts(WHOLE[0]) if start is None else start)
    request.end_time.CopyFrom(ts(WHOLE[1]) if end is None else end)
    return request


UNPLACEABLE: list[tuple[str, reader_pb2.ReadRangeRequest, list[str]]] = [
    (
        "start before year 1",
        _raw_request(start=Timestamp(seconds=MIN_SECONDS - 1)),
        ["start_time.seconds"],
    ),
    (
        "end after year 9999",
        _raw_request(end=Timestamp(seconds=MAX_SECONDS + 1)),
        ["end_time.seconds"],
    ),
    ("end at 2**62 seconds", _raw_request(end=Timestamp(seconds=2**62)), ["end_time.seconds"]),
    (
        "start at -2**62 seconds",
        _raw_request(start=Timestamp(seconds=-(2**62))),
        ["start_time.seconds"],
    ),
    (
        "negative nanos",
        _raw_request(start=Timestamp(seconds=DAY0 // 1000, nanos=-1)),
        ["start_time.nanos"],
    ),
    (
        "a whole second of nanos",
        _raw_request(end=Timestamp(seconds=DAY0 // 1000, nanos=1_000_000_000)),
        ["end_time.nanos"],
    ),
    ("an undefined format", _raw_request(format=7), ["format"]),
    ("a negative format", _raw_request(format=-1), ["format"]),
]


@pytest.mark.parametrize(
    ("bad", "fields"), [c[1:] for c in UNPLACEABLE], ids=[c[0] for c in UNPLACEABLE]
)
async def test_unplaceable_times_and_undefined_enums_are_invalid_arguments(
    loaded: tuple[Stubs, Oracle], bad: reader_pb2.ReadRangeRequest, fields: list[str]
) -> None:
    stubs, _ = loaded
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await read(stubs.reader, bad)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert violation_fields(err.value) == fields, err.value.details()


async def test_the_widest_range_protobuf_carries_reads_everything(
    loaded: tuple[Stubs, Oracle],
) -> None:
    stubs, oracle = loaded
    widest = _raw_request(
        start=Timestamp(seconds=MIN_SECONDS),
        end=Timestamp(seconds=MAX_SECONDS, nanos=999_999_999),
        format=reader_pb2.OUTPUT_FORMAT_ARROW_IPC,
    )
    answer = await read(stubs.reader, widest)
    rows = check_arrow(answer, oracle, MIN_TIME_MS, MAX_TIME_MS + 1)
    assert len(rows) == len(check_arrow(answer, oracle, *WHOLE)) > 0


async def test_thousands_of_problems_still_answer_invalid_argument(
    loaded: tuple[Stubs, Oracle],
) -> None:
    # Every violation in the status would not fit gRPC's trailers (the client would see
    # RESOURCE_EXHAUSTED and no field): the first ones are named, the rest counted.
    stubs, _ = loaded
    many = [f"nope_{i}" for i in range(100_000)]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await read(stubs.reader, read_request(DS, TABLE, *WHOLE, columns=many))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert set(violation_fields(err.value)) == {"columns"}
    assert "(and 99992 more problems)" in (err.value.details() or "")
