"""Starting a publication run: light to import, so that a process that publishes nothing
(FUSOU_LAKE_PUBLISH=false) never loads the lake's libraries (the reader's compiled decoder and
pyiceberg, a few hundred MB)."""

from __future__ import annotations

import asyncpg

from fusou.catalog.tables import TableRegistry
from fusou.clock import Clock
from fusou.config import Settings
from fusou.jobs import Checkpoint
from fusou.lake.report import LakeReport
from fusou.objectstore.base import ObjectStore


async def publish(
    settings: Settings,
    pool: asyncpg.Pool,
    store: ObjectStore,
    registry: TableRegistry,
    clock: Clock,
    checkpoint: Checkpoint,
    dataset_id: str = "",
    table: str = "",
) -> LakeReport:
    """Bring the tables in scope in step with the catalog (``LakePublisher.publish``), when
    publication is on."""
    if not settings.lake.publish:
        return LakeReport()
    from fusou.lake.publisher import LakePublisher

    return await LakePublisher(
        settings, pool, store, registry, clock=clock, checkpoint=checkpoint
    ).publish(dataset_id, table)
