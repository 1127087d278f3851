"""The fence that keeps writes out of a dataset being purged (``fusou.lifecycle.purge``).

A write takes the dataset's fence lock shared, in the transaction that writes, and then
refuses a dataset marked ``purging``. The purge takes the lock exclusively to set the mark and
again before deleting each table: that waits for every write that took the lock before the
mark, and every write after it sees the mark. It is an advisory transaction lock rather than a
row lock because PostgreSQL queues lock requests fairly only for those: a purge waiting for the
lock holds back the writes that come after it, where a row locked FOR UPDATE can wait for as
long as overlapping KEY SHARE holders keep coming. Shared holders never wait on each other.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Final

import asyncpg

from fusou.errors import Aborted, DatasetPurging, TableGone

# The advisory lock class of the fence (beside those of ``fusou.storage.locks``).
FENCE_LOCK: Final = 7239016


def dataset_key(dataset_id: str) -> int:
    """A lock key for a dataset: its name's CRC-32 as a signed 32-bit integer. Two datasets
    may share a key; their purges then take turns, which is all a collision costs."""
    return zlib.crc32(dataset_id.encode()) - 2**31


async def enter_datasets(conn: asyncpg.Connection, dataset_ids: Sequence[str]) -> None:
    """Take the fence of each dataset shared, until this transaction ends."""
    # In key order: a write waiting for one purge never holds what another purge waits for
    # ahead of it.
    keys = sorted({dataset_key(d) for d in dataset_ids})
    await conn.execute(
        "SELECT pg_advisory_xact_lock_shared($1, k) FROM unnest($2::integer[]) AS k ORDER BY k",
        FENCE_LOCK,
        keys,
    )


async def close_dataset(conn: asyncpg.Connection, dataset_id: str) -> None:
    """Take the dataset's fence exclusively, until this transaction ends: once it returns, no
    write that took the fence before is still uncommitted."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", FENCE_LOCK, dataset_key(dataset_id))


async def refused_tables(
    conn: asyncpg.Connection, dataset_ids: Sequence[str], table_ids: Sequence[int]
) -> dict[int, Exception]:
    """Enter the fences of ``dataset_ids`` for this transaction's writes to ``table_ids``, and
    say which tables refuse them: DatasetPurging for a dataset being purged, TableGone for a
    table that no longer exists (the caller's catalog cache named a purged table)."""
    await enter_datasets(conn, dataset_ids)
    # A statement of its own, after the lock: its snapshot sees a mark set before the lock.
    wanted = sorted(set(table_ids))
    rows = await conn.fetch(
        "SELECT t.table_id, d.dataset_id, d.purging FROM fusou_tables t "
        "JOIN fusou_datasets d USING (dataset_id) WHERE t.table_id = ANY($1::integer[])",
        wanted,
    )
    found = {r["table_id"]: r for r in rows}
    refused: dict[int, Exception] = {}
    for table_id in wanted:
        row = found.get(table_id)
        if row is None:
            refused[table_id] = TableGone(f"table {table_id} no longer exists")
        elif row["purging"]:
            refused[table_id] = DatasetPurging(row["dataset_id"])
    return refused


async def open_dataset(conn: asyncpg.Connection, dataset_id: str) -> None:
    """Create the dataset if it is new and enter its fence for this transaction's writes;
    raise DatasetPurging while it is being purged."""
    await conn.execute(
        "INSERT INTO fusou_datasets (dataset_id) VALUES ($1) ON CONFLICT DO NOTHING", dataset_id
    )
    await enter_datasets(conn, [dataset_id])
    purging = await conn.fetchval(
        "SELECT purging FROM fusou_datasets WHERE dataset_id = $1", dataset_id
    )
    if purging is None:
        # Its purge completed between this transaction's insert of the row and the fence.
        raise Aborted(f"dataset {dataset_id!r} was purged just now; retry")
    if purging:
        raise DatasetPurging(dataset_id)
