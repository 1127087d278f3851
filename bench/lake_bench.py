"""Publishing to the open lake, against pyarrow + pyiceberg doing the same by hand.

    python -m bench.lake_bench [--rows 500000] [--days 7] [--keyed]

1. Generate ``--rows`` battle-like rows (numpy; int64 ``timestamp`` spread evenly over
   ``--days`` UTC days, int64 / float64 / string / bool columns, every row distinct), ingest
   them as Arrow IPC and archive them with publication off (untimed): FUSOU's cold files.
2. FUSOU, timed: ``LakePublisher.publish`` of the dataset (the whole table, first publication:
   every day read back through the reader, deduplicated, written as one Parquet file per day,
   one Iceberg commit). Then 1% more rows on the last day are ingested and archived (untimed)
   and the incremental publication timed (one day rewritten). With ``--keyed`` the table has a
   key field leaving the time out, so every publication reads the whole table.
3. For where FUSOU's time goes: the reader alone answering the whole table (what step 2 reads).
4. The peer, in the same run: the same rows, already in memory and already unique, written by
   pyarrow as one zstd Parquet file per day and added to a fresh Iceberg table (same catalog
   kind, same partition spec) with pyiceberg's ``add_files``, one commit.
5. Scans: pyiceberg's ``scan().to_arrow()`` of FUSOU's table and of the peer's, rows/s.

Reports rows/s and FUSOU's ratio to the peer. The peer starts from rows in memory; FUSOU starts
from its cold Avro files, which it must read and deduplicate: the ratio says what exactly-once
publication from FUSOU's own files costs over writing them straight.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.io.pyarrow import schema_to_pyarrow

from bench.common import SHIPS, T0, bench_database
from fusou.api.archiver.v1 import archiver_pb2
from fusou.api.archiver.v1.archiver_pb2_grpc import ArchiverServiceStub
from fusou.api.ingest.v1 import ingest_pb2
from fusou.api.ingest.v1.ingest_pb2_grpc import IngestServiceStub
from fusou.config import Settings
from fusou.lake.catalog import catalog_properties
from fusou.lake.publisher import LakePublisher
from fusou.lake.schema import initial_schema, partition_spec
from fusou.read.reader import Reader, ReadRequest
from fusou.schema.model import FieldType, SchemaField, TableSchema
from fusou.schema.time_bounds import MAX_TIME_MS, MIN_TIME_MS
from fusou.storage.partitions import DAY_MS, day_start
from fusou.testing import running_services

DS, TABLE = "bench", "battle"
BATCH = 50_000


def generate(n: int, days: int, seed: int, first: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = day_start(T0)
    times = start + (np.arange(n, dtype=np.int64) * (days * DAY_MS)) // max(n, 1)
    return pa.table(
        {
            "timestamp": pa.array(times, pa.int64()),
            "api_no": pa.array(np.arange(first, first + n, dtype=np.int64)),
            "hp": pa.array(rng.random(n) * 100),
            "flagship": pa.array(np.array(SHIPS)[rng.integers(0, len(SHIPS), n)]),
            "won": pa.array(rng.random(n) < 0.5),
            "damage": pa.array(rng.integers(0, 20_000, n, dtype=np.int64)),
        }
    )


def ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


async def load(stub: Any, rows: pa.Table) -> None:
    for offset in range(0, rows.num_rows, BATCH):
        await stub.Ingest(
            ingest_pb2.IngestRequest(
                dataset_id=DS, table=TABLE, arrow_ipc=ipc(rows.slice(offset, BATCH))
            )
        )


def peer(rows: pa.Table, days: int, root: Path, settings: Settings) -> float:
    """pyarrow + pyiceberg by hand: returns seconds."""
    started = time.perf_counter()
    props = catalog_properties(settings)
    props["warehouse"] = f"file://{root}"
    catalog = SqlCatalog("peer", **props)
    catalog.create_namespace_if_not_exists("peer")
    # The schema FUSOU publishes for these rows.
    schema = initial_schema(
        TableSchema(
            "timestamp",
            (
                SchemaField("timestamp", FieldType.LONG),
                SchemaField("api_no", FieldType.LONG),
                SchemaField("hp", FieldType.DOUBLE),
                SchemaField("flagship", FieldType.STRING),
                SchemaField("won", FieldType.BOOLEAN),
                SchemaField("damage", FieldType.LONG),
            ),
            1,
        )
    )
    table = catalog.create_table(
        ("peer", "battle"),
        schema=schema,
        partition_spec=partition_spec(schema, "timestamp"),
        location=f"file://{root}/peer",
    )
    target = schema_to_pyarrow(table.schema(), include_field_ids=True)
    times = rows.column("timestamp").to_numpy()
    paths = []
    data = root / "peer" / "data"
    data.mkdir(parents=True, exist_ok=True)
    first = day_start(int(times[0]))
    for d in range(days):
        lo, hi = np.searchsorted(times, [first + d * DAY_MS, first + (d + 1) * DAY_MS])
        part = rows.slice(int(lo), int(hi - lo))
        ts = (
            part.column("timestamp").cast(pa.timestamp("ms", "UTC")).cast(pa.timestamp("us", "UTC"))
        )
        part = part.set_column(0, "timestamp", ts).cast(target)
        path = data / f"day-{d}.parquet"
        pq.write_table(part, path, compression="zstd")
        paths.append(f"file://{path}")
    table.add_files(paths)
    return time.perf_counter() - started


def scan_rate(settings: Settings, root: Path | None, namespace: str) -> tuple[int, float]:
    props = catalog_properties(settings)
    if root is not None:
        props["warehouse"] = f"file://{root}"
    name = "peer" if root is not None else settings.lake.catalog
    catalog = SqlCatalog(name, **props)
    started = time.perf_counter()
    n = catalog.load_table((namespace, "battle")).scan().to_arrow().num_rows
    return n, time.perf_counter() - started


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--keyed", action="store_true")
    args = parser.parse_args(argv)
    rows = generate(args.rows, args.days, seed=1)
    extra = generate(args.rows // 100, 1, seed=2, first=args.rows)
    extra = extra.set_column(
        0, "timestamp", pa.array(extra.column("timestamp").to_numpy() + (args.days - 1) * DAY_MS)
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "objects").mkdir()
        async with bench_database() as (_pg, url):
            settings = Settings.from_env().replace(
                database_url=url,
                object_store_url=f"file://{root / 'objects'}",
                archive_min_age_s=0.0,
                lake_publish=False,
                log_level="WARNING",
            )
            async with (
                running_services(settings, ["ingest", "archiver"]) as svc,
                grpc.aio.insecure_channel(svc.target) as channel,
            ):
                ingest = IngestServiceStub(channel)
                if args.keyed:
                    await ingest.DeclareTable(
                        ingest_pb2.DeclareTableRequest(
                            dataset_id=DS, table=TABLE, key_fields=["api_no"]
                        )
                    )
                archiver = ArchiverServiceStub(channel)
                await load(ingest, rows)
                svc.clock.advance(60)
                await archiver.Archive(archiver_pb2.ArchiveRequest(min_age_seconds=0))
                rt = svc.runtime
                on = rt.settings.replace(lake_publish=True)
                publisher = LakePublisher(on, rt.pool, rt.store, rt.registry, clock=svc.clock)
                # Untimed: the decoder compiles on a process's first cold read.
                reader = Reader(on, rt.pool, rt.store, rt.registry)
                await reader.read(ReadRequest(DS, TABLE, MIN_TIME_MS, T0, cold_only=True))
                started = time.perf_counter()
                report = await publisher.publish(DS)
                first = time.perf_counter() - started
                assert report.published == 1 and not report.error, report
                reader = Reader(on, rt.pool, rt.store, rt.registry)  # a cold cache
                started = time.perf_counter()
                answer = await reader.read(
                    ReadRequest(DS, TABLE, MIN_TIME_MS, MAX_TIME_MS, cold_only=True)
                )
                read_s = time.perf_counter() - started
                assert answer.table.num_rows == args.rows
                await load(ingest, extra)
                svc.clock.advance(60)
                await archiver.Archive(archiver_pb2.ArchiveRequest(min_age_seconds=0))
                started = time.perf_counter()
                report = await publisher.publish(DS)
                incremental = time.perf_counter() - started
                # One day changed: one file rewritten (a keyed table reads them all to know).
                assert report.tables[0].days_written == 1, report
                peer_s = await asyncio.to_thread(peer, rows, args.days, root / "peer", on)
                fusou_n, fusou_scan = await asyncio.to_thread(scan_rate, on, None, DS)
                peer_n, peer_scan = await asyncio.to_thread(scan_rate, on, root / "peer", "peer")
    n = args.rows
    kind = "keyed (api_no), whole table read per publication" if args.keyed else "no key fields"
    print(f"lake_bench: {n} rows over {args.days} days, {kind}, {os.cpu_count()} CPUs")
    print(f"  FUSOU first publication      {first:7.2f} s  {n / first:12,.0f} rows/s")
    print(f"    of which the read alone    {read_s:7.2f} s  ({read_s / first:.0%})")
    print(
        f"  FUSOU incremental (+{extra.num_rows} rows, "
        f"{report.tables[0].rows_written} rewritten) {incremental:7.2f} s"
    )
    print(f"  peer pyarrow+pyiceberg       {peer_s:7.2f} s  {n / peer_s:12,.0f} rows/s")
    print(f"  ratio FUSOU / peer (rows/s)  {peer_s / first:7.2f}x")
    print(
        f"  scan FUSOU's table           {fusou_scan:7.2f} s  {fusou_n / fusou_scan:12,.0f} rows/s"
    )
    print(f"  scan the peer's table        {peer_scan:7.2f} s  {peer_n / peer_scan:12,.0f} rows/s")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
