"""What the read tests compare ReadRange against: an oracle computed from what was ingested.

Nothing here goes through the reader. Every row sent to IngestService is kept with the seq its
answer gave it (a replayed answer wrote nothing, so its rows are not kept again); the expected
answer to a read is then derived from those rows alone:

- rows with ``start <= time < end``;
- grouped by the dedup key (the declared key fields, or the whole record), where null fields
  do not count and whole doubles equal longs; the highest seq of each group wins;
- sorted by (time, seq), projected (the time field always), limited.

Values are converted to the type the table ends up with (long, double, ...), inferred here
from the batches the same way schema-on-write infers it, so the Arrow answer can be compared
exactly, type by type.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import pyarrow as pa
from google.protobuf import json_format, timestamp_pb2

from fusou.api.archiver.v1 import archiver_pb2, archiver_pb2_grpc
from fusou.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.api.reader.v1 import reader_pb2, reader_pb2_grpc
from fusou.api.structs import structs
from fusou.clock import ManualClock
from fusou.records.wire_formats import arrow_ipc_bytes

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# Midnight UTC, so that hours and days line up with the data.
DAY0 = 1_699_920_000_000

NULL, BOOLEAN, LONG, DOUBLE, STRING, BYTES, JSON = (
    "null",
    "boolean",
    "long",
    "double",
    "string",
    "bytes",
    "json",
)
ARROW_OF = {
    NULL: pa.string(),  # a field that only ever held null reads as a null string column
    BOOLEAN: pa.bool_(),
    LONG: pa.int64(),
    DOUBLE: pa.float64(),
    STRING: pa.string(),
    BYTES: pa.binary(),
    JSON: pa.string(),
}


def _widen(current: str, incoming: str) -> str:
    if incoming in (current, NULL):
        return current
    if current == NULL:
        return incoming
    if {current, incoming} == {LONG, DOUBLE}:
        return DOUBLE
    raise AssertionError(f"the test sends conflicting types {current} and {incoming}")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _column_type(values: Sequence[Any], *, arrow: bool) -> str:
    """The type one batch gives a field (see fusou.records.batch)."""
    present = [v for v in values if v is not None]
    if not present:
        return NULL
    first = present[0]
    if isinstance(first, bool):
        return BOOLEAN
    if _is_number(first):
        if arrow:
            return DOUBLE if any(isinstance(v, float) for v in present) else LONG
        # Struct numbers are doubles: a column of whole numbers becomes a long.
        return LONG if all(float(v).is_integer() for v in present) else DOUBLE
    if isinstance(first, str):
        return STRING
    if isinstance(first, bytes):
        return BYTES
    return JSON


def _canon(v: Any) -> Any:
    """A value as the dedup rule sees it: whole numbers as integers, nested values recursively."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, int | float):
        return v
    if isinstance(v, bytes):
        return {"$bytes": v.hex()}
    if isinstance(v, Mapping):
        return {k: _canon(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_canon(x) for x in v]
    raise AssertionError(f"unexpected value {v!r}")


def dedup_key(record: Mapping[str, Any], key_fields: Sequence[str]) -> str:
    names = sorted(key_fields) if key_fields else sorted(record)
    return json.dumps(
        {n: _canon(record[n]) for n in names if record.get(n) is not None}, sort_keys=True
    )


def _typed(v: Any, ftype: str) -> Any:
    """A value as the Arrow answer carries it (JSON fields parsed back by the comparison)."""
    if v is None or ftype == NULL:
        return None
    if ftype == LONG:
        assert float(v).is_integer()
        return int(v)
    if ftype == DOUBLE:
        return float(v)
    if ftype == JSON:
        return _canon(v)
    return v


def _as_json_value(v: Any) -> Any:
    """A value as a protobuf Struct carries it: numbers are doubles, bytes base64 text."""
    if v is None or isinstance(v, bool | str):
        return v
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, Mapping):
        return {k: _as_json_value(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_as_json_value(x) for x in v]
    raise AssertionError(f"unexpected value {v!r}")


@dataclass(frozen=True)
class Row:
    seq: int
    record: dict[str, Any]


@dataclass
class Oracle:
    time_field: str = "timestamp"
    key_fields: tuple[str, ...] = ()
    rows: list[Row] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    answers: dict[str, ingest_pb2.IngestResponse] = field(default_factory=dict)

    def keep(
        self,
        answer: ingest_pb2.IngestResponse,
        rows: Sequence[Mapping[str, Any]],
        *,
        request_id: str = "",
        arrow: bool = False,
    ) -> None:
        """Record what one Ingest answer says was written."""
        if request_id and request_id in self.answers:
            first = self.answers[request_id]
            assert answer.replayed, f"request {request_id!r} was applied twice"
            assert (answer.first_seq, answer.last_seq, answer.rows_written) == (
                first.first_seq,
                first.last_seq,
                first.rows_written,
            ), "a replayed answer differs from the first answer"
            return
        assert not answer.replayed
        assert answer.rows_written == len(rows)
        assert answer.last_seq - answer.first_seq + 1 == len(rows)
        self.keep_rows(answer.first_seq, rows, arrow=arrow)
        if request_id:
            self.answers[request_id] = answer

    def keep_rows(
        self, first_seq: int, rows: Sequence[Mapping[str, Any]], *, arrow: bool = False
    ) -> None:
        """Record rows written with consecutive seqs from ``first_seq`` (an Ingest batch, or
        a raw fragment, whose row i has ``first_seq + i``)."""
        known = {r.seq for r in self.rows}
        for offset, row in enumerate(rows):
            seq = first_seq + offset
            assert seq not in known, f"seq {seq} given twice"
            self.rows.append(Row(seq, dict(row)))
        names: list[str] = []
        for row in rows:
            names += [n for n in row if n not in names]
        for name in names:
            ftype = _column_type([r.get(name) for r in rows], arrow=arrow)
            self.types[name] = _widen(self.types.get(name, NULL), ftype)

    def names(self, columns: Sequence[str] = ()) -> list[str]:
        """The columns of an answer: those asked for (the time field first when not among
        them), or all the table's fields."""
        if not columns:
            return [self.time_field, *(n for n in self.types if n != self.time_field)]
        names = list(dict.fromkeys(columns))
        if self.time_field not in names:
            names.insert(0, self.time_field)
        return names

    def in_range(self, start: int, end: int) -> list[Row]:
        return [r for r in self.rows if start <= r.record[self.time_field] < end]

    def winners(self, start: int, end: int) -> list[Row]:
        """The rows of the range left by the dedup rule, in (time, seq) order."""
        best: dict[str, Row] = {}
        for row in self.in_range(start, end):
            key = dedup_key(row.record, self.key_fields)
            if key not in best or best[key].seq < row.seq:
                best[key] = row
        return sorted(best.values(), key=lambda r: (r.record[self.time_field], r.seq))

    def duplicates(self, start: int, end: int) -> int:
        return len(self.in_range(start, end)) - len(self.winners(start, end))

    def expected(
        self, start: int, end: int, columns: Sequence[str] = (), limit: int = 0
    ) -> list[dict[str, Any]]:
        """Rows as the Arrow answer should hold them (JSON fields as objects)."""
        names = self.names(columns)
        winners = self.winners(start, end)
        if limit:
            winners = winners[:limit]
        return [
            {n: _typed(r.record.get(n), self.types.get(n, NULL)) for n in names} for r in winners
        ]

    def expected_json(
        self, start: int, end: int, columns: Sequence[str] = (), limit: int = 0
    ) -> list[dict[str, Any]]:
        """Rows as the JSON answer should hold them."""
        return [
            {n: _as_json_value(v) for n, v in row.items()}
            for row in self.expected(start, end, columns, limit)
        ]

    def arrow_types(self, columns: Sequence[str] = ()) -> dict[str, pa.DataType]:
        return {n: ARROW_OF[self.types.get(n, NULL)] for n in self.names(columns)}


# -- talking to the services -------------------------------------------------------------------


def ts(ms: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


async def ingest(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub,
    oracle: Oracle,
    dataset: str,
    table: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    request_id: str = "",
    arrow: bool = False,
) -> ingest_pb2.IngestResponse:
    """Send ``rows`` as one Ingest request and keep what the answer says in ``oracle``."""
    if arrow:
        request = ingest_pb2.IngestRequest(
            dataset_id=dataset,
            table=table,
            request_id=request_id,
            arrow_ipc=arrow_ipc_bytes(pa.Table.from_pylist([dict(r) for r in rows])),
        )
    else:
        request = ingest_pb2.IngestRequest(
            dataset_id=dataset, table=table, request_id=request_id, rows=structs(rows)
        )
    answer = await stub.Ingest(request)
    oracle.keep(answer, rows, request_id=request_id, arrow=arrow)
    return answer


async def archive(
    stub: archiver_pb2_grpc.ArchiverServiceAsyncStub,
    clock: ManualClock,
    dataset: str,
    table: str,
    max_rows: int = 0,
) -> archiver_pb2.TableArchiveResult:
    """Archive the table's hot rows (at most ``max_rows``), whatever their age."""
    # With a minimum age of 0, a row ingested in the very millisecond the run starts would
    # still be too young: move the services' clock on instead of waiting for it.
    clock.advance(60)
    answer = await stub.Archive(
        archiver_pb2.ArchiveRequest(
            dataset_id=dataset, table=table, min_age_seconds=0, max_rows_per_table=max_rows
        )
    )
    assert len(answer.tables) == 1, answer
    result: archiver_pb2.TableArchiveResult = answer.tables[0]
    assert result.rows > 0 and (not max_rows or result.rows <= max_rows), result
    return result


@dataclass
class ReadAnswer:
    table: pa.Table | None  # the Arrow answer
    rows: list[dict[str, Any]]  # the JSON answer
    stats: reader_pb2.ReadStats
    messages: int


def read_request(
    dataset: str,
    table: str,
    start: int | None,
    end: int | None,
    *,
    columns: Sequence[str] = (),
    limit: int = 0,
    json_rows: bool = False,
) -> reader_pb2.ReadRangeRequest:
    request = reader_pb2.ReadRangeRequest(
        dataset_id=dataset,
        table=table,
        columns=list(columns),
        limit=limit,
        format=reader_pb2.OUTPUT_FORMAT_JSON if json_rows else reader_pb2.OUTPUT_FORMAT_ARROW_IPC,
    )
    if start is not None:
        request.start_time.CopyFrom(ts(start))
    if end is not None:
        request.end_time.CopyFrom(ts(end))
    return request


async def read(
    stub: reader_pb2_grpc.ReaderServiceAsyncStub,
    request: reader_pb2.ReadRangeRequest,
    deadline: float | None = None,
) -> ReadAnswer:
    """One ReadRange call, checking the shape of the stream: data messages, then exactly one
    stats message at the end; each Arrow message a self-contained IPC stream of one schema."""
    messages = [m async for m in stub.ReadRange(request, timeout=deadline)]
    assert messages, "ReadRange sent nothing (not even stats)"
    *data, last = messages
    assert last.HasField("stats"), "the last message carries no stats"
    assert not last.rows and not last.arrow_ipc, "the stats message also carries rows"
    assert all(not m.HasField("stats") for m in data), "stats before the last message"
    tables = []
    rows: list[dict[str, Any]] = []
    for m in data:
        if m.arrow_ipc:
            assert not m.rows
            tables.append(pa.ipc.open_stream(pa.py_buffer(m.arrow_ipc)).read_all())
        else:
            assert m.rows, "an empty data message"
            rows += [json_format.MessageToDict(s) for s in m.rows]
    if tables:
        assert not rows, "Arrow and JSON rows in one answer"
        assert all(t.schema == tables[0].schema for t in tables), "schema changed mid-stream"
    return ReadAnswer(pa.concat_tables(tables) if tables else None, rows, last.stats, len(data))


def arrow_rows(table: pa.Table | None, oracle: Oracle) -> list[dict[str, Any]]:
    """The Arrow answer as dicts, JSON fields parsed back into objects."""
    if table is None:
        return []
    out: list[dict[str, Any]] = table.to_pylist()
    for row in out:
        for name, value in row.items():
            if value is not None and oracle.types.get(name) == JSON:
                row[name] = orjson.loads(value)
    return out


def _small(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    return t


def first_difference(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> str:
    for i, (a, e) in enumerate(zip(actual, expected, strict=False)):
        if a != e:
            return f"row {i}: got {a}, expected {e}"
    return f"got {len(actual)} rows, expected {len(expected)}"


def check_arrow(
    answer: ReadAnswer,
    oracle: Oracle,
    start: int,
    end: int,
    columns: Sequence[str] = (),
    limit: int = 0,
) -> list[dict[str, Any]]:
    """Assert that an Arrow answer is the oracle's, with the oracle's column types."""
    expected = oracle.expected(start, end, columns, limit)
    if answer.table is not None:
        # Strings and bytes may come with 32- or 64-bit offsets.
        got_types = {f.name: _small(f.type) for f in answer.table.schema}
        want_types = oracle.arrow_types(columns)
        assert got_types == want_types, f"column types {got_types} != {want_types}"
        names = answer.table.column_names
        assert names[0] == oracle.time_field or (columns and names == oracle.names(columns))
        if columns:
            assert names == oracle.names(columns), f"columns {names}"
    actual = arrow_rows(answer.table, oracle)
    assert actual == expected, f"[{start}, {end}) {first_difference(actual, expected)}"
    assert answer.stats.rows_returned == len(expected)
    return actual


def check_json(
    answer: ReadAnswer,
    oracle: Oracle,
    start: int,
    end: int,
    columns: Sequence[str] = (),
    limit: int = 0,
) -> None:
    assert answer.table is None, "asked for JSON rows, got Arrow"
    expected = oracle.expected_json(start, end, columns, limit)
    assert answer.rows == expected, f"[{start}, {end}) {first_difference(answer.rows, expected)}"
    assert answer.stats.rows_returned == len(expected)


# -- the catalog and the buffer, read directly -------------------------------------------------


@dataclass(frozen=True)
class BlockRow:
    object_key: str
    byte_offset: int
    byte_length: int
    row_count: int
    min_time: int
    max_time: int


async def overlapping_blocks(
    url: str, dataset: str, table: str, start: int, end: int
) -> list[BlockRow]:
    """The active cold blocks whose time range overlaps [start, end), from the block index."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT o.object_key, b.byte_offset, b.byte_length, b.row_count, b.min_time, "
            "b.max_time FROM fusou_blocks b JOIN fusou_files f USING (file_id) "
            "JOIN fusou_objects o USING (object_id) JOIN fusou_tables t USING (table_id) "
            "WHERE t.dataset_id = $1 AND t.table_name = $2 AND f.state = 'active' "
            "AND b.min_time < $4 AND b.max_time >= $3 ORDER BY f.file_id, b.block_no",
            dataset,
            table,
            start,
            end,
        )
    finally:
        await conn.close()
    return [BlockRow(**dict(r)) for r in rows]


async def hot_count(url: str, dataset: str, table: str, start: int, end: int) -> int:
    conn = await asyncpg.connect(url)
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM fusou_buffer b JOIN fusou_tables t USING (table_id) "
            "WHERE t.dataset_id = $1 AND t.table_name = $2 "
            "AND b.event_time >= $3 AND b.event_time < $4",
            dataset,
            table,
            start,
            end,
        )
    finally:
        await conn.close()
    return n


async def check_stats(
    answer: ReadAnswer,
    oracle: Oracle,
    url: str,
    dataset: str,
    table: str,
    start: int,
    end: int,
    limit: int = 0,
    *,
    compacted: bool = False,
) -> None:
    """The stats of a read agree with the oracle and with the buffer and block index (a read
    with an empty cache: every overlapping block is fetched). Compaction drops duplicates no
    read can return, so once ``compacted`` fewer duplicates may be left to remove."""
    s = answer.stats
    blocks = await overlapping_blocks(url, dataset, table, start, end)
    hot = await hot_count(url, dataset, table, start, end)
    assert s.hot_rows == hot
    assert s.cold_rows == sum(b.row_count for b in blocks)
    assert s.blocks_fetched + s.cache_hits == len(blocks)
    # Every in-range row is either hot or in one of those blocks, exactly once.
    cold_in_range = len(oracle.in_range(start, end)) - hot
    if compacted:
        assert s.duplicates_removed <= oracle.duplicates(start, end)
        dropped = oracle.duplicates(start, end) - s.duplicates_removed
        assert 0 <= cold_in_range - dropped <= s.cold_rows
    else:
        assert 0 <= cold_in_range <= s.cold_rows
        assert s.duplicates_removed == oracle.duplicates(start, end)
    winners = len(oracle.winners(start, end))
    assert s.rows_returned == (min(limit, winners) if limit else winners)
    if s.blocks_fetched:
        assert 1 <= s.get_requests <= s.blocks_fetched
        if not s.cache_hits:
            assert s.bytes_fetched >= sum(b.byte_length for b in blocks)
    else:
        assert s.get_requests == 0 and s.bytes_fetched == 0
