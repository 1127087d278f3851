"""Deleting what the lake no longer needs, once the grace period has passed.

A replaced data file stays in the snapshots taken before its replacement, and engines may still
be reading one of those. After the grace period (FUSOU_DELETE_GRACE_S, as for the catalog's
replaced objects) the table's snapshots older than it are expired first, then the files go:
every snapshot left was taken after the files were replaced, so none names a deleted file. The
same expiry leaves manifest lists and manifests that no remaining snapshot reaches; those older
than the grace period go too (pyiceberg expires snapshots but leaves their files). A crash in
between leaves retired rows whose objects may be gone, or unreferenced metadata: deleting again
is harmless.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging

import asyncpg
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table

from fusou.clock import Clock
from fusou.config import Settings
from fusou.lake import ledger
from fusou.lake.catalog import LakeLocation, open_catalog
from fusou.objectstore.base import ObjectStore
from fusou.storage.keys import LAKE
from fusou.storage.locks import LAKE_LOCK, wait_pool_lock

log = logging.getLogger(__name__)


def grace_cutoff(settings: Settings, clock: Clock) -> dt.datetime:
    return clock.now() - dt.timedelta(seconds=settings.store.delete_grace_s)


def expire_snapshots(table: Table, cutoff: dt.datetime) -> set[str]:
    """Expire the table's snapshots that stopped being current before ``cutoff`` (an engine
    may have planned against one up to then; a commit only when there is one to expire).
    Returns every metadata file the table still references. Blocking: call it from a thread."""
    cutoff_ms = int(cutoff.timestamp() * 1000)
    current = table.current_snapshot()
    history = table.metadata.snapshot_log
    # When each snapshot stopped being current: when the next one in the history became so.
    replaced_at = {
        before.snapshot_id: after.timestamp_ms for before, after in itertools.pairwise(history)
    }
    expired = [
        s.snapshot_id
        for s in table.snapshots()
        if (current is None or s.snapshot_id != current.snapshot_id)
        and replaced_at.get(s.snapshot_id, s.timestamp_ms) < cutoff_ms
    ]
    if expired:
        table.maintenance.expire_snapshots().by_ids(expired).commit()
    files = {table.metadata_location, *(e.metadata_file for e in table.metadata.metadata_log)}
    for snapshot in table.snapshots():
        files.add(snapshot.manifest_list)
        files.update(m.manifest_path for m in snapshot.manifests(table.io))
    return files


def reachable_data_files(table: Table) -> set[str]:
    """The data files some remaining snapshot names. Blocking: call it from a thread."""
    files: set[str] = set()
    for snapshot in table.snapshots():
        for manifest in snapshot.manifests(table.io):
            files.update(
                entry.data_file.file_path
                for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
            )
    return files


async def sweep_metadata(
    store: ObjectStore,
    location: LakeLocation,
    dataset_id: str,
    table: str,
    referenced: set[str],
    cutoff: dt.datetime,
) -> int:
    """Delete the table's metadata files no snapshot reaches, once older than ``cutoff``."""
    prefix = f"{LAKE}/{dataset_id}/{table}/metadata/"
    stale = [
        info.key
        async for info in store.list(prefix)
        if location.uri(info.key) not in referenced and info.last_modified < cutoff
    ]
    if stale:
        await store.delete_many(stale)
    return len(stale)


async def tidy(
    table: Table,
    store: ObjectStore,
    location: LakeLocation,
    dataset_id: str,
    name: str,
    cutoff: dt.datetime,
) -> Table:
    """Expire the table's old snapshots and delete the metadata they alone reached; returns
    the table as the expiry left it."""
    referenced = await asyncio.to_thread(expire_snapshots, table, cutoff)
    await sweep_metadata(store, location, dataset_id, name, referenced, cutoff)
    return table


async def delete_retired(
    settings: Settings,
    pool: asyncpg.Pool,
    store: ObjectStore,
    dataset_id: str | None,
    clock: Clock,
) -> int:
    """Expire old snapshots and delete the retired data files past the grace period; returns
    how many data files were deleted."""
    cutoff = grace_cutoff(settings, clock)
    async with pool.acquire() as conn:
        retired = await ledger.retired_before(conn, dataset_id, int(cutoff.timestamp() * 1000))
    if not retired:
        return 0
    deleted = 0
    assert settings.store.url is not None
    location = LakeLocation.of(settings.store.url)
    catalog = await asyncio.to_thread(open_catalog, settings)
    try:
        for table_id in sorted({r.table_id for r in retired}):
            files = [r for r in retired if r.table_id == table_id]
            async with wait_pool_lock(pool, LAKE_LOCK, table_id):
                ident = await _identifier(pool, table_id)
                if ident is None:
                    continue  # purged since: its files and their ledger rows went with it
                ds, name = ident
                table = await asyncio.to_thread(_load, catalog, (ds, name))
                if table is not None:
                    table = await tidy(table, store, location, ds, name, cutoff)
                    # Clocks differ between hosts: a file a snapshot left still names waits.
                    named = await asyncio.to_thread(reachable_data_files, table)
                    files = [r for r in files if location.uri(r.object_key) not in named]
                await store.delete_many([r.object_key for r in files])
                async with pool.acquire() as conn:
                    await ledger.forget(conn, [r.lake_file_id for r in files])
                    if table is not None:
                        await ledger.set_metadata_location(conn, table_id, table.metadata_location)
                deleted += len(files)
    finally:
        await asyncio.to_thread(catalog.engine.dispose)
    return deleted


async def _identifier(pool: asyncpg.Pool, table_id: int) -> tuple[str, str] | None:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT dataset_id, table_name FROM fusou_tables WHERE table_id = $1", table_id
        )
    return None if row is None else (row["dataset_id"], row["table_name"])


def _load(catalog: SqlCatalog, ident: tuple[str, str]) -> Table | None:
    try:
        return catalog.load_table(ident)
    except NoSuchTableError:
        return None  # never created, or dropped by hand: nothing names the files
