"""Compaction throughput and peak memory on small Parquet fragments, against delta-rs.

    python -m bench.compact_bench [--rows 1000000] [--fragments 100] [--runs 1] [--quick]

1. Generate ``--rows`` flat battle-like records (int64 ``timestamp`` in epoch ms, increasing,
   and int64 / float64 / string / bool columns; every row distinct) with numpy, split them
   into ``--fragments`` contiguous fragments and write each with ``pyarrow.parquet.write_table``
   (zstd) into memory. Generated once, used by every measurement.
2. FUSOU, twice, each time on a fresh database and a fresh ``fusou serve ingest compactor``
   process (FUSOU_COMPACT_MAX_FRAGMENTS=1000):

   a. FUSOU_COMPACT_MAX_BYTES = 1 GiB, so that one Compact call takes every fragment;
   b. FUSOU_COMPACT_MAX_BYTES = the fragments' decoded size as the compactor counts it (the
      sum over fragments of max(decoded Arrow bytes, Parquet bytes), the catalog's
      ``uncompressed_bytes``) times ``--bound-fraction``: the guardrail the memory target is
      judged against then binds. Compact is called until COMPACTED (PARTIAL means more remains).

   Untimed: the fragments are uploaded through ``IngestService.UploadRaw`` in bundles of
   ``BUNDLE`` fragments, and a tiny separate dataset is compacted once to warm the process up.
   Then the server's peak RSS is reset (``/proc/PID/clear_refs``) and the Compact calls are
   timed. Peak memory growth = VmHWM after the calls minus VmRSS just before them, summed over
   the server and its child processes. Afterwards the catalog must hold every row in active
   optimized files and no active raw file.
3. The peer, in the same run, in a spawned child process (so its RSS is measured the same way):
   the same fragments appended to a Delta table in a temporary directory with
   ``deltalake.write_deltalake(mode="append")``, one commit per fragment (untimed), then
   ``DeltaTable(path).optimize.compact()`` timed. It must remove every fragment's file and the
   table must still hold ``--rows`` rows.

Targets: FUSOU's rows/s at least 1.0x delta-rs; peak memory growth under 3x
FUSOU_COMPACT_MAX_BYTES.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.archive_bench import _status_kb, _tree, verdict
from bench.common import SHIPS, T0, CpuMeter, Stopwatch, bench_database, server_process
from fusou.api.compactor.v1 import compactor_pb2, compactor_pb2_grpc
from fusou.api.ingest.upload_requests import Part, upload_requests
from fusou.api.ingest.v1 import ingest_pb2_grpc
from fusou.upload.fragments import inspect_fragment

DATASET = "bench"
WARMUP_DATASET = "warmup"
TABLE = "battle"
TIME_FIELD = "timestamp"
STEP_MS = 86
BUNDLE = 10  # fragments per UploadRaw call
MAX_FRAGMENTS = 1000  # FUSOU_COMPACT_MAX_FRAGMENTS
LARGE_MAX_BYTES = 1024**3  # FUSOU_COMPACT_MAX_BYTES of measurement a
MEMORY_TARGET = 3.0  # peak growth under this many times FUSOU_COMPACT_MAX_BYTES
MB = 1024 * 1024

# -- the synthetic records ----------------------------------------------------------------------

RANKS = pa.array(["S", "A", "B", "C", "D"])
AIR = pa.array(["AS+", "AS", "AP", "AD", "AI"])
FLAGSHIPS = pa.array(SHIPS)
DROPS = pa.array([None, *SHIPS], pa.string())
FLEETS = pa.array([f"fleet-{i}" for i in range(1, 501)])
COMMENTS = pa.array(["x" * k for k in range(10, 61)])


def fragment_table(first_row: int, rows: int, seed: int) -> pa.Table:
    """Rows ``first_row`` .. ``first_row + rows - 1`` of the record stream (deterministic)."""
    rng = np.random.default_rng(seed)
    api_no = np.arange(first_row, first_row + rows, dtype=np.int64)

    def ints(lo: int, hi: int) -> np.ndarray[Any, np.dtype[np.int64]]:
        return rng.integers(lo, hi + 1, rows, dtype=np.int64)

    def pick(values: pa.Array) -> pa.Array:
        return values.take(pa.array(rng.integers(0, len(values), rows)))

    return pa.table(
        {
            TIME_FIELD: T0 + api_no * STEP_MS,
            "api_no": api_no,
            "map_area": ints(1, 7),
            "map_no": ints(1, 6),
            "cell": ints(1, 20),
            "rank": pick(RANKS),
            "flagship": pick(FLAGSHIPS),
            "enemy_fleet": pick(FLEETS),
            "hp_before": ints(1, 100),
            "hp_after": ints(0, 100),
            "damage_dealt": ints(0, 20_000),
            "damage_taken": ints(0, 5_000),
            "air_superiority": pick(AIR),
            "formation": ints(1, 6),
            "night_battle": rng.random(rows) < 0.3,
            "drop_ship": pick(DROPS),
            "fuel": np.round(rng.random(rows) * 100, 2),
            "ammo": np.round(rng.random(rows) * 100, 2),
            "comment": pick(COMMENTS),
        }
    )


@dataclass(frozen=True)
class Fragments:
    data: list[bytes]  # Parquet (zstd), one file each
    rows: int
    arrow_bytes: int  # sum of pa.Table.nbytes as generated
    cost_bytes: int  # what the compactor counts: sum of max(decoded bytes, Parquet bytes)

    @property
    def parquet_bytes(self) -> int:
        return sum(len(d) for d in self.data)


def make_fragments(rows: int, count: int, first_row: int = 0, seed: int = 0) -> Fragments:
    base, extra = divmod(rows, count)
    data: list[bytes] = []
    arrow_bytes = cost = 0
    start = first_row
    for i in range(count):
        size = base + (1 if i < extra else 0)
        table = fragment_table(start, size, seed + i)
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        raw = sink.getvalue()
        data.append(raw)
        arrow_bytes += table.nbytes
        decoded = inspect_fragment(raw, TIME_FIELD, f"fragments[{i}]").decoded_bytes
        cost += max(decoded, len(raw))
        start += size
    return Fragments(data, rows, arrow_bytes, cost)


# -- memory of a process tree -------------------------------------------------------------------


def reset_peaks(pid: int) -> dict[int, int]:
    """Reset VmHWM of ``pid`` and its children; their VmRSS (kB) right after."""
    rss: dict[int, int] = {}
    for p in _tree(pid):
        with open(f"/proc/{p.pid}/clear_refs", "w") as f:
            f.write("5")
        rss[p.pid] = _status_kb(p.pid, "VmRSS")
    return rss


@dataclass(frozen=True)
class Memory:
    rss_before_mb: float  # summed VmRSS just before the timed work
    peak_mb: float  # summed VmHWM just after it
    processes: int

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.rss_before_mb


def peaks_since(pid: int, before: dict[int, int]) -> Memory:
    """Summed VmHWM of the tree now against its VmRSS in ``before`` (a new child counts whole)."""
    procs = _tree(pid)
    peak = sum(_status_kb(p.pid, "VmHWM") for p in procs)
    return Memory(sum(before.values()) / 1024, peak / 1024, len(procs))


# -- FUSOU: upload, then Compact ----------------------------------------------------------------


async def upload(channel: grpc.aio.Channel, dataset_id: str, data: Sequence[bytes]) -> int:
    stub = ingest_pb2_grpc.IngestServiceStub(channel)
    rows = 0
    for start in range(0, len(data), BUNDLE):
        parts = [Part(TABLE, d) for d in data[start : start + BUNDLE]]
        requests = upload_requests(dataset_id, parts, request_id=f"{dataset_id}-{start}")
        response = await stub.UploadRaw(requests, timeout=600)
        rows += sum(f.rows for f in response.fragments)
    return rows


@dataclass(frozen=True)
class Call:
    status: str
    seconds: float
    input_files: int
    input_rows: int
    output_files: int
    output_rows: int
    duplicates_removed: int


async def compact_until_done(
    stub: compactor_pb2_grpc.CompactorServiceAsyncStub, dataset_id: str, max_calls: int
) -> list[Call]:
    calls: list[Call] = []
    while True:
        with Stopwatch() as sw:
            response = await stub.Compact(
                compactor_pb2.CompactRequest(dataset_id=dataset_id), timeout=3600
            )
        (result,) = response.datasets
        status = compactor_pb2.CompactStatus.Name(result.status)
        tables = list(result.tables)
        calls.append(
            Call(
                status,
                sw.seconds,
                sum(t.input_files for t in tables),
                sum(t.input_rows for t in tables),
                sum(t.output_files for t in tables),
                sum(t.output_rows for t in tables),
                sum(t.duplicates_removed for t in tables),
            )
        )
        if result.status == compactor_pb2.COMPACT_STATUS_PARTIAL and len(calls) < max_calls:
            continue
        if result.status not in (
            compactor_pb2.COMPACT_STATUS_COMPACTED,
            compactor_pb2.COMPACT_STATUS_NOTHING_TO_DO,
        ):
            raise RuntimeError(f"Compact of {dataset_id} ended {status} {result.error!r}: {calls}")
        return calls


@dataclass(frozen=True)
class Catalog:
    raw_files: int
    raw_rows: int
    raw_bytes: int  # stored Parquet bytes
    raw_decoded: int  # uncompressed_bytes
    optimized_files: int
    optimized_rows: int
    optimized_bytes: int


async def catalog(url: str) -> Catalog:
    conn = await asyncpg.connect(url)
    try:
        rows = {
            r["kind"]: r
            for r in await conn.fetch(
                "SELECT o.kind, count(*) AS files, coalesce(sum(f.row_count), 0) AS rows, "
                "coalesce(sum(f.byte_length), 0) AS bytes, "
                "coalesce(sum(f.uncompressed_bytes), 0) AS decoded "
                "FROM fusou_files f JOIN fusou_objects o USING (object_id) "
                "JOIN fusou_tables t USING (table_id) "
                "WHERE t.dataset_id = $1 AND t.table_name = $2 AND f.state = 'active' "
                "GROUP BY o.kind",
                DATASET,
                TABLE,
            )
        }
    finally:
        await conn.close()

    def get(kind: str, column: str) -> int:
        return int(rows[kind][column]) if kind in rows else 0

    return Catalog(
        get("raw", "files"),
        get("raw", "rows"),
        get("raw", "bytes"),
        get("raw", "decoded"),
        get("optimized", "files"),
        get("optimized", "rows"),
        get("optimized", "bytes"),
    )


@dataclass
class FusouResult:
    label: str
    max_bytes: int
    rows: int
    calls: list[Call]
    memory: Memory
    cpu_seconds: dict[str, float]
    before: Catalog
    after: Catalog
    warmup_seconds: float

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.calls)

    @property
    def per_second(self) -> float:
        return self.rows / self.seconds


async def fusou_measure(
    label: str, fragments: Fragments, warmup: Fragments, max_bytes: int
) -> FusouResult:
    n = fragments.rows
    count = len(fragments.data)
    async with (
        bench_database() as (_, url),
        server_process(
            url,
            "ingest compactor",
            FUSOU_COMPACT_MAX_BYTES=str(max_bytes),
            FUSOU_COMPACT_MAX_FRAGMENTS=str(MAX_FRAGMENTS),
        ) as server,
        grpc.aio.insecure_channel(server.target) as channel,
    ):
        uploaded = await upload(channel, DATASET, fragments.data)
        assert uploaded == n, f"UploadRaw stored {uploaded} rows, expected {n}"
        await upload(channel, WARMUP_DATASET, warmup.data)
        before = await catalog(url)
        assert (before.raw_files, before.raw_rows) == (count, n), before
        stub = compactor_pb2_grpc.CompactorServiceStub(channel)
        warm = await compact_until_done(stub, WARMUP_DATASET, 10)
        gc.collect()
        meter = CpuMeter(server.pid)
        rss = reset_peaks(server.pid)
        cpu_before = meter.sample()
        calls = await compact_until_done(stub, DATASET, count + 10)
        cpu_after = meter.sample()
        memory = peaks_since(server.pid, rss)
        after = await catalog(url)
    return FusouResult(
        label,
        max_bytes,
        n,
        calls,
        memory,
        {k: cpu_after[k] - cpu_before[k] for k in cpu_before},
        before,
        after,
        sum(c.seconds for c in warm),
    )


def check_fusou(result: FusouResult, count: int) -> None:
    n = result.rows
    last = result.calls[-1]
    assert last.status == "COMPACT_STATUS_COMPACTED", result.calls
    if len(result.calls) == 1:
        assert last.input_files == count, f"input_files {last.input_files}, expected {count}"
        assert last.output_rows == n, f"output_rows {last.output_rows}, expected {n}"
    assert sum(c.duplicates_removed for c in result.calls) == 0, result.calls
    after = result.after
    assert after.raw_files == 0, f"{after.raw_files} raw files still active"
    assert after.optimized_rows == n, f"optimized files hold {after.optimized_rows} rows, not {n}"


# -- the peer: delta-rs in a child process ------------------------------------------------------


def _peer_child(fragment_dir: str, delta_dir: str, conn: Connection) -> None:
    from deltalake import DeltaTable, write_deltalake

    paths = sorted(Path(fragment_dir).glob("*.parquet"))
    for p in paths:
        write_deltalake(delta_dir, pq.read_table(p), mode="append")
    gc.collect()
    pid = os.getpid()
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    rss = _status_kb(pid, "VmRSS")
    cpu = os.times()
    started = time.perf_counter()
    metrics = DeltaTable(delta_dir).optimize.compact()
    seconds = time.perf_counter() - started
    cpu_after = os.times()
    peak = _status_kb(pid, "VmHWM")
    table = DeltaTable(delta_dir)
    files = table.file_uris()
    sizes = [os.path.getsize(u.removeprefix("file://")) for u in files]
    codec = pq.ParquetFile(files[0].removeprefix("file://")).metadata.row_group(0).column(0)
    conn.send(
        {
            "seconds": seconds,
            "cpu_seconds": (cpu_after.user - cpu.user) + (cpu_after.system - cpu.system),
            "rss_before_kb": rss,
            "peak_kb": peak,
            "files_removed": int(metrics["numFilesRemoved"]),
            "files_added": int(metrics["numFilesAdded"]),
            "rows_after": table.to_pyarrow_table().num_rows,
            "output_bytes": sum(sizes),
            "codec": str(codec.compression),
        }
    )
    conn.close()
    # Skip the interpreter's finalization: with deltalake and pyarrow loaded it sometimes
    # aborts ("terminate called without an active exception", SIGABRT) after the work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@dataclass(frozen=True)
class PeerResult:
    rows: int
    seconds: float
    cpu_seconds: float
    memory: Memory
    files_removed: int
    files_added: int
    rows_after: int
    output_bytes: int
    codec: str

    @property
    def per_second(self) -> float:
        return self.rows / self.seconds


def delta_peer(fragments: Fragments) -> PeerResult:
    with tempfile.TemporaryDirectory(prefix="fusou-bench-delta-") as tmp:
        fragment_dir = Path(tmp, "fragments")
        fragment_dir.mkdir()
        for i, data in enumerate(fragments.data):
            (fragment_dir / f"{i:06d}.parquet").write_bytes(data)
        ctx = multiprocessing.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(
            target=_peer_child, args=(str(fragment_dir), str(Path(tmp, "delta")), send)
        )
        child.start()
        send.close()
        try:
            out: dict[str, Any] = receive.recv()
        except EOFError:
            raise RuntimeError(f"the delta-rs child failed (exit code {child.exitcode})") from None
        finally:
            child.join()
        if child.exitcode != 0:
            raise RuntimeError(f"the delta-rs child exited with code {child.exitcode}")
    return PeerResult(
        fragments.rows,
        out["seconds"],
        out["cpu_seconds"],
        Memory(out["rss_before_kb"] / 1024, out["peak_kb"] / 1024, 1),
        out["files_removed"],
        out["files_added"],
        out["rows_after"],
        out["output_bytes"],
        out["codec"],
    )


def check_peer(peer: PeerResult, count: int) -> None:
    assert peer.files_removed == count, f"delta-rs removed {peer.files_removed} files, not {count}"
    assert peer.rows_after == peer.rows, f"delta table holds {peer.rows_after} rows"


# -- main ---------------------------------------------------------------------------------------


@dataclass
class Run:
    fusou: list[FusouResult] = field(default_factory=list)
    peer: PeerResult | None = None


def mib(n: float) -> str:
    return f"{n / MB:,.1f} MB"


def report_run(i: int, run: Run, fragments: Fragments) -> None:
    peer = run.peer
    assert peer is not None
    n = fragments.rows
    print(f"run {i}:")
    print(
        f"  {'':44s} {'rows/s':>10s} {'seconds':>8s} {'calls':>5s} {'CPU us/row':>10s} "
        f"{'RSS before':>10s} {'peak growth':>11s}"
    )
    for r in run.fusou:
        cpu_us = (r.cpu_seconds["server"] + r.cpu_seconds["workers"]) / n * 1e6
        print(
            f"  {r.label:44s} {r.per_second:>10,.0f} {r.seconds:>8.2f} {len(r.calls):>5d} "
            f"{cpu_us:>10.2f} {r.memory.rss_before_mb:>7.1f} MB {r.memory.growth_mb:>8.1f} MB"
        )
    print(
        f"  {'delta-rs optimize.compact()':44s} {peer.per_second:>10,.0f} {peer.seconds:>8.2f} "
        f"{1:>5d} {peer.cpu_seconds / n * 1e6:>10.2f} {peer.memory.rss_before_mb:>7.1f} MB "
        f"{peer.memory.growth_mb:>8.1f} MB"
    )
    for r in run.fusou:
        ratio = r.per_second / peer.per_second
        limit = MEMORY_TARGET * r.max_bytes / MB
        growth = r.memory.growth_mb
        print(f"  {r.label}:")
        print(f"    FUSOU / delta-rs: {ratio:.2f}x (target >= 1.0x: {verdict(ratio >= 1.0)})")
        print(
            f"    peak growth {growth:.1f} MB = {growth * MB / r.max_bytes:.2f}x MAX_BYTES "
            f"(target < {MEMORY_TARGET:.0f}x = {limit:,.1f} MB: {verdict(growth < limit)}); "
            f"{growth * MB / r.before.raw_decoded:.2f}x the decoded input, "
            f"{growth * MB / r.before.raw_bytes:.1f}x the Parquet input; "
            f"{r.memory.processes} process(es)"
        )
        shown = [f"{c.seconds:.2f} s/{c.input_files} files" for c in r.calls]
        if len(shown) > 6:
            shown = [*shown[:3], f"... ({len(shown) - 5} more)", *shown[-2:]]
        calls = ", ".join(shown)
        cpu = ", ".join(f"{k} {v:.2f} s" for k, v in r.cpu_seconds.items())
        print(f"    calls: {calls}; CPU: {cpu}; warm-up call {r.warmup_seconds:.2f} s (untimed)")
        print(
            f"    output: {r.after.optimized_files} optimized file(s), "
            f"{mib(r.after.optimized_bytes)}, {r.after.optimized_rows:,} rows"
        )
    print(
        f"  delta-rs: removed {peer.files_removed}, added {peer.files_added} file(s), "
        f"{mib(peer.output_bytes)} ({peer.codec}); CPU {peer.cpu_seconds:.2f} s; "
        f"peak growth {peer.memory.growth_mb / (fragments.arrow_bytes / MB):.2f}x the Arrow input"
    )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--fragments", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--bound-fraction",
        type=float,
        default=1.0,
        help="measurement b's FUSOU_COMPACT_MAX_BYTES as a fraction of the decoded input",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100,000 rows")
    args = parser.parse_args(argv)
    n: int = 100_000 if args.quick else args.rows
    count: int = args.fragments
    if count < 2 or n < count:
        parser.error("need at least 2 fragments and one row per fragment")
    if args.runs < 1 or args.bound_fraction <= 0:
        parser.error("--runs must be at least 1 and --bound-fraction positive")

    print(f"generating {n:,} rows in {count} fragments ...", file=sys.stderr)
    with Stopwatch() as sw:
        fragments = make_fragments(n, count)
        warmup = make_fragments(2_000, 2, first_row=n, seed=10_000)
    bound = max(1, int(fragments.cost_bytes * args.bound_fraction))
    print(
        f"rows: {n:,} flat battle records (~{n // count:,} per fragment), {count} Parquet (zstd) fragments of "
        f"{mib(fragments.parquet_bytes)}, {mib(fragments.arrow_bytes)} as Arrow; "
        f"generated in {sw.seconds:.1f} s"
    )
    print(
        f"FUSOU_COMPACT_MAX_FRAGMENTS={MAX_FRAGMENTS}; the compactor counts the input as "
        f"{fragments.cost_bytes:,} bytes (sum of max(decoded, Parquet) per fragment)"
    )
    runs: list[Run] = []
    for i in range(1, args.runs + 1):
        run = Run()
        for label, max_bytes in (
            (f"FUSOU Compact, MAX_BYTES={mib(LARGE_MAX_BYTES)}", LARGE_MAX_BYTES),
            (f"FUSOU Compact, MAX_BYTES={mib(bound)} (input)", bound),
        ):
            print(f"run {i}: {label} ...", file=sys.stderr)
            result = await fusou_measure(label, fragments, warmup, max_bytes)
            check_fusou(result, count)
            assert result.before.raw_decoded <= fragments.cost_bytes, result.before
            run.fusou.append(result)
        print(f"run {i}: delta-rs optimize.compact() ...", file=sys.stderr)
        run.peer = delta_peer(fragments)
        check_peer(run.peer, count)
        runs.append(run)
        report_run(i, run, fragments)
    if len(runs) > 1:
        print(f"median over {len(runs)} runs:")
        for k, r in enumerate(runs[0].fusou):
            rate = statistics.median(run.fusou[k].per_second for run in runs)
            growth = statistics.median(run.fusou[k].memory.growth_mb for run in runs)
            print(f"  {r.label:44s} {rate:>10,.0f} rows/s  peak growth {growth:8.1f} MB")
        peer_rate = statistics.median(run.peer.per_second for run in runs if run.peer)
        peer_growth = statistics.median(run.peer.memory.growth_mb for run in runs if run.peer)
        print(
            f"  {'delta-rs optimize.compact()':44s} {peer_rate:>10,.0f} rows/s  "
            f"peak growth {peer_growth:8.1f} MB"
        )
    print(
        "checked: status COMPACTED, input_files and output_rows of the single call, no "
        "duplicates removed, no active raw file left, optimized rows = rows; delta-rs removed "
        "every fragment's file and kept every row"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
