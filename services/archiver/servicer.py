"""ArchiverService: each RPC translates its request (``fusou.api.archiver``), calls the
Archiver and translates the result back."""

from __future__ import annotations

import time
from typing import Any

from grpc import aio

from fusou.api.archiver.translate import (
    archive_options,
    archive_response,
    delete_request,
    delete_response,
    purge_response,
    retention_response,
)
from fusou.api.archiver.v1 import archiver_pb2, archiver_pb2_grpc
from fusou.archive.archiver import Archiver
from fusou.lifecycle.delete import RowDeleter
from fusou.lifecycle.purge import Purger
from fusou.lifecycle.retention import RetentionEnforcer
from fusou.logs import CURRENT_CALL
from fusou.server import metrics

Context = aio.ServicerContext[Any, Any]


class ArchiverServicer(archiver_pb2_grpc.ArchiverServiceServicer):
    def __init__(self, archiver: Archiver) -> None:
        self._archiver = archiver
        self._purger = archiver.sibling(Purger)
        self._deleter = archiver.sibling(RowDeleter)
        self._retention = archiver.sibling(RetentionEnforcer)

    async def Archive(
        self, request: archiver_pb2.ArchiveRequest, context: Context
    ) -> archiver_pb2.ArchiveResponse:
        started = time.monotonic()
        report = await self._archiver.archive(archive_options(request))
        metrics.ARCHIVE_SECONDS.observe(time.monotonic() - started)
        metrics.ARCHIVED_ROWS.inc(sum(t.rows for t in report.tables))
        metrics.ARCHIVED_BYTES.inc(sum(t.bytes for t in report.tables))
        metrics.QUARANTINED_ROWS.inc(report.rows_quarantined)
        metrics.ARCHIVE_FAILED_TABLES.inc(report.failed_tables)
        metrics.LAKE_PUBLISHED_TABLES.inc(report.lake.published)
        if report.lake.error:
            metrics.LAKE_FAILED_PUBLICATIONS.inc()
        return archive_response(report)

    async def PurgeDataset(
        self, request: archiver_pb2.PurgeDatasetRequest, context: Context
    ) -> archiver_pb2.PurgeDatasetResponse:
        report = await self._purger.purge(request.dataset_id, _principal())
        if not report.already_purged:
            metrics.PURGES.labels("complete" if report.complete else "incomplete").inc()
            # A resumed purge reports what its interrupted calls deleted too; they counted
            # nothing here.
            metrics.PURGED_ROWS.inc(
                report.deleted.get("hot_rows", 0) + report.deleted.get("quarantined_rows", 0)
            )
            metrics.PURGED_OBJECTS.inc(report.deleted.get("store_objects", 0))
        return purge_response(report)

    async def DeleteRows(
        self, request: archiver_pb2.DeleteRowsRequest, context: Context
    ) -> archiver_pb2.DeleteRowsResponse:
        result = await self._deleter.delete_rows(delete_request(request), _principal())
        metrics.DELETIONS.labels("delete").inc()
        metrics.DELETED_HOT_ROWS.inc(result.hot_rows_deleted)
        return delete_response(result)

    async def EnforceRetention(
        self, request: archiver_pb2.EnforceRetentionRequest, context: Context
    ) -> archiver_pb2.EnforceRetentionResponse:
        results = await self._retention.enforce(request.dataset_id, request.table, _principal())
        for r in results:
            if r.deletion_id:
                metrics.DELETIONS.labels("retention").inc()
            metrics.DELETED_HOT_ROWS.inc(r.hot_rows_deleted)
            if r.error:
                metrics.RETENTION_FAILED_TABLES.inc()
        return retention_response(results)


def _principal() -> str:
    """Who the audit records name: the token's name, or "anonymous" without authentication."""
    call = CURRENT_CALL.get()
    return (call.principal if call else None) or "anonymous"
