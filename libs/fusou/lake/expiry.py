"""Deleting the lake's replaced files once the grace period has passed.

A replaced file stays in the snapshots taken before its replacement; engines may still be
reading one of those. After the grace period (FUSOU_DELETE_GRACE_S, as for the catalog's
replaced objects) the table's snapshots older than it are expired first, then the files go:
every snapshot left was taken after the files were replaced, so none names a deleted file.
A crash in between leaves retired rows whose objects may be gone; deleting again is harmless.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError

from fusou.clock import Clock
from fusou.config import Settings
from fusou.lake import ledger
from fusou.lake.catalog import open_catalog
from fusou.objectstore.base import ObjectStore
from fusou.storage.locks import LAKE_LOCK, wait_lock


async def delete_retired(
    settings: Settings,
    pool: asyncpg.Pool,
    store: ObjectStore,
    dataset_id: str | None,
    clock: Clock,
) -> int:
    """Expire old snapshots and delete the retired files past the grace period; returns how
    many files were deleted."""
    cutoff_ms = clock.now_ms() - int(settings.store.delete_grace_s * 1000)
    async with pool.acquire() as conn:
        retired = await ledger.retired_before(conn, dataset_id, cutoff_ms)
    if not retired:
        return 0
    cutoff = dt.datetime.fromtimestamp(cutoff_ms / 1000, dt.UTC)
    catalog = await asyncio.to_thread(open_catalog, settings)
    try:
        for table_id in sorted({r.table_id for r in retired}):
            files = [r for r in retired if r.table_id == table_id]
            async with pool.acquire() as lock_conn, wait_lock(lock_conn, LAKE_LOCK, table_id):
                ident = await _identifier(pool, table_id)
                await asyncio.to_thread(_expire, catalog, ident, cutoff)
                await store.delete_many([r.object_key for r in files])
                async with pool.acquire() as conn:
                    await ledger.forget(conn, [r.lake_file_id for r in files])
    finally:
        await asyncio.to_thread(catalog.engine.dispose)
    return len(retired)


async def _identifier(pool: asyncpg.Pool, table_id: int) -> tuple[str, str]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT dataset_id, table_name FROM fusou_tables WHERE table_id = $1", table_id
        )
    assert row is not None
    return (row["dataset_id"], row["table_name"])


def _expire(catalog: SqlCatalog, ident: tuple[str, str], cutoff: dt.datetime) -> None:

    try:
        table = catalog.load_table(ident)
    except NoSuchTableError:
        return  # never created, or dropped by hand: nothing names the files
    table.maintenance.expire_snapshots().older_than(cutoff).commit()
