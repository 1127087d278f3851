"""Deleting what no one needs any more: retired objects past the grace period, orphans (objects
no catalog row names) past it, and the leftovers of killed writes.

Objects are written first and registered after, so an unregistered object may be an upload
about to commit: an orphan must be older than FUSOU_DELETE_GRACE_S (which must exceed the
longest upload), and a table's objects are judged while holding the lock its writers hold from
upload to commit (``fusou.storage.keys.owner``). A busy table's objects wait for a later sweep.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging

import asyncpg

from fusou.catalog.files import forget_objects, retired_objects, unregistered
from fusou.clock import Clock
from fusou.objectstore.base import ObjectStore, ObjectStoreError
from fusou.objectstore.retry import with_retries
from fusou.storage.keys import dataset_prefixes, kind_prefix, owner
from fusou.storage.locks import try_lock

log = logging.getLogger(__name__)

# Keys judged per catalog query.
CHUNK_KEYS = 1000


def grace_horizon(clock: Clock, grace_s: float) -> dt.datetime:
    """Objects last modified before this are past the grace period."""
    return clock.now() - dt.timedelta(seconds=grace_s)


async def delete_retired(
    pool: asyncpg.Pool, store: ObjectStore, dataset_id: str, grace_s: float
) -> int:
    """Delete the dataset's objects retired longer ago than the grace period, then forget them.
    A crash in between leaves catalog rows of missing objects, deleted again next time."""
    async with pool.acquire() as conn:
        rows = await retired_objects(conn, dataset_id, grace_s)
    if not rows:
        return 0
    keys = [key for _, key in rows]
    await with_retries(lambda: store.delete_many(keys), f"delete {len(keys)} objects")
    async with pool.acquire() as conn:
        await forget_objects(conn, [object_id for object_id, _ in rows])
    log.info("deleted %d retired objects of %s", len(keys), dataset_id)
    return len(keys)


async def sweep_orphans(
    pool: asyncpg.Pool,
    store: ObjectStore,
    kind: str,
    dataset_id: str | None,
    grace_s: float,
    lock: int,
    clock: Clock,
) -> int:
    """Delete the objects of one kind (of one dataset, or of all for ``None``) that no catalog
    row names, once older than the grace period; each table's objects are judged under its
    ``lock`` (the lock class its writers hold). Returns how many were deleted."""
    horizon = grace_horizon(clock, grace_s)
    by_owner: dict[tuple[str, str] | None, list[str]] = {}
    async for info in store.list(kind_prefix(kind, dataset_id)):
        if info.last_modified < horizon:
            by_owner.setdefault(owner(info.key), []).append(info.key)
    deleted = 0
    for table, keys in by_owner.items():
        async with pool.acquire() as conn:
            table_id = None
            if table is not None:
                table_id = await conn.fetchval(
                    "SELECT table_id FROM fusou_tables WHERE dataset_id = $1 AND table_name = $2",
                    *table,
                )
            if table_id is None:
                deleted += await _delete_unregistered(conn, store, keys)
                continue
            async with try_lock(conn, lock, table_id) as locked:
                if locked:  # else being written: its unregistered object may be about to commit
                    deleted += await _delete_unregistered(conn, store, keys)
    if deleted:
        log.info(
            "deleted %d orphaned %s objects of %s", deleted, kind, dataset_id or "all datasets"
        )
    return deleted


async def _delete_unregistered(
    conn: asyncpg.Connection, store: ObjectStore, keys: list[str]
) -> int:
    deleted = 0
    for start in range(0, len(keys), CHUNK_KEYS):
        orphans = await unregistered(conn, keys[start : start + CHUNK_KEYS])
        if orphans:
            await with_retries(
                functools.partial(store.delete_many, orphans), f"delete {len(orphans)} orphans"
            )
            deleted += len(orphans)
    return deleted


async def sweep_incomplete_writes(
    store: ObjectStore, dataset_id: str | None, grace_s: float, clock: Clock
) -> int:
    """Delete what killed writes left in the store (temp files, S3 multipart uploads) once
    older than the grace period: one dataset's, or the whole store's for ``None``.

    Housekeeping, so a store error is logged rather than raised: it must not fail the run
    whose real work is done; the next run sweeps again.
    """
    horizon = grace_horizon(clock, grace_s)
    prefixes = [""] if dataset_id is None else dataset_prefixes(dataset_id)
    swept = 0
    try:
        for prefix in prefixes:
            swept += await with_retries(
                functools.partial(store.sweep_incomplete, horizon, prefix),
                f"sweep incomplete writes under {prefix!r}",
            )
    except ObjectStoreError:
        log.warning("could not sweep the leftovers of incomplete writes", exc_info=True)
    if swept:
        log.info("deleted %d leftovers of incomplete writes", swept)
    return swept
