"""What the archive tests check against: where every ingested row is, read independently.

Nothing here goes through the archiver or the reader: the buffer is read with SQL and every
active cold file registered in the catalog is fetched from the object store and decoded with
``fastavro.reader``, so a bug in the code under test cannot hide itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import fastavro
import grpc
import pyarrow as pa

from fusou.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.api.structs import structs
from fusou.config import Settings
from fusou.formats.avro_container import INGESTED_AT_FIELD, SEQ_FIELD
from fusou.objectstore.base import ObjectStore
from fusou.records.wire_formats import arrow_ipc_bytes

T0 = 1_700_000_000_000
R = TypeVar("R")
METADATA_FIELDS = (SEQ_FIELD, INGESTED_AT_FIELD)

# Small blocks and files, so a few hundred rows make several files of several blocks each.
SMALL_FILES: dict[str, Any] = {
    "archive_min_age_s": 0.0,
    "archive_block_rows": 50,
    "archive_block_bytes": 1024,
    "archive_max_file_bytes": 1500,
}


def archive_settings(settings: Settings, **changes: Any) -> Settings:
    return settings.replace(**(SMALL_FILES | changes))


class Crash(BaseException):
    """Raised by a checkpoint: the archiver "dies" at that point.

    Not an ``Exception``: a dying process runs no error handler, and runs covering several
    tables catch a table's ``Exception`` to report it and go on."""


class CrashAt:
    """A checkpoint that raises ``Crash`` the ``occurrence``-th time ``point`` is reached."""

    def __init__(self, point: str, occurrence: int = 1) -> None:
        self.point = point
        self.occurrence = occurrence
        self.seen: list[str] = []

    async def __call__(self, name: str) -> None:
        self.seen.append(name)
        if name == self.point and self.seen.count(name) == self.occurrence:
            raise Crash(f"crash at {name} #{self.occurrence}")


class Hold:
    """A checkpoint that parks the archiver the first time it reaches ``point``: ``reached`` is
    set when it gets there, and it goes on once ``release`` is set."""

    def __init__(self, point: str = "upload") -> None:
        self.point = point
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        self.seen: list[str] = []

    async def __call__(self, name: str) -> None:
        self.seen.append(name)
        if name == self.point and not self.reached.is_set():
            self.reached.set()
            await self.release.wait()


@asynccontextmanager
async def parked(run: Coroutine[Any, Any, R], hold: Hold) -> AsyncIterator[asyncio.Task[R]]:
    """Start ``run`` (an archive or compaction using ``hold`` as its checkpoint) and enter once
    it is parked.

    Leaving releases it; the caller then awaits the task. If the body fails, the run is
    cancelled and awaited, so it never outlives the test's services.
    """
    task = asyncio.create_task(run)
    reached = asyncio.create_task(hold.reached.wait())
    try:
        await asyncio.wait({task, reached}, return_when=asyncio.FIRST_COMPLETED)
        if not hold.reached.is_set():
            await task  # finished without reaching the point: raise its error
            raise AssertionError(f"the run never reached {hold.point!r}")
        yield task
    except BaseException:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
    finally:
        reached.cancel()
        hold.release.set()


@dataclass(frozen=True)
class ColdFile:
    object_key: str
    table: str
    row_count: int
    rows: list[dict[str, Any]]


async def fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def cold_files(url: str, store: ObjectStore) -> list[ColdFile]:
    """Every active cold file registered in the catalog, decoded from the object store."""
    files = await fetch(
        url,
        "SELECT o.object_key, t.table_name, f.byte_offset, f.byte_length, f.row_count "
        "FROM fusou_files f JOIN fusou_objects o USING (object_id) "
        "JOIN fusou_tables t USING (table_id) "
        "WHERE o.kind = 'cold' AND f.state = 'active' AND o.state = 'active' "
        "ORDER BY f.file_id",
    )
    out = []
    for f in files:
        data = await store.get_range(f["object_key"], f["byte_offset"], f["byte_length"])
        rows = read_avro(data)
        assert len(rows) == f["row_count"], f"{f['object_key']}: row_count disagrees"
        out.append(ColdFile(f["object_key"], f["table_name"], f["row_count"], rows))
    return out


def read_avro(data: bytes) -> list[dict[str, Any]]:
    """The records of an Avro object container file, read by fastavro, with the time field
    (a ``timestamp-millis``, which fastavro hands back as a datetime) as epoch milliseconds,
    as FUSOU's rows hold it."""
    rows = []
    for record in fastavro.reader(io.BytesIO(data)):
        assert isinstance(record, dict)
        rows.append(
            {k: epoch_ms(v) if isinstance(v, dt.datetime) else v for k, v in record.items()}
        )
    return rows


def epoch_ms(value: dt.datetime) -> int:
    """A UTC datetime as epoch milliseconds, exactly (no float on the way)."""
    assert value.tzinfo is not None, "timestamp-millis reads as an aware datetime"
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


async def cold_rows(url: str, store: ObjectStore, table: str | None = None) -> list[dict[str, Any]]:
    """The rows of every active cold file (of ``table`` when given), with their ``_fusou_seq``."""
    return [
        row
        for f in await cold_files(url, store)
        if table is None or f.table == table
        for row in f.rows
    ]


async def buffer_seqs(url: str, table: str | None = None) -> list[int]:
    rows = await fetch(
        url,
        "SELECT b.seq FROM fusou_buffer b JOIN fusou_tables t USING (table_id) "
        "WHERE $1::text IS NULL OR t.table_name = $1 ORDER BY b.seq",
        table,
    )
    return [r["seq"] for r in rows]


async def cold_seqs(url: str, store: ObjectStore, table: str | None = None) -> Counter[int]:
    return Counter(r[SEQ_FIELD] for r in await cold_rows(url, store, table))


async def all_seqs(url: str, store: ObjectStore, table: str | None = None) -> Counter[int]:
    """How often each seq occurs across the buffer and the active cold files."""
    return Counter(await buffer_seqs(url, table)) + await cold_seqs(url, store, table)


async def registered_keys(url: str) -> set[str]:
    """Object keys the catalog knows (whatever their state)."""
    return {r["object_key"] for r in await fetch(url, "SELECT object_key FROM fusou_objects")}


async def stored_keys(store: ObjectStore, prefix: str = "cold/") -> set[str]:
    return {info.key async for info in store.list(prefix)}


async def orphan_keys(url: str, store: ObjectStore) -> set[str]:
    """Objects under cold/ that no catalog row names."""
    return await stored_keys(store) - await registered_keys(url)


def exactly_once(counts: Mapping[int, int], expected: Iterable[int]) -> list[str]:
    """Problems with ``counts`` against ``expected`` seqs (each exactly once, nothing else)."""
    want = set(expected)
    problems = [f"seq {s} missing" for s in sorted(want - counts.keys())]
    problems += [f"seq {s} present {n} times" for s, n in sorted(counts.items()) if n != 1]
    problems += [f"unexpected seq {s}" for s in sorted(counts.keys() - want)]
    return problems


def strip_metadata(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in METADATA_FIELDS}


def battle(i: int, **extra: Any) -> dict[str, Any]:
    """A record with a string, an integer, a fractional number and a boolean; one every
    10 minutes from T0, so a few hundred of them span several days."""
    return {
        "timestamp": T0 + i * 600_000,
        "api_no": i,
        "hp": 40 + (i % 7) / 4,
        "ship": f"ship-{i % 13}",
        "won": i % 3 == 0,
        **extra,
    }


class Ingested:
    """Rows sent through IngestService, indexed by the seq its answer gave them."""

    def __init__(self) -> None:
        self.by_seq: dict[int, dict[str, Any]] = {}

    @property
    def seqs(self) -> set[int]:
        return set(self.by_seq)

    async def send(
        self,
        stub: ingest_pb2_grpc.IngestServiceAsyncStub,
        dataset: str,
        table: str,
        rows: Sequence[dict[str, Any]],
        *,
        arrow: bool = False,
    ) -> ingest_pb2.IngestResponse:
        if arrow:
            req = ingest_pb2.IngestRequest(
                dataset_id=dataset,
                table=table,
                arrow_ipc=arrow_ipc_bytes(pa.Table.from_pylist(list(rows))),
            )
        else:
            req = ingest_pb2.IngestRequest(dataset_id=dataset, table=table, rows=structs(rows))
        resp = await stub.Ingest(req)
        assert resp.rows_written == len(rows) and not resp.replayed
        assert resp.last_seq - resp.first_seq + 1 == len(rows)
        for offset, row in enumerate(rows):
            assert resp.first_seq + offset not in self.by_seq
            self.by_seq[resp.first_seq + offset] = dict(row)
        return resp


async def ingest_batches(
    target: str, dataset: str, table: str, batches: Sequence[Sequence[dict[str, Any]]]
) -> Ingested:
    """Send each batch as one Ingest request (alternating Struct rows and Arrow IPC)."""
    ingested = Ingested()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        for n, rows in enumerate(batches):
            await ingested.send(stub, dataset, table, rows, arrow=n % 2 == 1)
    return ingested


async def decoded_buffer(url: str, table: str) -> dict[int, dict[str, Any]]:
    """The buffer's records of ``table`` by seq, decoded with their schema version."""
    schemas = {
        (r["table_id"], r["version"]): fastavro.parse_schema(json.loads(r["avro_schema"]))
        for r in await fetch(url, "SELECT table_id, version, avro_schema FROM fusou_table_schemas")
    }
    rows = await fetch(
        url,
        "SELECT b.* FROM fusou_buffer b JOIN fusou_tables t USING (table_id) "
        "WHERE t.table_name = $1 ORDER BY seq",
        table,
    )
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        record = fastavro.schemaless_reader(
            io.BytesIO(r["record"]), schemas[(r["table_id"], r["schema_version"])], None
        )
        assert isinstance(record, dict)
        out[r["seq"]] = record
    return out


async def ingested_at_by_seq(url: str) -> dict[int, int]:
    rows = await fetch(url, "SELECT seq, ingested_at FROM fusou_buffer")
    return {r["seq"]: r["ingested_at"] for r in rows}


async def blocks_per_file(url: str) -> dict[str, int]:
    """Indexed blocks of each active cold file, by object key."""
    rows = await fetch(
        url,
        "SELECT o.object_key, count(b.block_no) AS blocks "
        "FROM fusou_files f JOIN fusou_objects o USING (object_id) "
        "LEFT JOIN fusou_blocks b USING (file_id) "
        "WHERE o.kind = 'cold' AND f.state = 'active' GROUP BY o.object_key",
    )
    return {r["object_key"]: r["blocks"] for r in rows}
