"""ArchiverService messages to and from the Archiver's values."""

from __future__ import annotations

import datetime as dt

from google.protobuf import timestamp_pb2

from fusou.api.archiver.v1 import archiver_pb2
from fusou.api.reader.translate import read_filters
from fusou.api.timestamps import required_range, timestamp_of_ms
from fusou.archive.archiver import ArchiveOptions, ArchiveReport, TableStatus
from fusou.errors import InvalidArgument
from fusou.lifecycle.delete import DeleteRequest, DeleteResult
from fusou.lifecycle.purge import PurgeReport
from fusou.lifecycle.retention import TableRetention

_STATUS = {
    TableStatus.ARCHIVED: archiver_pb2.TABLE_ARCHIVE_STATUS_ARCHIVED,
    TableStatus.NOTHING_TO_DO: archiver_pb2.TABLE_ARCHIVE_STATUS_NOTHING_TO_DO,
    TableStatus.PARTIAL: archiver_pb2.TABLE_ARCHIVE_STATUS_PARTIAL,
    TableStatus.SKIPPED_BUSY: archiver_pb2.TABLE_ARCHIVE_STATUS_SKIPPED_BUSY,
    TableStatus.FAILED: archiver_pb2.TABLE_ARCHIVE_STATUS_FAILED,
}


def archive_options(request: archiver_pb2.ArchiveRequest) -> ArchiveOptions:
    return ArchiveOptions(
        dataset_id=request.dataset_id,
        table=request.table,
        min_age_s=request.min_age_seconds if request.HasField("min_age_seconds") else None,
        max_rows_per_table=request.max_rows_per_table,
        max_tables=request.max_tables,
    )


def archive_response(report: ArchiveReport) -> archiver_pb2.ArchiveResponse:
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
        lake_tables_published=report.lake.published,
        lake_error=report.lake.error,
    )


def _timestamp(when: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if when is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts


def purge_response(report: PurgeReport) -> archiver_pb2.PurgeDatasetResponse:
    return archiver_pb2.PurgeDatasetResponse(
        purge_id=report.purge_id,
        dataset_id=report.dataset_id,
        requested_by=report.requested_by,
        started_at=_timestamp(report.started_at),
        finished_at=_timestamp(report.finished_at),
        complete=report.complete,
        already_purged=report.already_purged,
        attempts=report.attempts,
        deleted=report.deleted,
        remaining=report.remaining,
    )


def delete_request(request: archiver_pb2.DeleteRowsRequest) -> DeleteRequest:
    span = required_range(request)
    if not span.ordered:
        raise InvalidArgument("end_time", "must be after start_time")
    return DeleteRequest(
        dataset_id=request.dataset_id,
        table=request.table,
        start=span.start,
        end=span.end,
        filters=read_filters(request.filters),
    )


def delete_response(result: DeleteResult) -> archiver_pb2.DeleteRowsResponse:
    return archiver_pb2.DeleteRowsResponse(
        deletion_id=result.deletion_id,
        max_seq=result.max_seq,
        hot_rows_deleted=result.hot_rows_deleted,
    )


def retention_response(results: list[TableRetention]) -> archiver_pb2.EnforceRetentionResponse:
    tables = []
    for r in results:
        t = archiver_pb2.TableRetentionResult(
            dataset_id=r.dataset_id,
            table=r.table,
            deletion_id=r.deletion_id,
            hot_rows_deleted=r.hot_rows_deleted,
            error=r.error,
        )
        if r.retention_ms is not None:
            t.retention.FromMilliseconds(r.retention_ms)
            t.cutoff.CopyFrom(timestamp_of_ms(r.cutoff))
        tables.append(t)
    return archiver_pb2.EnforceRetentionResponse(
        tables=tables,
        total_hot_rows_deleted=sum(r.hot_rows_deleted for r in results),
        failed_tables=sum(1 for r in results if r.error),
    )
