"""Reading the lake as an analyst would (pyiceberg, DuckDB over its Arrow) and comparing it
with ReadRange, and checking that the Iceberg snapshot and FUSOU's catalog agree."""

from __future__ import annotations

from typing import Any

import asyncpg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from fusou.config import Settings
from fusou.lake.catalog import catalog_properties
from fusou.objectstore.base import ObjectNotFound, ObjectStore
from fusou.schema.time_bounds import MAX_TIME_MS, MIN_TIME_MS
from tests.read.conftest import Stubs
from tests.read.oracle import read, read_request

# Years 1 to 9999: every time FUSOU stores.
EVERYTHING = (MIN_TIME_MS, MAX_TIME_MS)


def catalog(settings: Settings) -> SqlCatalog:
    return SqlCatalog(settings.lake.catalog, **catalog_properties(settings))


def lake_table(settings: Settings, dataset: str, table: str) -> Table:
    return catalog(settings).load_table((dataset, table))


def _canonical(table: pa.Table, time_field: str) -> list[tuple[Any, ...]]:
    """Rows as sorted tuples of (name, value), the time as epoch milliseconds: an order-free
    form to compare answers by (a day's file need not keep the seq order of equal times)."""
    if pa.types.is_timestamp(table.schema.field(time_field).type):
        ms = pc.cast(pc.cast(table.column(time_field), pa.timestamp("ms", "UTC")), pa.int64())
        table = table.set_column(table.column_names.index(time_field), time_field, ms)
    rows = [tuple(sorted(r.items())) for r in table.to_pylist()]
    return sorted(rows, key=repr)


def lake_rows(settings: Settings, dataset: str, table: str, time_field: str) -> list[Any]:
    return _canonical(lake_table(settings, dataset, table).scan().to_arrow(), time_field)


def duckdb_rows(settings: Settings, dataset: str, table: str, time_field: str) -> list[Any]:
    """DuckDB querying the Arrow of a pyiceberg scan, as the README shows."""
    scan = lake_table(settings, dataset, table).scan().to_arrow()
    con = duckdb.connect()
    con.register("battles", scan)
    result = con.sql("SELECT * FROM battles").to_arrow_table()
    # DuckDB hands timestamps with time zone back in its session's zone: the instants match.
    return _canonical(result, time_field)


async def readrange_rows(stubs: Stubs, dataset: str, table: str, time_field: str) -> list[Any]:
    request = read_request(dataset, table, *EVERYTHING)
    # The last instant a Timestamp holds: rounded up, the end is one past the last millisecond.
    request.end_time.seconds, request.end_time.nanos = MAX_TIME_MS // 1000, 999_999_999
    answer = await read(stubs.reader, request)
    if answer.table is None:
        return []
    return _canonical(answer.table, time_field)


async def assert_lake_is_readrange(
    stubs: Stubs, settings: Settings, dataset: str, table: str, time_field: str = "timestamp"
) -> int:
    """The pyiceberg scan, and DuckDB over it, hold exactly ReadRange's rows; returns how many."""
    expected = await readrange_rows(stubs, dataset, table, time_field)
    scanned = lake_rows(settings, dataset, table, time_field)
    assert len(scanned) == len(expected), f"lake {len(scanned)} rows, ReadRange {len(expected)}"
    assert scanned == expected
    assert duckdb_rows(settings, dataset, table, time_field) == expected
    return len(expected)


async def assert_snapshot_agrees(
    settings: Settings, store: ObjectStore, url: str, dataset: str, table: str
) -> None:
    """The snapshot names exactly the published files, each stored, one per day."""
    named = {
        task.file.file_path for task in lake_table(settings, dataset, table).scan().plan_files()
    }
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT l.location, l.object_key, l.day, l.state, l.digest FROM fusou_lake_files l "
            "JOIN fusou_tables t USING (table_id) "
            "WHERE t.dataset_id = $1 AND t.table_name = $2 AND l.state <> 'retired' "
            "AND l.location IS NOT NULL",
            dataset,
            table,
        )
    finally:
        await conn.close()
    assert all(r["state"] == "published" for r in rows), [dict(r) for r in rows]
    assert {r["location"] for r in rows} == named
    # A day's files (one per slice) are one version of the day: one digest.
    digests: dict[int, set[bytes]] = {}
    for r in rows:
        digests.setdefault(r["day"], set()).add(bytes(r["digest"]))
    assert all(len(d) == 1 for d in digests.values()), "files of two versions of one day"
    for r in rows:
        try:
            await store.head(r["object_key"])
        except ObjectNotFound:
            raise AssertionError(f"the snapshot names {r['object_key']}, which is gone") from None


async def assert_snapshot_files_stored(
    settings: Settings, store: ObjectStore, dataset: str, table: str
) -> None:
    """Every file the current snapshot names is in the store (what holds at every moment,
    crashes and failures included)."""
    assert settings.store.url is not None
    prefix = settings.store.url.rstrip("/") + "/"
    for task in lake_table(settings, dataset, table).scan().plan_files():
        key = task.file.file_path.removeprefix(prefix)
        try:
            await store.head(key)
        except ObjectNotFound:
            raise AssertionError(f"the snapshot names {key}, which is not stored") from None


async def metadata_files(
    settings: Settings, store: ObjectStore, dataset: str, table: str
) -> tuple[set[str], set[str]]:
    """The table's metadata files in the store, and those its metadata still reaches."""
    assert settings.store.url is not None
    root = settings.store.url.rstrip("/")
    t = lake_table(settings, dataset, table)
    reached = {t.metadata_location, *(e.metadata_file for e in t.metadata.metadata_log)}
    for snapshot in t.snapshots():
        reached.add(snapshot.manifest_list)
        reached.update(m.manifest_path for m in snapshot.manifests(t.io))
    stored = {
        f"{root}/{info.key}" async for info in store.list(f"lake/{dataset}/{table}/metadata/")
    }
    return stored, reached


async def lake_agrees(stubs: Stubs, dataset: str, table: str) -> int:
    """The snapshot and the catalog agree, and the lake holds ReadRange's rows (how many)."""
    rt = stubs.services.runtime
    await assert_snapshot_agrees(rt.settings, rt.store, stubs.url, dataset, table)
    return await assert_lake_is_readrange(stubs, rt.settings, dataset, table)
