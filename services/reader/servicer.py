"""ReaderService: each RPC translates its request (``fusou.api.reader``), calls the Reader and
translates the result back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import asyncpg
from grpc import aio

from fusou.api.reader.translate import get_stats_response, read_range_answers, read_request
from fusou.api.reader.v1 import reader_pb2, reader_pb2_grpc
from fusou.catalog.stats import table_stats
from fusou.read.reader import Reader, ReadStats
from fusou.server import metrics

Context = aio.ServicerContext[Any, Any]


def count_read(stats: ReadStats) -> None:
    """A read's cache and GET counts, into the process's metrics."""
    metrics.READER_CACHE_HITS.inc(stats.cache_hits)
    metrics.READER_CACHE_MISSES.inc(stats.blocks_fetched)
    metrics.READER_GETS.inc(stats.get_requests)


class ReaderServicer(reader_pb2_grpc.ReaderServiceServicer):
    def __init__(self, pool: asyncpg.Pool, reader: Reader) -> None:
        self._pool = pool
        self._reader = reader

    # Arrow messages are yielded already serialized (see arrow_ipc_message); the server's
    # interceptor passes bytes through, which the generated signature does not know about.
    async def ReadRange(  # type: ignore[override]
        self, request: reader_pb2.ReadRangeRequest, context: Context
    ) -> AsyncIterator[reader_pb2.ReadRangeResponse | bytes]:
        read = read_request(request)
        remaining = context.time_remaining()
        # The client's deadline bounds the work: past it, everything in flight is cancelled.
        async with asyncio.timeout(remaining):
            result = await self._reader.read(read)
        count_read(result.stats)
        # Closed on the way out, so that a message still being encoded is cancelled with it.
        async with aclosing(read_range_answers(result, request.format)) as answers:
            async for message in answers:
                yield message

    async def GetStats(
        self, request: reader_pb2.GetStatsRequest, context: Context
    ) -> reader_pb2.GetStatsResponse:
        stats = await table_stats(self._pool, request.dataset_id, request.table)
        return get_stats_response(stats)
