"""ReaderService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from grpc import aio

from fusou.catalog.stats import table_stats
from fusou.reader.v1 import reader_pb2, reader_pb2_grpc

Context = aio.ServicerContext[Any, Any]


class ReaderServicer(reader_pb2_grpc.ReaderServiceServicer):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def ReadRange(
        self, request: reader_pb2.ReadRangeRequest, context: Context
    ) -> AsyncIterator[reader_pb2.ReadRangeResponse]:
        raise NotImplementedError("ReadRange is not implemented yet")
        yield reader_pb2.ReadRangeResponse()  # pragma: no cover - makes this a generator

    async def GetStats(
        self, request: reader_pb2.GetStatsRequest, context: Context
    ) -> reader_pb2.GetStatsResponse:
        stats = await table_stats(self._pool, request.dataset_id, request.table)
        return reader_pb2.GetStatsResponse(
            tables=[
                reader_pb2.TableStats(
                    dataset_id=s.dataset_id,
                    table=s.table,
                    schema_version=s.schema_version,
                    hot_rows=s.hot_rows,
                    hot_bytes=s.hot_bytes,
                    oldest_hot_row_age_seconds=s.oldest_hot_row_age_s,
                    cold_files=s.cold_files,
                    cold_rows=s.cold_rows,
                    cold_bytes=s.cold_bytes,
                    compression_ratio=s.compression_ratio,
                    raw_fragments=s.raw_fragments,
                    raw_bytes=s.raw_bytes,
                    optimized_files=s.optimized_files,
                    optimized_bytes=s.optimized_bytes,
                )
                for s in stats
            ]
        )
