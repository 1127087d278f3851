"""The fence that keeps writes out of a dataset being purged (``fusou.lifecycle.purge``).

A write locks the row of each dataset it writes to, KEY SHARE, in the transaction that writes,
and refuses a dataset marked ``purging``. The purge marks the dataset, then takes its row FOR
UPDATE before deleting each table: that waits for every write that locked the row before the
mark, and every write after it sees the mark. KEY SHARE conflicts with nothing else done to a
dataset row (flag updates take weaker locks), so concurrent writes never wait on each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from fusou.errors import Aborted, DatasetPurging, TableGone


async def refused_tables(
    conn: asyncpg.Connection, table_ids: Sequence[int]
) -> dict[int, Exception]:
    """Lock the datasets of ``table_ids`` for this transaction's writes, and say which tables
    refuse them: DatasetPurging for a dataset being purged, TableGone for a table that no
    longer exists (the caller's catalog cache named a purged table)."""
    wanted = sorted(set(table_ids))
    rows = await conn.fetch(
        # In dataset order, the order the purge would meet them in; one dataset at a time
        # anyway, so no two transactions wait on each other in a cycle.
        "SELECT t.table_id, d.dataset_id, d.purging FROM fusou_tables t "
        "JOIN fusou_datasets d USING (dataset_id) WHERE t.table_id = ANY($1::integer[]) "
        "ORDER BY d.dataset_id FOR KEY SHARE OF d",
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


async def lock_dataset(conn: asyncpg.Connection, dataset_id: str) -> None:
    """Lock the dataset's row for this transaction's writes (the dataset must exist); raise
    DatasetPurging while it is being purged."""
    purging = await conn.fetchval(
        "SELECT purging FROM fusou_datasets WHERE dataset_id = $1 FOR KEY SHARE", dataset_id
    )
    if purging is None:
        # Its purge completed between this transaction's insert of the row and this lock.
        raise Aborted(f"dataset {dataset_id!r} was purged just now; retry")
    if purging:
        raise DatasetPurging(dataset_id)
