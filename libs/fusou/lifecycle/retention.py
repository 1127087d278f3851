"""EnforceRetention: per table with a retention, delete the rows older than now minus it.

A run records, per table, one deletion of the rows whose time lies before the cutoff
(``fusou.lifecycle.delete``): reads stop returning them at once, hot ones go at once, and
compaction rewrites the files holding the others. A table with nothing stored before the
cutoff, or whose last retention deletion reaches within a minute of it, is left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fusou.errors import InvalidArgument, NotFound
from fusou.jobs import StorageJob, describe_failure
from fusou.lifecycle.delete import RETENTION, DeleteRequest, RowDeleter
from fusou.names import check_name
from fusou.schema.time_bounds import MIN_TIME_MS

log = logging.getLogger(__name__)

# Retention is enforced to the minute: a run whose cutoff is less than this past the last
# retention deletion still in the catalog records none (a run every few seconds would
# otherwise record a deletion each time, each making compaction rewrite the files at the edge).
STEP_MS = 60_000


# Per table: its retention, how far its retention deletions still in the catalog reach, and
# whether anything stored ($3 is now) is older than the retention allows.
_TABLES = """
SELECT t.dataset_id, t.table_name, t.retention_ms,
       (SELECT max(end_time) FROM fusou_deletions d
        WHERE d.table_id = t.table_id AND d.reason = 'retention') AS reached,
       t.retention_ms IS NOT NULL AND (
         EXISTS (SELECT 1 FROM fusou_buffer b
                 WHERE b.table_id = t.table_id AND b.event_time < $3 - t.retention_ms)
         OR EXISTS (SELECT 1 FROM fusou_files f
                    WHERE f.table_id = t.table_id AND f.state = 'active'
                      AND f.min_time < $3 - t.retention_ms)) AS has_old
FROM fusou_tables t
WHERE ($1 = '' OR t.dataset_id = $1) AND ($2 = '' OR t.table_name = $2)
  AND (t.retention_ms IS NOT NULL OR $2 <> '')
ORDER BY t.dataset_id, t.table_name
"""


@dataclass
class TableRetention:
    dataset_id: str
    table: str
    retention_ms: int | None
    # Rows before this time (epoch ms) are deleted; 0 when the table keeps rows for ever.
    cutoff: int = 0
    # The deletion this run recorded; 0 when it recorded none (nothing old enough yet, or an
    # earlier run's deletion reaches the cutoff already).
    deletion_id: int = 0
    hot_rows_deleted: int = 0
    error: str = ""


class RetentionEnforcer(StorageJob):
    async def enforce(self, dataset_id: str, table: str, requested_by: str) -> list[TableRetention]:
        """Enforce the retention of every table (of ``dataset_id``; ``table`` only), going on
        past a table that fails. NOT_FOUND for a named dataset or table that does not exist."""
        if dataset_id:
            check_name("dataset_id", dataset_id)
        if table:
            check_name("table", table)
            if not dataset_id:
                raise InvalidArgument("table", "a table filter needs dataset_id")
        now = self._clock.now_ms()
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_TABLES, dataset_id, table, now)
        if table and not rows:
            raise NotFound(f"no table {table!r} in dataset {dataset_id!r}")
        if dataset_id and not table and not rows:
            async with self._pool.acquire() as conn:
                if not await conn.fetchval(
                    "SELECT true FROM fusou_datasets WHERE dataset_id = $1", dataset_id
                ):
                    raise NotFound(f"no dataset {dataset_id!r}")
        deleter = self.sibling(RowDeleter)
        results: list[TableRetention] = []
        for r in rows:
            result = TableRetention(r["dataset_id"], r["table_name"], r["retention_ms"])
            results.append(result)
            if result.retention_ms is None:
                continue
            result.cutoff = now - result.retention_ms
            if (
                result.cutoff <= MIN_TIME_MS
                or not r["has_old"]
                or (r["reached"] is not None and result.cutoff - r["reached"] < STEP_MS)
            ):
                continue
            try:
                done = await deleter.delete_rows(
                    DeleteRequest(result.dataset_id, result.table, MIN_TIME_MS, result.cutoff),
                    requested_by,
                    reason=RETENTION,
                )
            except Exception as exc:
                log.exception("retention of %s/%s failed", result.dataset_id, result.table)
                result.error = describe_failure(exc)
                continue
            result.deletion_id = done.deletion_id
            result.hot_rows_deleted = done.hot_rows_deleted
        return results
