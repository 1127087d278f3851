"""CompactorService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import time
from typing import Any

from grpc import aio

from fusou.api.compactor.v1 import compactor_pb2, compactor_pb2_grpc
from fusou.compact.compactor import CompactOptions, Compactor, Status
from fusou.server import metrics

Context = aio.ServicerContext[Any, Any]

_STATUS = {
    Status.COMPACTED: compactor_pb2.COMPACT_STATUS_COMPACTED,
    Status.NOTHING_TO_DO: compactor_pb2.COMPACT_STATUS_NOTHING_TO_DO,
    Status.PARTIAL: compactor_pb2.COMPACT_STATUS_PARTIAL,
    Status.SKIPPED_BUSY: compactor_pb2.COMPACT_STATUS_SKIPPED_BUSY,
    Status.FAILED: compactor_pb2.COMPACT_STATUS_FAILED,
}


class CompactorServicer(compactor_pb2_grpc.CompactorServiceServicer):
    def __init__(self, compactor: Compactor) -> None:
        self._compactor = compactor

    async def Compact(
        self, request: compactor_pb2.CompactRequest, context: Context
    ) -> compactor_pb2.CompactResponse:
        started = time.monotonic()
        outcomes = await self._compactor.compact(
            CompactOptions(dataset_id=request.dataset_id, table=request.table)
        )
        metrics.COMPACTION_SECONDS.observe(time.monotonic() - started)
        metrics.COMPACTED_ROWS.inc(sum(t.output_rows for d in outcomes for t in d.tables))
        metrics.COMPACTED_BYTES.inc(sum(t.output_bytes for d in outcomes for t in d.tables))
        metrics.COMPACT_FAILED_TABLES.inc(
            sum(1 for d in outcomes for t in d.tables if t.status is Status.FAILED)
        )
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
