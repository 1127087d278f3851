"""ArchiverService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import time
from typing import Any

from grpc import aio

from fusou.api.archiver.v1 import archiver_pb2, archiver_pb2_grpc
from fusou.archive.archiver import ArchiveOptions, Archiver, TableStatus
from fusou.server import metrics

Context = aio.ServicerContext[Any, Any]

_STATUS = {
    TableStatus.ARCHIVED: archiver_pb2.TABLE_ARCHIVE_STATUS_ARCHIVED,
    TableStatus.NOTHING_TO_DO: archiver_pb2.TABLE_ARCHIVE_STATUS_NOTHING_TO_DO,
    TableStatus.PARTIAL: archiver_pb2.TABLE_ARCHIVE_STATUS_PARTIAL,
    TableStatus.SKIPPED_BUSY: archiver_pb2.TABLE_ARCHIVE_STATUS_SKIPPED_BUSY,
    TableStatus.FAILED: archiver_pb2.TABLE_ARCHIVE_STATUS_FAILED,
}


class ArchiverServicer(archiver_pb2_grpc.ArchiverServiceServicer):
    def __init__(self, archiver: Archiver) -> None:
        self._archiver = archiver

    async def Archive(
        self, request: archiver_pb2.ArchiveRequest, context: Context
    ) -> archiver_pb2.ArchiveResponse:
        started = time.monotonic()
        report = await self._archiver.archive(
            ArchiveOptions(
                dataset_id=request.dataset_id,
                table=request.table,
                min_age_s=request.min_age_seconds if request.HasField("min_age_seconds") else None,
                max_rows_per_table=request.max_rows_per_table,
                max_tables=request.max_tables,
            )
        )
        metrics.ARCHIVE_SECONDS.observe(time.monotonic() - started)
        metrics.ARCHIVED_ROWS.inc(sum(t.rows for t in report.tables))
        metrics.ARCHIVED_BYTES.inc(sum(t.bytes for t in report.tables))
        metrics.QUARANTINED_ROWS.inc(report.rows_quarantined)
        metrics.ARCHIVE_FAILED_TABLES.inc(report.failed_tables)
        tables = [
            archiver_pb2.TableArchiveResult(
                dataset_id=t.dataset_id,
                table=t.table,
                rows=t.rows,
                files=t.files,
                blocks=t.blocks,
                bytes=t.bytes,
                uncompressed_bytes=t.uncompressed_bytes,
                compression_ratio=t.compression_ratio,
                more_remaining=t.more_remaining,
                skipped_busy=t.skipped_busy,
                status=_STATUS[t.status],
                error=t.error,
                rows_quarantined=t.rows_quarantined,
            )
            for t in report.tables
        ]
        return archiver_pb2.ArchiveResponse(
            tables=tables,
            total_rows=sum(t.rows for t in report.tables),
            total_files=sum(t.files for t in report.tables),
            total_bytes=sum(t.bytes for t in report.tables),
            orphans_deleted=report.orphans_deleted,
            failed_tables=report.failed_tables,
            total_rows_quarantined=report.rows_quarantined,
            sweep_error=report.sweep_error,
        )
