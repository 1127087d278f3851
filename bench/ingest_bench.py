"""Ingest throughput through gRPC against a raw asyncpg COPY of the same rows, in one run.

    python bench/ingest_bench.py [--rows 300000] [--json-rows 100000] [--clients 4]

The server runs in its own process; 4 clients send pre-serialized requests of 1,000 rows
(Arrow IPC, then JSON Structs). The baseline copies the same rows, already encoded as the
buffer stores them, with asyncpg's copy_records_to_table over 4 connections in batches of
1,000 into a table shaped like the buffer (same columns and indexes). Targets: Arrow IPC at
least 0.5x the raw COPY rate; JSON Structs at least 50,000 rows/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

import asyncpg
import grpc
import pyarrow as pa

from bench.common import (
    CpuMeter,
    Rate,
    ServerProcess,
    Stopwatch,
    battle_rows,
    bench_database,
    server_process,
)
from fusou.api.ingest.v1 import ingest_pb2
from fusou.buffer.copy_format import COPY_COLUMNS
from fusou.records.avro_datum import encode_datums
from fusou.records.batch import batch_from_arrow, conform
from fusou.records.dedup import dedup_keys
from fusou.records.wire_formats import arrow_ipc_bytes
from fusou.schema import TableSchema, merge_batch_schema

BATCH = 1000


def _chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]


def arrow_requests(rows: list[dict[str, Any]], table: str) -> list[bytes]:
    return [
        ingest_pb2.IngestRequest(
            dataset_id="bench", table=table, arrow_ipc=arrow_ipc_bytes(pa.Table.from_pylist(chunk))
        ).SerializeToString()
        for chunk in _chunks(rows)
    ]


def struct_requests(rows: list[dict[str, Any]], table: str) -> list[bytes]:
    out = []
    for chunk in _chunks(rows):
        req = ingest_pb2.IngestRequest(dataset_id="bench", table=table)
        for row in chunk:
            req.rows.add().update(row)
        out.append(req.SerializeToString())
    return out


async def send_all(
    server: ServerProcess, requests: Sequence[bytes], clients: int
) -> tuple[float, str]:
    queue = list(reversed(requests))
    meter = CpuMeter(server.pid)
    async with grpc.aio.insecure_channel(
        server.target, options=[("grpc.max_send_message_length", 64 << 20)]
    ) as channel:
        call = channel.unary_unary(
            "/fusou.ingest.v1.IngestService/Ingest",
            request_serializer=lambda b: b,
            response_deserializer=ingest_pb2.IngestResponse.FromString,
        )
        await call(requests[0])  # warm-up: creates the table and its schema version
        queue.pop()

        async def client() -> None:
            while queue:
                await call(queue.pop())

        before = meter.sample()
        with Stopwatch() as sw:
            await asyncio.gather(*(client() for _ in range(clients)))
        cpu = meter.per_row(before, meter.sample(), BATCH * (len(requests) - 1))
    return sw.seconds, cpu


def encoded_records(rows: list[dict[str, Any]]) -> list[list[tuple[Any, ...]]]:
    """The same rows as the buffer stores them, ready for COPY (not timed)."""
    batch = batch_from_arrow(pa.Table.from_pylist(rows), "timestamp")
    schema = merge_batch_schema(TableSchema.initial("timestamp"), batch.types).schema
    types = {f.name: f.type for f in schema.fields}
    table = conform(batch, types, schema.names)
    datums = encode_datums(table, schema)
    keys = dedup_keys(table, types)
    times = table.column("timestamp").to_pylist()
    records = [
        (i + 1, 1, times[i], times[i], 1, bytes(keys[i]), datums.row(i)) for i in range(len(rows))
    ]
    return [records[i : i + BATCH] for i in range(0, len(records), BATCH)]


async def raw_copy(
    url: str, batches: list[list[tuple[Any, ...]]], clients: int
) -> tuple[float, str]:
    conns = [await asyncpg.connect(url) for _ in range(clients)]
    await conns[0].execute("CREATE TABLE bench_raw_copy (LIKE fusou_buffer INCLUDING ALL)")
    queue = list(reversed(batches))
    columns = list(COPY_COLUMNS)

    async def client(conn: asyncpg.Connection) -> None:
        while queue:
            batch = queue.pop()
            async with conn.transaction():
                await conn.copy_records_to_table("bench_raw_copy", records=batch, columns=columns)

    meter = CpuMeter()
    try:
        before = meter.sample()
        with Stopwatch() as sw:
            await asyncio.gather(*(client(c) for c in conns))
        cpu = meter.per_row(before, meter.sample(), sum(len(b) for b in batches))
    finally:
        for c in conns:
            await c.close()
    return sw.seconds, cpu


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--json-rows", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args(argv)

    rows = battle_rows(args.rows)
    json_rows = rows[: args.json_rows]
    print(
        f"preparing {len(rows):,} rows (~{len(json.dumps(rows[0]))} bytes of JSON each) ...",
        file=sys.stderr,
    )
    arrow_reqs = arrow_requests(rows, "arrow")
    struct_reqs = struct_requests(json_rows, "json")
    copy_batches = encoded_records(rows)

    async with bench_database() as (_, url):
        copy_s, copy_cpu = await raw_copy(url, copy_batches, args.clients)
        async with server_process(url) as server:
            arrow_s, arrow_cpu = await send_all(server, arrow_reqs, args.clients)
            json_s, json_cpu = await send_all(server, struct_reqs, args.clients)
        conn = await asyncpg.connect(url)
        try:
            stored = await conn.fetchval("SELECT count(*) FROM fusou_buffer")
        finally:
            await conn.close()
    assert stored == len(rows) + len(json_rows), f"expected every row stored, found {stored}"

    raw = Rate("raw asyncpg COPY (bytea datums, 4 conns, 1k batches)", len(rows), copy_s)
    arrow = Rate("Ingest, Arrow IPC, 4 clients, 1k-row batches", len(rows) - BATCH, arrow_s)
    js = Rate("Ingest, JSON Struct, 4 clients, 1k-row batches", len(json_rows) - BATCH, json_s)
    for r, cpu in ((raw, copy_cpu), (arrow, arrow_cpu), (js, json_cpu)):
        print(f"{r.label:58s} {r.per_second:>12,.0f} rows/s   ({cpu})")
    ratio = arrow.per_second / raw.per_second
    print(
        f"Arrow IPC / raw COPY ratio: {ratio:.2f} (target >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})"
    )
    print(
        f"JSON Struct: {js.per_second:,.0f} rows/s (target >= 50,000: "
        f"{'met' if js.per_second >= 50_000 else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
