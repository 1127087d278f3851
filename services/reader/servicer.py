"""ReaderService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pyarrow as pa
from google.protobuf import timestamp_pb2
from grpc import aio

from fusou.api.reader.v1 import reader_pb2, reader_pb2_grpc
from fusou.catalog.stats import table_stats
from fusou.cpu import run_cpu, run_cpu_unless_small
from fusou.errors import FieldViolation, InvalidArgument
from fusou.read.output import arrow_ipc_message, mark_json_fields, to_structs
from fusou.read.reader import SMALL_RESULT_ROWS, Reader, ReadRequest, ReadStats
from fusou.server import metrics
from fusou.timestamps import timestamp_violations

Context = aio.ServicerContext[Any, Any]

_ARROW_FIELD = reader_pb2.ReadRangeResponse.DESCRIPTOR.fields_by_name["arrow_ipc"].number
JSON_ROWS_PER_MESSAGE = 1000
# Arrow messages of about this size: under the 4 MiB a gRPC client accepts by default, and large,
# since each message costs about a millisecond of CPU besides its bytes (measured: a one-hour
# read took 40% less server CPU in 6 MB messages than in 1.5 MB ones). Each is encoded while the
# previous ones are written, in buffers of a size the allocator reuses.
ARROW_MESSAGE_BYTES = 3 * 1024 * 1024
# Messages encoded per trip to the CPU thread.
MESSAGES_PER_CPU_CALL = 2


def arrow_rows_per_message(table: pa.Table) -> int:
    """Rows per Arrow message, from the table's average row size (one message of a very wide
    row may still exceed the target; FUSOU_GRPC_MAX_MESSAGE_BYTES bounds it)."""
    # Whole buffers, also of sliced blocks: an overestimate (smaller messages), but cheap where
    # ``nbytes`` works out the byte ranges in use (0.7 ms for a one-hour answer).
    per_row = max(1, table.get_total_buffer_size() // table.num_rows) if table.num_rows else 1
    return max(1, ARROW_MESSAGE_BYTES // per_row)


def _arrow_messages(table: pa.Table, starts: list[int], rows: int) -> list[bytes]:
    return [arrow_ipc_message(table.slice(start, rows), _ARROW_FIELD) for start in starts]


def _millis(ts: timestamp_pb2.Timestamp) -> int:
    # Rounded up: for whole-millisecond times t, start <= t < end holds in nanoseconds exactly
    # when ceil(start) <= t < ceil(end) holds in milliseconds.
    return ts.seconds * 1000 + -(-ts.nanos // 1_000_000)


def _stats(s: ReadStats) -> reader_pb2.ReadStats:
    return reader_pb2.ReadStats(
        rows_returned=s.rows_returned,
        hot_rows=s.hot_rows,
        cold_rows=s.cold_rows,
        blocks_fetched=s.blocks_fetched,
        bytes_fetched=s.bytes_fetched,
        get_requests=s.get_requests,
        cache_hits=s.cache_hits,
        duplicates_removed=s.duplicates_removed,
        replans=s.replans,
    )


class ReaderServicer(reader_pb2_grpc.ReaderServiceServicer):
    def __init__(self, pool: asyncpg.Pool, reader: Reader) -> None:
        self._pool = pool
        self._reader = reader

    # Arrow messages are yielded already serialized (see arrow_ipc_message); the server's
    # interceptor passes bytes through, which the generated signature does not know about.
    async def ReadRange(  # type: ignore[override]
        self, request: reader_pb2.ReadRangeRequest, context: Context
    ) -> AsyncIterator[reader_pb2.ReadRangeResponse | bytes]:
        violations: list[FieldViolation] = []
        for name in ("start_time", "end_time"):
            if not request.HasField(name):
                violations.append(FieldViolation(name, "is required"))
            else:
                violations.extend(timestamp_violations(name, getattr(request, name)))
        if violations:
            raise InvalidArgument.many(violations)
        start_ns = request.start_time.seconds * 10**9 + request.start_time.nanos
        end_ns = request.end_time.seconds * 10**9 + request.end_time.nanos
        read = ReadRequest(
            dataset_id=request.dataset_id,
            table=request.table,
            start=_millis(request.start_time),
            end=_millis(request.end_time),
            columns=list(dict.fromkeys(request.columns)),
            limit=request.limit,
            ordered=end_ns > start_ns,
        )
        remaining = context.time_remaining()
        # The client's deadline bounds the work: past it, everything in flight is cancelled.
        async with asyncio.timeout(remaining):
            result = await self._reader.read(read)
        metrics.READER_CACHE_HITS.inc(result.stats.cache_hits)
        metrics.READER_CACHE_MISSES.inc(result.stats.blocks_fetched)
        metrics.READER_GETS.inc(result.stats.get_requests)
        table = result.table
        schema = result.info.latest
        if request.format == reader_pb2.OUTPUT_FORMAT_ARROW_IPC:
            table = mark_json_fields(table, schema)
            if table.num_rows == 0:
                # No rows still tells the client the columns and their types.
                yield arrow_ipc_message(table, _ARROW_FIELD)
            per_message = arrow_rows_per_message(table)
            starts = list(range(0, table.num_rows, per_message))
            # The first message alone, so that bytes leave as soon as one is encoded.
            groups = [
                starts[i : i + MESSAGES_PER_CPU_CALL]
                for i in range(1, len(starts), MESSAGES_PER_CPU_CALL)
            ]
            if starts:
                groups.insert(0, starts[:1])
            small = table.num_rows < SMALL_RESULT_ROWS

            def encode(i: int) -> asyncio.Future[list[bytes]]:
                return asyncio.ensure_future(
                    run_cpu_unless_small(small, _arrow_messages, table, groups[i], per_message)
                )

            # The next group is encoded on the CPU thread while this one is written.
            pending = encode(0) if groups else None
            try:
                for i in range(len(groups)):
                    assert pending is not None
                    messages = await pending
                    pending = encode(i + 1) if i + 1 < len(groups) else None
                    for message in messages:
                        yield message  # a serialized ReadRangeResponse
            finally:
                if pending is not None:
                    pending.cancel()
        else:
            for start in range(0, table.num_rows, JSON_ROWS_PER_MESSAGE):
                chunk = table.slice(start, JSON_ROWS_PER_MESSAGE)
                rows = await run_cpu(to_structs, chunk, schema)
                yield reader_pb2.ReadRangeResponse(rows=rows)
        yield reader_pb2.ReadRangeResponse(stats=_stats(result.stats))

    async def GetStats(
        self, request: reader_pb2.GetStatsRequest, context: Context
    ) -> reader_pb2.GetStatsResponse:
        stats = await table_stats(self._pool, request.dataset_id, request.table)
        return reader_pb2.GetStatsResponse(
            tables=[
                reader_pb2.TableStats(
                    dataset_id=s.dataset_id,
                    table=s.table,
                    schema_version=s.schema_version,
                    hot_rows=s.hot_rows,
                    hot_bytes=s.hot_bytes,
                    oldest_hot_row_age_seconds=s.oldest_hot_row_age_s,
                    cold_files=s.cold_files,
                    cold_rows=s.cold_rows,
                    cold_bytes=s.cold_bytes,
                    compression_ratio=s.compression_ratio,
                    raw_fragments=s.raw_fragments,
                    raw_bytes=s.raw_bytes,
                    optimized_files=s.optimized_files,
                    optimized_bytes=s.optimized_bytes,
                    quarantined_rows=s.quarantined_rows,
                )
                for s in stats
            ]
        )
