"""Compaction's cleanup of a dataset: deleting the objects its runs retired, once past the
grace period, and sweeping the orphans under raw/ and optimized/ (``fusou.storage.sweep``).

Uploads register within the grace period (FUSOU_DELETE_GRACE_S must exceed the longest
upload); a table's compacted outputs are judged under its compaction lock, so an output about
to be registered is never taken for an orphan.
"""

from __future__ import annotations

import asyncpg

from fusou.clock import Clock
from fusou.objectstore.base import ObjectStore
from fusou.storage.keys import OPTIMIZED, RAW
from fusou.storage.locks import COMPACT_LOCK
from fusou.storage.sweep import delete_retired, sweep_orphans

__all__ = ["delete_retired", "sweep_dataset_orphans"]


async def sweep_dataset_orphans(
    pool: asyncpg.Pool, store: ObjectStore, dataset_id: str, grace_s: float, clock: Clock
) -> int:
    """Delete the dataset's objects under raw/ and optimized/ that no catalog row names, once
    older than the grace period."""
    deleted = 0
    for kind in (RAW, OPTIMIZED):
        deleted += await sweep_orphans(pool, store, kind, dataset_id, grace_s, COMPACT_LOCK, clock)
    return deleted
