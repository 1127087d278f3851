"""CompactorService messages to and from the Compactor's values."""

from __future__ import annotations

from collections.abc import Iterable

from fusou.api.compactor.v1 import compactor_pb2
from fusou.compact.compactor import CompactOptions, DatasetOutcome, Status

_STATUS = {
    Status.COMPACTED: compactor_pb2.COMPACT_STATUS_COMPACTED,
    Status.NOTHING_TO_DO: compactor_pb2.COMPACT_STATUS_NOTHING_TO_DO,
    Status.PARTIAL: compactor_pb2.COMPACT_STATUS_PARTIAL,
    Status.SKIPPED_BUSY: compactor_pb2.COMPACT_STATUS_SKIPPED_BUSY,
    Status.FAILED: compactor_pb2.COMPACT_STATUS_FAILED,
}


def compact_options(request: compactor_pb2.CompactRequest) -> CompactOptions:
    return CompactOptions(dataset_id=request.dataset_id, table=request.table)


def compact_response(outcomes: Iterable[DatasetOutcome]) -> compactor_pb2.CompactResponse:
    return compactor_pb2.CompactResponse(
        datasets=[
            compactor_pb2.DatasetCompactResult(
                dataset_id=d.dataset_id,
                status=_STATUS[d.status],
                error=d.error,
                tables=[
                    compactor_pb2.TableCompactResult(
                        table=t.table,
                        input_files=t.input_files,
                        input_rows=t.input_rows,
                        input_bytes=t.input_bytes,
                        output_files=t.output_files,
                        output_rows=t.output_rows,
                        output_bytes=t.output_bytes,
                        duplicates_removed=t.duplicates_removed,
                        more_remaining=t.more_remaining,
                        status=_STATUS[t.status],
                        error=t.error,
                    )
                    for t in d.tables
                ],
            )
            for d in outcomes
        ]
    )
