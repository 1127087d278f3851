"""DeleteRows: the rows of one table in a time range, optionally only those meeting filters.

A deletion is a catalog row (``fusou_deletions``) that hides, from its commit on, every row
stored so far (seq up to the sequence's value at that moment) in its range that meets its
filters: reads and compaction apply it before the dedup rule (``fusou.read.deletions``).
Hot rows in the range go at once when there are no filters; everything else goes physically
when compaction rewrites the files holding it (the dataset is flagged for compaction), after
which the deletion row is forgotten.

A deletion removes stored versions. On a table with key fields, filters may only name key
fields, so that a deletion takes every version of the keys it names within its range rather
than, say, a key's newest version alone, after which reads would return the older one in its
place. (A range holding a key's newest version but not an older one, at another time, has that
effect still: the older version becomes the key's latest.)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from fusou.catalog.fence import close_dataset
from fusou.catalog.tables import TableInfo
from fusou.db.status import rows_affected
from fusou.errors import DatasetPurging, FieldViolation, InvalidArgument, NotFound
from fusou.jobs import StorageJob
from fusou.names import name_problem
from fusou.read.deletions import filters_json
from fusou.read.filters import Filter, filter_violations
from fusou.schema.time_bounds import MAX_TIME_MS, MIN_TIME_MS

log = logging.getLogger(__name__)

DELETE = "delete"
RETENTION = "retention"


@dataclass(frozen=True)
class DeleteRequest:
    dataset_id: str
    table: str
    start: int  # epoch ms, inclusive
    end: int  # epoch ms, exclusive
    filters: Sequence[Filter] = ()


@dataclass(frozen=True)
class DeleteResult:
    deletion_id: int
    # Rows up to this seq (everything stored when the deletion committed) are hidden.
    max_seq: int
    # Hot rows deleted at once (none when filters were given: those go with compaction).
    hot_rows_deleted: int


def key_filter_violations(filters: Sequence[Filter], info: TableInfo) -> list[FieldViolation]:
    if not info.key_fields:
        return []
    return [
        FieldViolation(
            f"filters[{i}].column",
            f"{f.column!r} is not a key field of {info.dataset_id}/{info.name} (key fields "
            f"{list(info.key_fields)}): on a keyed table, deletions name key fields only",
        )
        for i, f in enumerate(filters)
        if f.column not in info.key_fields
    ]


class RowDeleter(StorageJob):
    async def delete_rows(
        self, req: DeleteRequest, requested_by: str, *, reason: str = DELETE
    ) -> DeleteResult:
        """Hide the rows; INVALID_ARGUMENT or NOT_FOUND, changing nothing, for a bad request."""
        violations = [
            FieldViolation(name, problem)
            for name, value in (("dataset_id", req.dataset_id), ("table", req.table))
            if (problem := name_problem(value)) is not None
        ]
        if req.start >= req.end:
            violations.append(FieldViolation("end_time", "must be after start_time"))
        if violations:
            raise InvalidArgument.many(violations)
        info = await self._registry.get(req.dataset_id, req.table, refresh=True)
        if info is None:
            raise NotFound(f"no table {req.table!r} in dataset {req.dataset_id!r}")
        problems = filter_violations(req.filters, info.latest) or key_filter_violations(
            req.filters, info
        )
        if problems:
            raise InvalidArgument.many(problems)
        async with self._pool.acquire() as conn, conn.transaction():
            result = await self._record(conn, info, req, requested_by, reason)
        log.info(
            "deletion %d of %s/%s [%d, %d) %s: %d hot rows deleted",
            result.deletion_id,
            req.dataset_id,
            req.table,
            req.start,
            req.end,
            " and ".join(map(str, req.filters)) or "all rows",
            result.hot_rows_deleted,
        )
        return result

    @staticmethod
    async def _record(
        conn: asyncpg.Connection,
        info: TableInfo,
        req: DeleteRequest,
        requested_by: str,
        reason: str,
    ) -> DeleteResult:
        # The dataset's fence, exclusively: every write to it in progress (which took its seqs
        # under the fence, shared) has committed, and the next ones wait for this one. So each
        # row of the table is committed when its seq is at most max_seq, and the dataset's
        # deletions commit in the order of their ids (compaction records the highest it
        # applied, which must stand for all below it).
        await close_dataset(conn, info.dataset_id)
        purging = await conn.fetchval(
            "SELECT d.purging FROM fusou_tables t JOIN fusou_datasets d USING (dataset_id) "
            "WHERE t.table_id = $1",
            info.table_id,
        )
        if purging is None:
            raise NotFound(f"no table {req.table!r} in dataset {req.dataset_id!r}")
        if purging:
            raise DatasetPurging(info.dataset_id)
        max_seq = int(
            await conn.fetchval(
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM fusou_ingest_seq"
            )
        )
        start, end = max(req.start, MIN_TIME_MS), min(req.end, MAX_TIME_MS + 1)
        deletion_id = int(
            await conn.fetchval(
                "INSERT INTO fusou_deletions (table_id, start_time, end_time, filters, max_seq, "
                "reason, requested_by) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING deletion_id",
                info.table_id,
                start,
                end,
                filters_json(req.filters),
                max_seq,
                reason,
                requested_by,
            )
        )
        hot = 0
        if not req.filters:
            status = await conn.execute(
                "DELETE FROM fusou_buffer WHERE table_id = $1 AND event_time >= $2 "
                "AND event_time < $3 AND seq <= $4",
                info.table_id,
                start,
                end,
                max_seq,
            )
            hot = rows_affected(status)
        # Compaction rewrites the files the deletion reaches, and then forgets it.
        await conn.execute(
            "UPDATE fusou_datasets SET compaction_needed = true WHERE dataset_id = $1",
            info.dataset_id,
        )
        return DeleteResult(deletion_id, max_seq, hot)
