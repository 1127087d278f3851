"""ReadRange latency and throughput against pyarrow.dataset over hourly Parquet files, in one run.

    python -m bench.read_bench [--rows 1000000] [--repeat 30] [--full-repeat 3]

1. A day of synthetic battle records: ``--rows`` rows spread evenly over 24 hours, ingested
   through the Ingest RPC (Arrow IPC, 10,000 rows per request, 4 clients) of a
   ``fusou serve ingest archiver`` process and archived by one Archive call (minimum age 0).
   Then a hot set: 1,000 more rows, one second apart, starting an hour after the day ends,
   ingested after the archive so that they stay in the buffer (same dataset and table).
   The database is VACUUMed and ANALYZEd (what autovacuum does after an archive) and a
   CHECKPOINT taken (untimed).
2. The same rows, written as the peer: 24 hourly Parquet files (sorted by time, zstd,
   ``--row-group-rows`` rows per row group) plus one file holding the hot set, in a local
   directory beside the object store's (the same kind of store: the local file system).
3. Queries, each through gRPC ReadRange with Arrow IPC output (the client reassembles one
   pyarrow Table with ``fusou.api.reader.client.read_arrow``, as ``fusou read`` does: Arrow reads
   each payload in place; the latency is from the call to the last message) and through
   ``pyarrow.dataset.dataset(dir, format="parquet").to_table(filter=...)`` (dataset discovery
   included, as the reader's catalog lookup is):
     (a) hot: the 1,000 hot rows;
     (b) one block: the [min_time, max_time] of one archived block, taken from fusou_blocks;
     (c) one hour: hour 12 of the day (exactly one of the peer's files);
     (d) the full day, as rows/s;
     (e) a selective filter over the full day: ``damage_dealt < 200``, about 1% of the rows
         spread over every block (a ReadRange filter; the peer's dataset filter);
     (f) a selective filter on a column that grows with time: ``api_no < rows/100``, 1% of
         the rows, all in the first quarter hour (what block statistics can find).
   (a)-(c) are repeated ``--repeat`` times after one untimed warm-up call and reported as
   p50/p99 in ms; (d)-(f) ``--full-repeat`` times, reported at the median. Each query is also
   read through the reader's Arrow Flight port (DoGet, into one client-side Table).

The reader is measured in two fresh ``fusou serve reader`` processes on the same store:
- block cache disabled (FUSOU_READER_CACHE_BYTES=0): every call fetches and decodes its blocks.
  This is the figure compared with the peer, which keeps nothing between calls either (both
  read files that sit in the OS page cache).
- block cache on (the default size): the first call of each query is the cold-cache figure, the
  repeats show the warm cache.

4. The gRPC floor: each answer's Arrow bytes, in messages of the reader's size, streamed by a
   bare gRPC server in another process that does nothing else (``bench.raw_stream``). No
   reader can answer faster than this; it shows how much of the peer's time moving the
   answer out of a process already takes on this machine.

Targets: one-block and one-hour p50 at most 0.5x the peer's; full-day rows/s through Flight at
least 1.5x the peer's; a selective filter at most 0.3x the peer's latency. Verdicts are printed
for each reader. ``bench.s3_read_bench`` measures the same on an S3 server with added latency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from google.protobuf import struct_pb2, timestamp_pb2
from pyarrow import flight

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
from bench.raw_stream import OPTIONS as RAW_STREAM_OPTIONS
from bench.raw_stream import raw_stream_server, stream_seconds
from fusou.api.archiver.v1 import archiver_pb2, archiver_pb2_grpc
from fusou.api.ingest.v1 import ingest_pb2
from fusou.api.reader.answers import ARROW_MESSAGE_BYTES
from fusou.api.reader.client import read_arrow
from fusou.api.reader.flight import read_flight_table
from fusou.api.reader.v1 import reader_pb2
from fusou.records.wire_formats import arrow_ipc_bytes

DATASET = "bench"
TABLE = "battle"
CHUNK = 10_000  # rows per generated chunk and per Ingest request
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# The selective filter: damage_dealt is uniform over 0..20,000, so about 1% of the rows, spread
# over every block (no statistics can leave a block out).
SELECTIVE = ("damage_dealt", 200)


def clustered(n: int) -> tuple[str, int]:
    """A selective filter on a column that grows with time (api_no): 1% of the rows, all in
    the first quarter hour, which statistics can find."""
    return ("api_no", n // 100)


HOT_ROWS = 1_000
HOT_STEP_MS = 1_000
HOT_START = T0 + DAY_MS + HOUR_MS  # an hour after the day: nothing cold overlaps it
ONE_HOUR = 12  # the hour of the day read by query (c)
MB = 1024 * 1024
# Archive every row however young; answers of a whole day fit in one message.
SERVER_ENV = {"FUSOU_ARCHIVE_MIN_AGE_S": "0", "FUSOU_GRPC_MAX_MESSAGE_BYTES": str(256 * MB)}
GRPC_OPTIONS = RAW_STREAM_OPTIONS


# -- the synthetic records ----------------------------------------------------------------------


def day_chunk(i: int, size: int, step_ms: int) -> pa.Table:
    """Chunk ``i`` of the day: deterministic; times and api_no continue across chunks."""
    rows = battle_rows(size, seed=1000 + i, start=T0 + i * CHUNK * step_ms, step_ms=step_ms)
    for k, row in enumerate(rows):
        row["api_no"] = i * CHUNK + k
    return pa.Table.from_pylist(rows)


def hot_rows() -> pa.Table:
    rows = battle_rows(HOT_ROWS, seed=7, start=HOT_START, step_ms=HOT_STEP_MS)
    for k, row in enumerate(rows):
        row["api_no"] = 10_000_000 + k
    return pa.Table.from_pylist(rows)


def ingest_request(table: pa.Table, request_id: str) -> bytes:
    return ingest_pb2.IngestRequest(
        dataset_id=DATASET, table=TABLE, request_id=request_id, arrow_ipc=arrow_ipc_bytes(table)
    ).SerializeToString()


# -- phase 1: load, archive, hot set ------------------------------------------------------------


@dataclass
class Loaded:
    day: pa.Table  # every row of the day, in time order
    hot: pa.Table
    ingest: Rate
    archive: Rate
    archive_response: Any  # archiver_pb2.ArchiveResponse


async def load(server: ServerProcess, n: int, clients: int) -> Loaded:
    step_ms = DAY_MS // n
    sizes = [min(CHUNK, n - start) for start in range(0, n, CHUNK)]
    chunks: list[pa.Table] = [pa.table({})] * len(sizes)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=2 * clients)
    written = 0

    def make(i: int) -> bytes:
        chunks[i] = day_chunk(i, sizes[i], step_ms)
        return ingest_request(chunks[i], f"day-{i}")

    async def produce() -> None:
        # Generated in a thread while the clients send: at most a few requests in flight.
        for i in range(1, len(sizes)):
            await queue.put(await asyncio.to_thread(make, i))
        for _ in range(clients):
            await queue.put(None)

    async with grpc.aio.insecure_channel(server.target, options=GRPC_OPTIONS) as channel:
        ingest = channel.unary_unary(
            "/fusou.ingest.v1.IngestService/Ingest",
            request_serializer=lambda b: b,
            response_deserializer=ingest_pb2.IngestResponse.FromString,
        )

        async def client() -> None:
            nonlocal written
            while (request := await queue.get()) is not None:
                response = await ingest(request, timeout=600)
                written += response.rows_written  # not `written += await ...`: a lost update
                if written // CHUNK % 20 == 0:
                    print(f"\r  ingested {written:,} / {n:,} rows", end="", file=sys.stderr)

        with Stopwatch() as load_sw:
            # The first request alone: it creates the table and its schema version.
            written += (await ingest(make(0), timeout=600)).rows_written
            await asyncio.gather(produce(), *(client() for _ in range(clients)))
        print(file=sys.stderr)
        assert written == n, f"ingested {written} rows, expected {n}"

        print(f"archiving {n:,} rows ...", file=sys.stderr)
        archiver = archiver_pb2_grpc.ArchiverServiceStub(channel)
        with Stopwatch() as archive_sw:
            response = await archiver.Archive(
                archiver_pb2.ArchiveRequest(dataset_id=DATASET, table=TABLE, min_age_seconds=0),
                timeout=3600,
            )
        assert response.total_rows == n, f"archived {response.total_rows} rows, expected {n}"

        hot = hot_rows()
        answer = await ingest(ingest_request(hot, "hot"), timeout=600)
        assert answer.rows_written == HOT_ROWS
    return Loaded(
        pa.concat_tables(chunks),
        hot,
        Rate("Ingest (Arrow IPC, load phase)", n, load_sw.seconds),
        Rate("Archive (buffer -> cold Avro)", n, archive_sw.seconds),
        response,
    )


@dataclass
class Catalog:
    blocks: int
    files: int
    cold_bytes: int
    block: tuple[int, int, int]  # min_time, max_time, row_count of the one-block query's block


async def settle_and_inspect(url: str, n: int) -> Catalog:
    """Untimed: planner statistics, a checkpoint, and the block index the queries are built on."""
    conn = await asyncpg.connect(url)
    try:
        # What autovacuum does after an archive (0003_buffer_autovacuum), done now, not in a minute.
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
        hot = await conn.fetchval("SELECT count(*) FROM fusou_buffer")
        blocks = await conn.fetch(
            "SELECT b.min_time, b.max_time, b.row_count FROM fusou_blocks b "
            "JOIN fusou_files f USING (file_id) WHERE f.state = 'active' "
            "ORDER BY b.min_time"
        )
        files, cold_bytes = await conn.fetchrow(
            "SELECT count(*), coalesce(sum(byte_length), 0) FROM fusou_files WHERE state = 'active'"
        )
    finally:
        await conn.close()
    assert hot == HOT_ROWS, f"{hot} rows in the buffer, expected the {HOT_ROWS} hot rows"
    assert sum(b["row_count"] for b in blocks) == n, "the block index does not hold every row"
    # A block a quarter into the day: far from the one-hour query's hour 12, so that the
    # cache-on reader's first one-hour call does not find it cached.
    b = blocks[len(blocks) // 4]
    block = (b["min_time"], b["max_time"], b["row_count"])
    return Catalog(len(blocks), int(files), int(cold_bytes), block)


# -- phase 2: the peer's files ------------------------------------------------------------------


def peer_files(day: pa.Table, hot: pa.Table) -> list[tuple[str, pa.Table]]:
    """The peer's 24 hourly files and one for the hot set: names and rows."""
    day = day.sort_by("timestamp")
    times = day.column("timestamp")
    parts: list[tuple[str, pa.Table]] = []
    for h in range(24):
        start, end = T0 + h * HOUR_MS, T0 + (h + 1) * HOUR_MS
        mask = pc.and_(pc.greater_equal(times, start), pc.less(times, end))
        parts.append((f"battle-{h:02d}.parquet", day.filter(mask)))
    parts.append(("battle-hot.parquet", hot.sort_by("timestamp")))
    return parts


def write_peer(directory: Path, day: pa.Table, hot: pa.Table, row_group_rows: int) -> int:
    """The peer's files (``peer_files``) in ``directory``; returns the bytes written."""
    fs = pafs.LocalFileSystem()
    fs.create_dir(str(directory))
    total = 0
    for name, table in peer_files(day, hot):
        path = str(directory / name)
        pq.write_table(
            table, path, compression="zstd", row_group_size=row_group_rows, filesystem=fs
        )
        total += os.path.getsize(path)
    return total


# -- phase 3: the queries -----------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    name: str
    start: int  # epoch ms, inclusive
    end: int  # epoch ms, exclusive
    rows: int  # expected
    # A filter "column < value", sent as ReadRange's filter and as the peer's dataset filter.
    below: tuple[str, int] | None = None


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)
    first: float = 0.0  # the untimed first call (cold cache on the cache-on reader)
    stats: Any = None  # reader_pb2.ReadStats of the last call (reader only)
    first_stats: Any = None
    client_cpu: float = 0.0  # CPU seconds of this (client) process per repeated call
    answer_bytes: int = 0  # Arrow bytes of the answer (reader only)

    def pct(self, q: float) -> float:
        return float(np.percentile(self.seconds, q)) * 1000

    @property
    def p50(self) -> float:
        return self.pct(50)

    @property
    def p99(self) -> float:
        return self.pct(99)


def timestamp(ms: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=ms // 1000, nanos=ms % 1000 * 1_000_000)


def range_request(q: Query) -> reader_pb2.ReadRangeRequest:
    request = reader_pb2.ReadRangeRequest(
        dataset_id=DATASET,
        table=TABLE,
        start_time=timestamp(q.start),
        end_time=timestamp(q.end),
        format=reader_pb2.OUTPUT_FORMAT_ARROW_IPC,
    )
    if q.below is not None:
        column, value = q.below
        request.filters.append(
            reader_pb2.Filter(
                column=column,
                op=reader_pb2.FILTER_OP_LT,
                values=[struct_pb2.Value(number_value=value)],
            )
        )
    return request


async def read_once(channel: grpc.aio.Channel, q: Query) -> tuple[float, pa.Table, Any]:
    request = range_request(q)
    start = time.perf_counter()
    table, stats = await read_arrow(channel, request, grpc_timeout=600)
    return time.perf_counter() - start, table if table is not None else pa.table({}), stats


Once = Callable[[Query], Awaitable[tuple[float, pa.Table, Any]]]


async def measure(once: Once, queries: list[tuple[Query, int]], label: str) -> dict[str, Timing]:
    """Each query once untimed (checked), then ``repeat`` timed calls."""
    out: dict[str, Timing] = {}
    for q, repeat in queries:
        timing = Timing()
        timing.first, table, timing.first_stats = await once(q)
        check(q, table, label)
        cpu = time.process_time()
        for _ in range(repeat):
            seconds, table, timing.stats = await once(q)
            timing.seconds.append(seconds)
        timing.client_cpu = (time.process_time() - cpu) / repeat
        timing.answer_bytes = int(table.nbytes)
        check(q, table, label)
        out[q.name] = timing
        print(
            f"  {label:7s} {q.name:12s} first {timing.first * 1000:8.1f} ms, "
            f"p50 {timing.p50:8.1f} ms",
            file=sys.stderr,
        )
    return out


async def measure_reader(target: str, queries: list[tuple[Query, int]]) -> dict[str, Timing]:
    """Through ReadRange (gRPC, Arrow IPC messages)."""
    async with grpc.aio.insecure_channel(target, options=GRPC_OPTIONS) as channel:
        return await measure(lambda q: read_once(channel, q), queries, "gRPC")


async def measure_flight(target: str, queries: list[tuple[Query, int]]) -> dict[str, Timing]:
    """Through the reader's Arrow Flight port (DoGet), into one client-side Table."""
    client = flight.connect(f"grpc://{target}")

    def call(q: Query) -> tuple[float, pa.Table, Any]:
        request = range_request(q)
        start = time.perf_counter()
        table, stats = read_flight_table(client, request)
        return time.perf_counter() - start, table, stats

    try:
        return await measure(lambda q: asyncio.to_thread(call, q), queries, "Flight")
    finally:
        client.close()


async def measure_floor(
    queries: list[Query], reader: dict[str, Timing], plan: list[tuple[Query, int]]
) -> dict[str, Timing]:
    """The same number of bytes as each reader answer, in messages of the reader's size,
    through a bare gRPC stream (bench.raw_stream): what moving the answer costs by itself."""
    repeats = {q.name: r for q, r in plan}
    out: dict[str, Timing] = {}
    async with (
        raw_stream_server() as target,
        grpc.aio.insecure_channel(target, options=GRPC_OPTIONS) as channel,
    ):
        for q in queries:
            total = reader[q.name].answer_bytes
            per_message = max(1, min(total, ARROW_MESSAGE_BYTES))
            seconds = await stream_seconds(channel, total, per_message, repeats[q.name])
            out[q.name] = Timing(seconds=seconds)
    return out


def peer_once(directory: Path, q: Query) -> tuple[float, pa.Table]:
    start = time.perf_counter()
    condition = (ds.field("timestamp") >= q.start) & (ds.field("timestamp") < q.end)
    if q.below is not None:
        condition = condition & (ds.field(q.below[0]) < q.below[1])
    table = ds.dataset(str(directory), format="parquet").to_table(filter=condition)
    return time.perf_counter() - start, table


def measure_peer(directory: Path, queries: list[tuple[Query, int]]) -> dict[str, Timing]:
    out: dict[str, Timing] = {}
    for q, repeat in queries:
        timing = Timing()
        timing.first, table = peer_once(directory, q)
        check(q, table, "peer")
        for _ in range(repeat):
            seconds, table = peer_once(directory, q)
            timing.seconds.append(seconds)
        check(q, table, "peer")
        out[q.name] = timing
        print(f"  {q.name:10s} p50 {timing.p50:8.1f} ms", file=sys.stderr)
    return out


def check(q: Query, table: pa.Table, who: str) -> None:
    assert table.num_rows == q.rows, f"{who}: {q.name} returned {table.num_rows}, not {q.rows}"
    if q.rows:
        times = table.column("timestamp")
        lo, hi = pc.min(times).as_py(), pc.max(times).as_py()
        assert q.start <= lo and hi < q.end, f"{who}: {q.name} returned rows out of range"


def count_below(table: pa.Table, column: str, value: int) -> int:
    return int(pc.sum(pc.cast(pc.less(table.column(column), value), pa.int64())).as_py() or 0)


def count_in(table: pa.Table, start: int, end: int) -> int:
    times = table.column("timestamp")
    mask = pc.and_(pc.greater_equal(times, start), pc.less(times, end))
    return int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)


# -- main ---------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _stats_line(s: Any) -> str:
    return (
        f"hot rows {s.hot_rows:,}, cold rows {s.cold_rows:,}, blocks fetched "
        f"{s.blocks_fetched}, GETs {s.get_requests}, bytes {s.bytes_fetched:,}, "
        f"cache hits {s.cache_hits}"
    )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30, help="repetitions of (a)-(c)")
    parser.add_argument("--full-repeat", type=int, default=3, help="repetitions of (d)")
    parser.add_argument("--clients", type=int, default=4, help="Ingest clients while loading")
    parser.add_argument(
        "--row-group-rows", type=int, default=16_384, help="rows per row group of the peer"
    )
    args = parser.parse_args(argv)
    n: int = args.rows
    if n < CHUNK or args.repeat < 1 or args.full_repeat < 1:
        parser.error("--rows must be at least 10,000; repeats at least 1")

    with tempfile.TemporaryDirectory(prefix="fusou-read-bench-") as tmp:
        store_dir = Path(tmp) / "store"
        peer_dir = Path(tmp) / "peer"
        store_dir.mkdir()
        async with bench_database() as (_, url):
            print(f"loading {n:,} rows over 24 hours ...", file=sys.stderr)
            async with server_process(
                url, "ingest archiver", store_dir=store_dir, **SERVER_ENV
            ) as server:
                loaded = await load(server, n, args.clients)
            catalog = await settle_and_inspect(url, n)

            print("writing the peer's Parquet files ...", file=sys.stderr)
            peer_bytes = write_peer(peer_dir, loaded.day, loaded.hot, args.row_group_rows)

            b_min, b_max, b_rows = catalog.block
            hour_start = T0 + ONE_HOUR * HOUR_MS
            queries = [
                Query("hot", HOT_START, HOT_START + HOT_ROWS * HOT_STEP_MS, HOT_ROWS),
                Query("one block", b_min, b_max + 1, count_in(loaded.day, b_min, b_max + 1)),
                Query(
                    "one hour",
                    hour_start,
                    hour_start + HOUR_MS,
                    count_in(loaded.day, hour_start, hour_start + HOUR_MS),
                ),
                Query("full day", T0, T0 + DAY_MS, n),
                Query(
                    "1% of day",
                    T0,
                    T0 + DAY_MS,
                    count_below(loaded.day, *SELECTIVE),
                    below=SELECTIVE,
                ),
                Query(
                    "1% clustered",
                    T0,
                    T0 + DAY_MS,
                    count_below(loaded.day, *clustered(n)),
                    below=clustered(n),
                ),
            ]
            assert queries[1].rows == b_rows, "the one-block range holds other rows"
            plan = [(q, args.repeat) for q in queries[:3]] + [
                (q, args.full_repeat) for q in queries[3:]
            ]

            print("reader, block cache disabled ...", file=sys.stderr)
            async with server_process(
                url, "reader", store_dir=store_dir, **SERVER_ENV, FUSOU_READER_CACHE_BYTES="0"
            ) as reader:
                meter = CpuMeter(reader.pid)
                before = meter.sample()
                uncached = await measure_reader(reader.target, plan)
                cpu_uncached = meter.sample()
                assert reader.flight_target is not None
                flighted = await measure_flight(reader.flight_target, plan)
            print("reader, block cache on ...", file=sys.stderr)
            async with server_process(url, "reader", store_dir=store_dir, **SERVER_ENV) as reader:
                cached = await measure_reader(reader.target, plan)
            print("peer: pyarrow.dataset over hourly Parquet ...", file=sys.stderr)
            peer = measure_peer(peer_dir, plan)
            print("gRPC floor: the answers' bytes through a bare stream ...", file=sys.stderr)
            floor = await measure_floor(queries, uncached, plan)

    report(args, n, loaded, catalog, peer_bytes, queries, uncached, flighted, cached, peer, floor)
    server_cpu = cpu_uncached["server"] - before["server"]
    print(f"(CPU of the cache-off reader process over all its calls: {server_cpu:.1f} s)")
    return 0


def report(
    args: argparse.Namespace,
    n: int,
    loaded: Loaded,
    catalog: Catalog,
    peer_bytes: int,
    queries: list[Query],
    uncached: dict[str, Timing],
    flighted: dict[str, Timing],
    cached: dict[str, Timing],
    peer: dict[str, Timing],
    floor: dict[str, Timing],
) -> None:
    table = loaded.archive_response.tables[0]
    print(
        f"data: {n:,} battle records over 24 h (one every {DAY_MS // n} ms) + {HOT_ROWS:,} hot "
        f"rows; ingest {loaded.ingest.per_second:,.0f} rows/s, archive "
        f"{loaded.archive.per_second:,.0f} rows/s"
    )
    print(
        f"cold: {catalog.files} file(s), {catalog.blocks} blocks, {catalog.cold_bytes:,} bytes "
        f"(Avro {table.compression_ratio:.1f}x over the datums); peer: 25 Parquet files, "
        f"{peer_bytes:,} bytes (zstd, {args.row_group_rows:,} rows per row group)"
    )
    print(
        f"latency in ms, p50 / p99 over {args.repeat} calls (full day: {args.full_repeat}); "
        "reader = gRPC ReadRange, Arrow IPC, into one client-side Table"
    )
    header = (
        f"{'query':12s} {'rows':>9s} | {'reader, cache off':>17s} | {'Flight, cache off':>17s} "
        f"| {'reader, cache warm':>18s} | {'cache cold':>10s} | {'peer pyarrow.ds':>17s} "
        f"| {'client CPU':>10s} | {'gRPC floor':>10s}"
    )
    print(header)
    print("-" * len(header))
    for q in queries:
        u, fl, c = uncached[q.name], flighted[q.name], cached[q.name]
        p, f = peer[q.name], floor[q.name]
        print(
            f"{q.name:12s} {q.rows:>9,} | {u.p50:7.1f} / {u.p99:7.1f} | {fl.p50:7.1f} / "
            f"{fl.p99:7.1f} | {c.p50:8.1f} / {c.p99:7.1f} | {c.first * 1000:10.1f} "
            f"| {p.p50:7.1f} / {p.p99:7.1f} | {u.client_cpu * 1000:10.1f} | {f.p50:10.1f}"
        )
    print(
        "  cache off: FUSOU_READER_CACHE_BYTES=0, every call fetches and decodes its blocks; "
        "cache warm: the default cache, repeated calls;\n"
        "  cache cold: the first call of each query in that process; client CPU: ms of this "
        "process per call (gRPC receive, protobuf, IPC);\n"
        "  gRPC floor: p50 ms to stream the answer's Arrow bytes, in messages of the same size, "
        "through a bare gRPC stream between two processes (no work at either end)"
    )

    def rate(t: Timing) -> float:
        return n / (t.p50 / 1000)

    day_u, day_fl, day_c, day_p = (rate(t["full day"]) for t in (uncached, flighted, cached, peer))
    print(
        f"full day as Arrow: reader {day_u:,.0f} rows/s (cache off), {day_fl:,.0f} rows/s "
        f"(Flight, cache off), {day_c:,.0f} rows/s (cache warm); peer {day_p:,.0f} rows/s"
    )
    print(
        "targets, compared figure = reader with its block cache OFF (like for like: the peer "
        "also decodes its files on every call); the warm-cache figure beside it:"
    )
    for name in ("one block", "one hour"):
        ru = uncached[name].p50 / peer[name].p50
        rf = flighted[name].p50 / peer[name].p50
        rc = cached[name].p50 / peer[name].p50
        print(
            f"  {name:9s} p50 {ru:5.2f}x the peer's (<= 0.5x: {verdict(ru <= 0.5)}); "
            f"Flight {rf:5.2f}x ({verdict(rf <= 0.5)}); cache warm {rc:5.2f}x "
            f"({verdict(rc <= 0.5)})"
        )
    print(
        f"  full day  Flight {day_fl / day_p:5.2f}x the peer's rows/s (>= 1.5x: "
        f"{verdict(day_fl >= 1.5 * day_p)}); ReadRange {day_u / day_p:5.2f}x; cache warm "
        f"{day_c / day_p:5.2f}x"
    )
    print(f"  hot read  p50 {uncached['hot'].p50 / peer['hot'].p50:5.2f}x the peer's (no target)")
    for name in ("1% of day", "1% clustered"):
        rs = uncached[name].p50 / peer[name].p50
        rsf = flighted[name].p50 / peer[name].p50
        print(
            f"  {name:12s} p50 {rs:5.2f}x the peer's (<= 0.3x: {verdict(rs <= 0.3)}); Flight "
            f"{rsf:5.2f}x ({verdict(rsf <= 0.3)}); cache warm "
            f"{cached[name].p50 / peer[name].p50:5.2f}x"
        )
    print(
        "the gRPC floor alone, as a share of the peer's whole call (the reader cannot go below it):"
    )
    for name in ("one block", "one hour"):
        print(f"  {name:9s} {floor[name].p50 / peer[name].p50:5.2f}x the peer's p50")
    day_f = rate(floor["full day"])
    print(f"  full day  {day_f / day_p:5.2f}x the peer's rows/s")
    print("reader stats, one-hour read (cache off), showing the pruning:")
    print(f"  {_stats_line(uncached['one hour'].stats)}")
    print(f"  of {catalog.blocks} blocks / {catalog.cold_bytes:,} cold bytes in the catalog")
    print(f"one-block read: {_stats_line(uncached['one block'].stats)}")
    print(f"hot read:       {_stats_line(uncached['hot'].stats)}")
    print(f"full-day read:  {_stats_line(uncached['full day'].stats)}")
    for name in ("1% of day", "1% clustered"):
        selective = uncached[name].stats
        print(
            f"{name} read: {_stats_line(selective)}, rows filtered "
            f"{selective.rows_filtered:,}, blocks pruned {selective.blocks_pruned}"
        )
    print(f"cache warm, one-hour read: {_stats_line(cached['one hour'].stats)}")
    print(f"cache warm, full-day read: {_stats_line(cached['full day'].stats)}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
