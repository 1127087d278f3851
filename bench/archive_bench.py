"""Archive throughput (buffer -> cold Avro, deflate) against fastavro.writer, and peak memory.

    python -m bench.archive_bench [--rows 1000000] [--clients 4]

1. Load ``--rows`` synthetic battle records into the buffer of a fresh database through the
   Ingest RPC (Arrow IPC, 10,000 rows per request, 4 concurrent clients) of a
   ``fusou serve ingest archiver`` process. Requests are generated in chunks on the fly, never
   all at once.
2. Start a fresh ``fusou serve archiver`` process (FUSOU_ARCHIVE_MIN_AGE_S=0; publication to
   the lake off, so that the call measures the move alone, unless ``--lake``: then the call
   also publishes the rows as Iceberg files, as Archive does by default) and time one
   Archive call through gRPC: rows/s from the buffer to the (local file://) object store.
   (The buffer is ANALYZEd and a CHECKPOINT taken before, untimed: see ``settle``.)
   Afterwards the buffer must be empty and the catalog must hold every row as cold rows.
   Peak memory is VmHWM of that process (so it covers only the archive) and of its worker
   children, read just before it stops.
3. The peer, in the same run: ``fastavro.writer`` encoding the same records from dicts, with
   the same writer schema (the table's schema from the catalog plus ``_fusou_seq`` and
   ``_fusou_ingested_at``), codec deflate, into memory. The dicts are built before each timed
   call (chunks of 100,000 rows), and the timed calls are summed.

Targets: the archiver at least 1.5x the fastavro.writer rate; peak memory under 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import fastavro
import grpc
import psutil
import pyarrow as pa

from bench.common import (
    T0,
    CpuMeter,
    Rate,
    ServerProcess,
    Stopwatch,
    battle_rows,
    bench_database,
    server_process,
)
from fusou.api.archiver.v1 import archiver_pb2, archiver_pb2_grpc
from fusou.api.ingest.v1 import ingest_pb2
from fusou.formats.avro_container import INGESTED_AT_FIELD, SEQ_FIELD, cold_schema
from fusou.records.wire_formats import arrow_ipc_bytes
from fusou.schema import TableSchema

DATASET = "bench"
TABLE = "battle"
CHUNK = 10_000  # rows per generated chunk and per Ingest request
PEER_CHUNK = 100_000  # rows per timed fastavro.writer call
STEP_MS = 86
MB = 1024 * 1024

# -- the synthetic records, generated chunk by chunk (the same rows every time) ---------------


def chunk_sizes(n: int) -> list[int]:
    return [min(CHUNK, n - start) for start in range(0, n, CHUNK)]


def chunk_rows(i: int, size: int) -> list[dict[str, Any]]:
    """Chunk ``i`` of the record stream: deterministic, times and api_no continue across chunks."""
    rows = battle_rows(size, seed=1000 + i, start=T0 + i * CHUNK * STEP_MS, step_ms=STEP_MS)
    for k, row in enumerate(rows):
        row["api_no"] = i * CHUNK + k
    return rows


def ingest_request(i: int, size: int) -> bytes:
    table = pa.Table.from_pylist(chunk_rows(i, size))
    return ingest_pb2.IngestRequest(
        dataset_id=DATASET, table=TABLE, request_id=f"bench-{i}", arrow_ipc=arrow_ipc_bytes(table)
    ).SerializeToString()


# -- phase 1: load the buffer -----------------------------------------------------------------


async def load_buffer(server: ServerProcess, n: int, clients: int) -> Rate:
    sizes = chunk_sizes(n)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=2 * clients)
    written = 0

    async def produce() -> None:
        # Generated in a thread while the clients send: at most a few requests in memory.
        for i, size in enumerate(sizes[1:], start=1):
            await queue.put(await asyncio.to_thread(ingest_request, i, size))
        for _ in range(clients):
            await queue.put(None)

    async with grpc.aio.insecure_channel(
        server.target, options=[("grpc.max_send_message_length", 64 * MB)]
    ) as channel:
        call = channel.unary_unary(
            "/fusou.ingest.v1.IngestService/Ingest",
            request_serializer=lambda b: b,
            response_deserializer=ingest_pb2.IngestResponse.FromString,
        )

        async def client() -> None:
            nonlocal written
            while (request := await queue.get()) is not None:
                response = await call(request, timeout=600)
                written += response.rows_written
                if written // CHUNK % 20 == 0:
                    print(f"\r  loaded {written:,} / {n:,} rows", end="", file=sys.stderr)

        with Stopwatch() as sw:
            # The first request alone: it creates the table and its schema version.
            written += (await call(ingest_request(0, sizes[0]), timeout=600)).rows_written
            await asyncio.gather(produce(), *(client() for _ in range(clients)))
        print(file=sys.stderr)
    assert written == n, f"ingested {written} rows, expected {n}"
    return Rate("Ingest (Arrow IPC, load phase)", n, sw.seconds)


async def settle(url: str) -> None:
    """Not timed: fresh planner statistics and a checkpoint after the bulk load.

    Without ANALYZE the planner still believes the buffer is nearly empty (autovacuum may or
    may not have run by now) and sorts every row before the archiver's cursor returns the
    first one (~0.6 s per million rows) instead of walking the (table_id, event_time) index;
    the CHECKPOINT keeps the load's WAL from being flushed during the timed call.
    """
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ANALYZE fusou_buffer")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


# -- phase 2: one Archive call ----------------------------------------------------------------


@dataclass
class ProcessPeak:
    pid: int
    name: str
    rss_before_mb: float  # VmRSS just before the Archive call
    peak_mb: float  # VmHWM read after it


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(f"no {field} in /proc/{pid}/status")


def _tree(pid: int) -> list[psutil.Process]:
    server = psutil.Process(pid)
    return [server, *server.children(recursive=True)]


def _label(p: psutil.Process, server_pid: int) -> str:
    if p.pid == server_pid:
        return "server"
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return "child"
    if "resource_tracker" in cmd:
        return "resource tracker"
    return "worker" if "multiprocessing" in cmd else "child"


@dataclass
class ArchiveResult:
    rate: Rate
    response: Any  # archiver_pb2.ArchiveResponse
    cpu: str
    peaks: list[ProcessPeak]


async def archive_once(url: str, lake: bool = False) -> ArchiveResult:
    publish = "true" if lake else "false"
    async with server_process(
        url, "archiver", FUSOU_ARCHIVE_MIN_AGE_S="0", FUSOU_LAKE_PUBLISH=publish
    ) as server:
        before_rss = {p.pid: _status_kb(p.pid, "VmRSS") for p in _tree(server.pid)}
        meter = CpuMeter(server.pid)
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = archiver_pb2_grpc.ArchiverServiceStub(channel)
            cpu_before = meter.sample()
            with Stopwatch() as sw:
                response = await stub.Archive(
                    archiver_pb2.ArchiveRequest(dataset_id=DATASET, table=TABLE), timeout=3600
                )
            cpu_after = meter.sample()
        rows = int(response.total_rows)
        peaks = [
            ProcessPeak(
                p.pid,
                _label(p, server.pid),
                before_rss.get(p.pid, 0) / 1024,
                _status_kb(p.pid, "VmHWM") / 1024,
            )
            for p in _tree(server.pid)
        ]
    return ArchiveResult(
        Rate("Archive RPC (buffer -> cold Avro, deflate)", rows, sw.seconds),
        response,
        CpuMeter.per_row(cpu_before, cpu_after, max(rows, 1)),
        peaks,
    )


async def check_catalog(url: str, n: int) -> TableSchema:
    """The buffer is empty, the catalog holds n cold rows; returns the table's schema."""
    conn = await asyncpg.connect(url)
    try:
        hot = await conn.fetchval("SELECT count(*) FROM fusou_buffer")
        cold = await conn.fetchval(
            "SELECT coalesce(sum(f.row_count), 0) FROM fusou_files f "
            "JOIN fusou_objects o USING (object_id) "
            "WHERE o.kind = 'cold' AND f.state = 'active'"
        )
        indexed = await conn.fetchval("SELECT coalesce(sum(row_count), 0) FROM fusou_blocks")
        summary = await conn.fetchrow(
            "SELECT hot_rows, cold_rows FROM fusou_hot_cold_summary "
            "WHERE dataset_id = $1 AND table_name = $2",
            DATASET,
            TABLE,
        )
        versions = await conn.fetch(
            "SELECT s.version, s.avro_schema FROM fusou_table_schemas s "
            "JOIN fusou_tables t USING (table_id) "
            "WHERE t.dataset_id = $1 AND t.table_name = $2 ORDER BY s.version",
            DATASET,
            TABLE,
        )
    finally:
        await conn.close()
    assert hot == 0, f"{hot} rows left in the buffer"
    assert cold == n, f"catalog holds {cold} cold rows, expected {n}"
    assert indexed == n, f"block index holds {indexed} rows, expected {n}"
    assert summary is not None and (summary["hot_rows"], summary["cold_rows"]) == (0, n)
    assert len(versions) == 1, f"expected one schema version, found {len(versions)}"
    raw = versions[0]["avro_schema"]
    return TableSchema.from_avro(
        json.loads(raw) if isinstance(raw, str) else raw, versions[0]["version"]
    )


# -- phase 3: the peer ------------------------------------------------------------------------


@dataclass
class PeerResult:
    rate: Rate
    bytes_written: int
    json_bytes: int


def peer_chunks(n: int) -> Iterator[list[dict[str, Any]]]:
    """The same records in groups of PEER_CHUNK, with the two metadata fields filled in."""
    sizes = chunk_sizes(n)
    per_group = PEER_CHUNK // CHUNK
    ingested_at = int(time.time() * 1000)
    seq = 0
    for g in range(0, len(sizes), per_group):
        rows: list[dict[str, Any]] = []
        for i in range(g, min(g + per_group, len(sizes))):
            rows.extend(chunk_rows(i, sizes[i]))
        for row in rows:
            seq += 1
            row[SEQ_FIELD] = seq
            row[INGESTED_AT_FIELD] = ingested_at
        yield rows


def fastavro_peer(n: int, schema: TableSchema) -> PeerResult:
    parsed = fastavro.parse_schema(cold_schema(schema))
    seconds = 0.0
    written = 0
    json_bytes = 0
    for rows in peer_chunks(n):
        # Not timed: the JSON size of the records, for the compression figure.
        json_bytes += sum(
            len(json.dumps({k: v for k, v in r.items() if not k.startswith("_fusou_")}))
            for r in rows
        )
        buf = io.BytesIO()
        with Stopwatch() as sw:
            fastavro.writer(buf, parsed, rows, codec="deflate")
        seconds += sw.seconds
        written += buf.tell()
    return PeerResult(Rate("fastavro.writer from dicts (deflate)", n, seconds), written, json_bytes)


# -- main -------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--lake",
        action="store_true",
        help="publish to the lake in the timed call too (FUSOU_LAKE_PUBLISH=true)",
    )
    args = parser.parse_args(argv)
    n: int = args.rows
    if n < 1:
        parser.error("--rows must be at least 1")

    async with bench_database() as (_, url):
        print(f"loading {n:,} rows into the buffer ...", file=sys.stderr)
        async with server_process(url, "ingest archiver", FUSOU_ARCHIVE_MIN_AGE_S="0") as server:
            load = await load_buffer(server, n, args.clients)
        await settle(url)
        print(f"archiving {n:,} rows ...", file=sys.stderr)
        archived = await archive_once(url, lake=args.lake)
        schema = await check_catalog(url, n)
    print(f"fastavro.writer on the same {n:,} rows ...", file=sys.stderr)
    peer = fastavro_peer(n, schema)

    arch = archived.rate
    table = archived.response.tables[0]
    assert arch.rows == n, f"archived {arch.rows} rows, expected {n}"
    ratio = arch.per_second / peer.rate.per_second
    server_peak = next(p.peak_mb for p in archived.peaks if p.name == "server")
    total_peak = sum(p.peak_mb for p in archived.peaks)

    print(f"rows: {n:,} synthetic battle records; load: {load.per_second:,.0f} rows/s (Ingest)")
    print(
        f"{arch.label:46s} {arch.per_second:>10,.0f} rows/s  ({arch.seconds:.2f} s; {archived.cpu})"
    )
    print(
        f"{peer.rate.label:46s} {peer.rate.per_second:>10,.0f} rows/s  ({peer.rate.seconds:.2f} s; "
        f"CPU us/row: {peer.rate.seconds / n * 1e6:.1f}, one thread)"
    )
    print(f"archiver / fastavro.writer: {ratio:.2f}x (target >= 1.5x: {verdict(ratio >= 1.5)})")
    print("peak RSS during the Archive call (VmHWM of a fresh archiver process):")
    for p in archived.peaks:
        print(
            f"  {p.name:18s} pid {p.pid:<8d} peak {p.peak_mb:7.1f} MB  "
            f"(RSS before the call {p.rss_before_mb:6.1f} MB)"
        )
    print(
        f"  server process: {server_peak:.1f} MB (target < 300 MB: {verdict(server_peak < 300)}); "
        f"with its children: {total_peak:.1f} MB ({verdict(total_peak < 300)})"
    )
    print(
        f"archiver wrote {table.bytes:,} bytes in {table.files} file(s), {table.blocks} blocks "
        f"({table.bytes / n:.1f} B/row); compression ratio {table.compression_ratio:.2f}x "
        f"over the stored datums ({table.uncompressed_bytes:,} bytes), "
        f"{peer.json_bytes / table.bytes:.1f}x over JSON ({peer.json_bytes:,} bytes)"
    )
    print(
        f"fastavro.writer wrote {peer.bytes_written:,} bytes ({peer.bytes_written / n:.1f} B/row),"
        f" {peer.json_bytes / peer.bytes_written:.1f}x over JSON"
    )
    print(
        f"checked: buffer empty, catalog cold rows = block index rows = {n:,}, "
        f"orphans deleted {archived.response.orphans_deleted}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
