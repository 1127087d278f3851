"""ReaderService messages to and from the Reader's values: the read a ReadRangeRequest asks
for, the messages answering it, and the tables' stats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable
from typing import Any

from google.protobuf import struct_pb2

from fusou.api.reader.answers import (
    ARROW_FIELD,
    JSON_ROWS_PER_MESSAGE,
    MESSAGES_PER_CPU_CALL,
    arrow_ipc_message,
    arrow_messages,
    arrow_rows_per_message,
    mark_json_fields,
    to_structs,
)
from fusou.api.reader.v1 import reader_pb2
from fusou.api.timestamps import required_range
from fusou.catalog.stats import TableStats
from fusou.cpu import run_cpu, run_cpu_unless_small
from fusou.errors import FieldViolation, InvalidArgument
from fusou.read.filters import Filter, Op
from fusou.read.reader import SMALL_RESULT_ROWS, ReadRequest, ReadResult, ReadStats


def read_request(request: reader_pb2.ReadRangeRequest) -> ReadRequest:
    """The read ``request`` asks for; INVALID_ARGUMENT naming each missing or unplaceable time
    (the Reader checks the rest)."""
    span = required_range(request)
    return ReadRequest(
        dataset_id=request.dataset_id,
        table=request.table,
        start=span.start,
        end=span.end,
        columns=list(dict.fromkeys(request.columns)),
        limit=request.limit,
        ordered=span.ordered,
        filters=read_filters(request.filters),
    )


_OPS = {
    reader_pb2.FILTER_OP_EQ: Op.EQ,
    reader_pb2.FILTER_OP_NE: Op.NE,
    reader_pb2.FILTER_OP_LT: Op.LT,
    reader_pb2.FILTER_OP_LE: Op.LE,
    reader_pb2.FILTER_OP_GT: Op.GT,
    reader_pb2.FILTER_OP_GE: Op.GE,
    reader_pb2.FILTER_OP_IN: Op.IN,
    reader_pb2.FILTER_OP_IS_NULL: Op.IS_NULL,
    reader_pb2.FILTER_OP_IS_NOT_NULL: Op.IS_NOT_NULL,
}


def _operand(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    raise ValueError("must be a number, a string or a boolean (a null: use FILTER_OP_IS_NULL)")


def read_filters(filters: Iterable[reader_pb2.Filter]) -> list[Filter]:
    """The request's filters as the Reader's; INVALID_ARGUMENT naming each operation or value
    no filter can have (the Reader checks them against the table)."""
    out: list[Filter] = []
    violations: list[FieldViolation] = []
    for i, f in enumerate(filters):
        op = _OPS.get(f.op)
        if op is None:
            what = "must be set" if f.op == 0 else f"{f.op} is not a FilterOp the proto defines"
            violations.append(FieldViolation(f"filters[{i}].op", what))
            continue
        values = []
        for j, value in enumerate(f.values):
            try:
                values.append(_operand(value))
            except ValueError as exc:
                violations.append(FieldViolation(f"filters[{i}].values[{j}]", str(exc)))
        out.append(Filter(f.column, op, tuple(values)))
    if violations:
        raise InvalidArgument.many(violations)
    return out


def read_stats(s: ReadStats) -> reader_pb2.ReadStats:
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
        rows_filtered=s.rows_filtered,
        blocks_pruned=s.blocks_pruned,
    )


def get_stats_response(stats: Iterable[TableStats]) -> reader_pb2.GetStatsResponse:
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
                raw_rows=s.raw_rows,
                optimized_rows=s.optimized_rows,
                pending_deletions=s.pending_deletions,
            )
            for s in stats
        ]
    )


async def read_range_answers(
    result: ReadResult, output_format: reader_pb2.OutputFormat.ValueType
) -> AsyncGenerator[reader_pb2.ReadRangeResponse | bytes, None]:
    """The messages answering a read: its rows in ``output_format``, then its stats.

    Arrow messages come already serialized (see ``arrow_ipc_message``): the server's interceptor
    passes bytes through. Close the generator when leaving it early (``contextlib.aclosing``):
    that cancels the encoding in flight.
    """
    table = result.table
    schema = result.info.latest
    if output_format == reader_pb2.OUTPUT_FORMAT_ARROW_IPC:
        table = mark_json_fields(table, schema)
        if table.num_rows == 0:
            # No rows still tells the client the columns and their types.
            yield arrow_ipc_message(table, ARROW_FIELD)
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
                run_cpu_unless_small(small, arrow_messages, table, groups[i], per_message)
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
    yield reader_pb2.ReadRangeResponse(stats=read_stats(result.stats))
