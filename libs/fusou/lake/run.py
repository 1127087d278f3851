"""Starting a publication run: light to import, so that a process that publishes nothing
(FUSOU_LAKE_PUBLISH=false) never loads the lake's libraries (the reader's compiled decoder and
pyiceberg, a few hundred MB)."""

from __future__ import annotations

from fusou.jobs import StorageJob
from fusou.lake.report import LakeReport


async def publish(job: StorageJob, dataset_id: str = "", table: str = "") -> LakeReport:
    """Bring the tables in scope (all, a dataset's, one) in step with the catalog, on the
    job's settings, pool, store and clock, when publication is on (``LakePublisher``)."""
    if not job.settings.lake.publish:
        return LakeReport()
    from fusou.lake.publisher import LakePublisher

    return await job.sibling(LakePublisher).publish(dataset_id, table)
