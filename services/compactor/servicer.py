"""CompactorService: each RPC translates its request (``fusou.api.compactor``), calls the
Compactor and translates the result back."""

from __future__ import annotations

import time
from typing import Any

from grpc import aio

from fusou.api.compactor.translate import compact_options, compact_response
from fusou.api.compactor.v1 import compactor_pb2, compactor_pb2_grpc
from fusou.compact.compactor import Compactor, Status
from fusou.server import metrics

Context = aio.ServicerContext[Any, Any]


class CompactorServicer(compactor_pb2_grpc.CompactorServiceServicer):
    def __init__(self, compactor: Compactor) -> None:
        self._compactor = compactor

    async def Compact(
        self, request: compactor_pb2.CompactRequest, context: Context
    ) -> compactor_pb2.CompactResponse:
        started = time.monotonic()
        outcomes = await self._compactor.compact(compact_options(request))
        metrics.COMPACTION_SECONDS.observe(time.monotonic() - started)
        metrics.COMPACTED_ROWS.inc(sum(t.output_rows for d in outcomes for t in d.tables))
        metrics.COMPACTED_BYTES.inc(sum(t.output_bytes for d in outcomes for t in d.tables))
        metrics.COMPACT_FAILED_TABLES.inc(
            sum(1 for d in outcomes for t in d.tables if t.status is Status.FAILED)
        )
        return compact_response(outcomes)
