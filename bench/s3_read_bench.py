"""Reads on a real S3 server with a distant store's latency: the reader (ReadRange and Arrow
Flight) against pyarrow.dataset over hourly Parquet files, in one run.

    python -m bench.s3_read_bench [--rows 1000000] [--delays 10,40] [--repeat 10]

1. s3rver (a second S3 implementation beside the tests' moto, from the npm registry; see
   ``bench.s3_server``) holds one bucket. A day of ``--rows`` battle records is ingested and
   archived into it as in ``bench.read_bench`` (cold Avro), and the same rows are written
   beside them as the peer's 24 hourly Parquet files (zstd, ``--row-group-rows`` rows per row
   group) plus the hot set's file.
2. For each delay, a proxy in its own process holds every request to the store for that long
   (``bench.s3_server``). The reader (``fusou serve reader``, block cache off) and the peer
   (``pyarrow.dataset`` through ``pyarrow.fs.S3FileSystem``, a new dataset per call: no footer
   cached between calls) both go through it. Queries: five minutes and one hour of hour 12,
   the full day (rows/s), and two selective filters over the day: ``damage_dealt < 200`` (1%
   of the rows, spread over every block) and ``api_no < rows/100`` (1%, the first quarter
   hour: statistics can find them).
3. Then the day is compacted (the Compact RPC, straight to the store) and the queries run
   again at the largest delay: the same rows as optimized Parquet.

Targets (p50 ratios in one run, 40 ms delay, 1,000,000 rows): one-hour and five-minute reads at
most 0.08x the peer's latency; full-day throughput at least 8x; a selective filter at most
0.1x. Every figure is printed, met or not.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped, unused-ignore]
import grpc
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bench.common import T0, bench_database, server_process
from bench.read_bench import (
    DAY_MS,
    HOUR_MS,
    ONE_HOUR,
    SELECTIVE,
    SERVER_ENV,
    Query,
    Timing,
    clustered,
    count_below,
    count_in,
    load,
    measure,
    measure_flight,
    measure_reader,
    peer_files,
    settle_and_inspect,
)
from bench.s3_server import ACCESS_KEY, REGION, SECRET_KEY, delay_proxy, s3rver
from fusou.api.compactor.v1 import compactor_pb2, compactor_pb2_grpc

BUCKET = "bench"
PEER_PREFIX = "peer"
MINUTE_MS = 60_000
STORE_URL = f"s3://{BUCKET}/fusou"


def _s3_env(endpoint: str) -> dict[str, str]:
    return {
        "FUSOU_S3_ENDPOINT_URL": endpoint,
        "FUSOU_S3_REGION": REGION,
        # The lake's writer (pyiceberg, through the AWS C++ SDK) sends aws-chunked bodies,
        # which s3rver stores undecoded; the lake is not what this measures.
        "FUSOU_LAKE_PUBLISH": "false",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }


def _boto(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )


def write_peer(endpoint: str, day: pa.Table, hot: pa.Table, row_group_rows: int) -> int:
    """The peer's 24 hourly files and the hot set's, through boto3; returns the bytes."""
    s3 = _boto(endpoint)
    total = 0
    for name, table in peer_files(day, hot):
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd", row_group_size=row_group_rows)
        s3.put_object(Bucket=BUCKET, Key=f"{PEER_PREFIX}/{name}", Body=sink.getvalue())
        total += sink.tell()
    return total


def peer_filesystem(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=endpoint.removeprefix("http://"),
        scheme="http",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region=REGION,
    )


async def measure_peer(endpoint: str, plan: list[tuple[Query, int]]) -> dict[str, Timing]:
    fs = peer_filesystem(endpoint)

    def call(q: Query) -> tuple[float, pa.Table, Any]:
        start = time.perf_counter()
        condition = (ds.field("timestamp") >= q.start) & (ds.field("timestamp") < q.end)
        if q.below is not None:
            condition = condition & (ds.field(q.below[0]) < q.below[1])
        dataset = ds.dataset(f"{BUCKET}/{PEER_PREFIX}", filesystem=fs, format="parquet")
        table = dataset.to_table(filter=condition)
        return time.perf_counter() - start, table, None

    return await measure(lambda q: asyncio.to_thread(call, q), plan, "peer")


async def compact(url: str, endpoint: str) -> None:
    env = {**SERVER_ENV, **_s3_env(endpoint)}
    async with (
        server_process(url, "compactor", store_dir=None, store_url=STORE_URL, **env) as s,
        grpc.aio.insecure_channel(s.target) as channel,
    ):
        stub = compactor_pb2_grpc.CompactorServiceStub(channel)
        for _ in range(40):  # a run compacts a bounded amount: until none is partial
            answer = await stub.Compact(compactor_pb2.CompactRequest(), timeout=3600)
            statuses = {d.status for d in answer.datasets}
            assert compactor_pb2.COMPACT_STATUS_FAILED not in statuses, answer
            if compactor_pb2.COMPACT_STATUS_PARTIAL not in statuses:
                return
        raise RuntimeError("compaction still partial after 40 runs")


Results = dict[str, dict[str, Timing]]


async def measure_at(
    url: str, proxy: str, plan: list[tuple[Query, int]], with_peer: bool = True
) -> Results:
    env = {**SERVER_ENV, **_s3_env(proxy), "FUSOU_READER_CACHE_BYTES": "0"}
    out: Results = {}
    async with server_process(url, "reader", store_dir=None, store_url=STORE_URL, **env) as r:
        out["ReadRange"] = await measure_reader(r.target, plan)
        assert r.flight_target is not None
        out["Flight"] = await measure_flight(r.flight_target, plan)
    if with_peer:
        out["peer"] = await measure_peer(proxy, plan)
    return out


def report(
    n: int, queries: list[Query], results: dict[str, Results], peer_bytes: int, cold: str
) -> None:
    print(f"data: {n:,} battle records over 24 h on s3rver; {cold}; peer {peer_bytes:,} bytes")
    print("p50 ms (full day: rows/s); ratios are the reader's over the peer's, in the same run")
    for label, res in results.items():
        peer = res["peer"]
        print(f"\n{label}")
        print(
            f"  {'query':12s} {'rows':>9s} | {'ReadRange':>10s} {'ratio':>6s} | {'Flight':>10s} "
            f"{'ratio':>6s} | {'peer':>10s}"
        )
        for q in queries:
            rr, fl, p = res["ReadRange"][q.name], res["Flight"][q.name], peer[q.name]
            if q.name == "full day":
                rates = [n / (t.p50 / 1000) for t in (rr, fl, p)]
                print(
                    f"  {q.name:12s} {q.rows:>9,} | {rates[0]:10,.0f} {rates[0] / rates[2]:5.2f}x"
                    f" | {rates[1]:10,.0f} {rates[1] / rates[2]:5.2f}x | {rates[2]:10,.0f}"
                )
            else:
                print(
                    f"  {q.name:12s} {q.rows:>9,} | {rr.p50:10.1f} {rr.p50 / p.p50:5.2f}x | "
                    f"{fl.p50:10.1f} {fl.p50 / p.p50:5.2f}x | {p.p50:10.1f}"
                )
        for who in ("ReadRange", "Flight"):
            s = res[who]["1% clustered"].stats
            print(
                f"  {who} stats, 1% clustered: blocks fetched {s.blocks_fetched}, pruned "
                f"{s.blocks_pruned}, GETs {s.get_requests}"
            )
        s = res["Flight"]["full day"].stats
        print(f"  full day: blocks fetched {s.blocks_fetched}, GETs {s.get_requests}")
    print("\ntargets (40 ms delay; Flight, the better of the two reader paths where it is):")
    for label, res in results.items():
        if not label.startswith("40 ms"):
            continue
        peer = res["peer"]

        def ratio(name: str, res: Results = res, peer: dict[str, Timing] = peer) -> float:
            return min(res[w][name].p50 for w in ("ReadRange", "Flight")) / peer[name].p50

        five, hour = ratio("5 minutes"), ratio("one hour")
        day = 1 / ratio("full day")
        spread, found = ratio("1% of day"), ratio("1% clustered")
        print(f"  {label}:")
        print(f"    five minutes {five:5.3f}x the peer's latency (<= 0.08x: {_v(five <= 0.08)})")
        print(f"    one hour     {hour:5.3f}x the peer's latency (<= 0.08x: {_v(hour <= 0.08)})")
        print(f"    full day     {day:5.2f}x the peer's throughput (>= 8x: {_v(day >= 8)})")
        print(f"    1% spread    {spread:5.3f}x the peer's latency (<= 0.1x: {_v(spread <= 0.1)})")
        print(f"    1% clustered {found:5.3f}x the peer's latency (<= 0.1x: {_v(found <= 0.1)})")


def _v(ok: bool) -> str:
    return "met" if ok else "NOT met"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--delays", default="10,40", help="ms added to each store request")
    parser.add_argument("--repeat", type=int, default=10, help="repetitions of short reads")
    parser.add_argument("--full-repeat", type=int, default=3, help="repetitions of day reads")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--row-group-rows", type=int, default=16_384)
    parser.add_argument("--no-compact", action="store_true", help="skip the compacted state")
    args = parser.parse_args(argv)
    n: int = args.rows
    delays = [float(d) for d in args.delays.split(",")]

    with (
        tempfile.TemporaryDirectory(prefix="fusou-s3-bench-") as tmp,
        s3rver(Path(tmp) / "s3") as s3,
    ):
        _boto(s3).create_bucket(Bucket=BUCKET)
        async with bench_database() as (_, url):
            print(f"loading {n:,} rows over 24 hours into s3rver ...", file=sys.stderr)
            env = {**SERVER_ENV, **_s3_env(s3)}
            async with server_process(
                url, "ingest archiver", store_dir=None, store_url=STORE_URL, **env
            ) as server:
                loaded = await load(server, n, args.clients)
            catalog = await settle_and_inspect(url, n)
            print("writing the peer's Parquet files ...", file=sys.stderr)
            peer_bytes = write_peer(s3, loaded.day, loaded.hot, args.row_group_rows)
            hour = T0 + ONE_HOUR * HOUR_MS
            queries = [
                Query("5 minutes", hour, hour + 5 * MINUTE_MS, 0),
                Query("one hour", hour, hour + HOUR_MS, 0),
                Query("full day", T0, T0 + DAY_MS, n),
                Query("1% of day", T0, T0 + DAY_MS, 0, below=SELECTIVE),
                Query("1% clustered", T0, T0 + DAY_MS, 0, below=clustered(n)),
            ]
            queries = [
                Query(
                    q.name,
                    q.start,
                    q.end,
                    count_below(loaded.day, *q.below)
                    if q.below is not None
                    else count_in(loaded.day, q.start, q.end),
                    q.below,
                )
                for q in queries
            ]
            plan = [
                (q, args.repeat if q.end - q.start <= HOUR_MS else args.full_repeat)
                for q in queries
            ]
            results: dict[str, Results] = {}
            for delay in delays:
                async with delay_proxy(s3, delay) as proxy:
                    print(f"{delay:g} ms per request, cold Avro ...", file=sys.stderr)
                    results[f"{delay:g} ms, cold Avro"] = await measure_at(url, proxy, plan)
            if not args.no_compact:
                print("compacting ...", file=sys.stderr)
                await compact(url, s3)
                async with delay_proxy(s3, max(delays)) as proxy:
                    print(f"{max(delays):g} ms per request, compacted ...", file=sys.stderr)
                    results[f"{max(delays):g} ms, compacted"] = await measure_at(url, proxy, plan)
    cold = f"{catalog.files} cold file(s), {catalog.blocks} blocks, {catalog.cold_bytes:,} bytes"
    report(n, queries, results, peer_bytes, cold)  # every answer was checked as measured
    return 0


if __name__ == "__main__":
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    sys.exit(asyncio.run(main()))
